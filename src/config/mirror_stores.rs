//! Mirror stores (`BLOBPROXY_MIRRORS=m1,m2`): object stores kept in step with the primary one,
//! each described by variables named after it (`BLOBPROXY_MIRROR_M1_S3_ENDPOINT`...), read from
//! the environment here because their names are not known until the list is.

use anyhow::{Context as _, bail};

use super::{S3Keys, S3Settings, Versioning, read_secret};

/// One mirror: its name and where its bucket is.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// As listed in `BLOBPROXY_MIRRORS` (lower case: it names Redis keys and metric labels).
    pub name: String,
    pub s3: S3Settings,
    /// Its own keys, when set; else the standard AWS credential chain, as for the primary.
    pub keys: Option<S3Keys>,
}

impl super::Settings {
    /// Reads the mirrors `BLOBPROXY_MIRRORS` lists from the environment.
    pub fn read_mirrors(&mut self) -> anyhow::Result<()> {
        self.mirror_stores = read(&self.s3.mirrors, |name| std::env::var(name).ok())?;
        Ok(())
    }
}

/// The longest a mirror's name may be.
const MAX_NAME: usize = 32;

/// The mirrors `names` lists, each from its `BLOBPROXY_MIRROR_<NAME>_*` variables as `var`
/// reads them (the process environment, or a test's).
pub fn read(
    names: &[String],
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<MirrorSettings>> {
    let mut mirrors: Vec<MirrorSettings> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let valid = name.len() <= MAX_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            bail!(
                "BLOBPROXY_MIRRORS: {name:?} is not a mirror name: 1 to {MAX_NAME} of a-z, 0-9 and _"
            );
        }
        if mirrors.iter().any(|m| m.name == name) {
            bail!("BLOBPROXY_MIRRORS names {name} twice");
        }
        let prefix = format!("BLOBPROXY_MIRROR_{}_", name.to_ascii_uppercase());
        let get = |suffix: &str| var(&format!("{prefix}{suffix}")).filter(|v| !v.is_empty());
        let secret = |suffix: &str| -> anyhow::Result<Option<String>> {
            match (get(suffix), get(&format!("{suffix}_FILE"))) {
                (Some(_), Some(_)) => {
                    bail!("set {prefix}{suffix} or {prefix}{suffix}_FILE, not both")
                }
                (Some(value), None) => Ok(Some(value)),
                (None, Some(path)) => Ok(Some(read_secret(
                    path.as_ref(),
                    &format!("{prefix}{suffix}_FILE"),
                )?)),
                (None, None) => Ok(None),
            }
        };
        let keys = match (secret("ACCESS_KEY_ID")?, secret("SECRET_ACCESS_KEY")?) {
            (Some(access_key_id), Some(secret_access_key)) => Some(S3Keys {
                access_key_id,
                secret_access_key,
            }),
            (None, None) => None,
            _ => bail!("set both {prefix}ACCESS_KEY_ID and {prefix}SECRET_ACCESS_KEY, or neither"),
        };
        let bucket =
            get("S3_BUCKET").with_context(|| format!("mirror {name}: set {prefix}S3_BUCKET"))?;
        mirrors.push(MirrorSettings {
            name: name.to_owned(),
            s3: S3Settings {
                endpoint: get("S3_ENDPOINT"),
                bucket,
                region: get("S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
                versioning: Versioning::Auto,
                mirrors: Vec::new(),
                access_key_id_file: None,
                secret_access_key_file: None,
            },
            keys,
        });
    }
    Ok(mirrors)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn each_mirror_reads_the_variables_named_after_it() {
        let names = vec!["eu".to_owned(), "onprem_2".to_owned()];
        let vars = env(&[
            ("BLOBPROXY_MIRROR_EU_S3_ENDPOINT", "https://s3.eu.example"),
            ("BLOBPROXY_MIRROR_EU_S3_BUCKET", "blobs-eu"),
            ("BLOBPROXY_MIRROR_EU_S3_REGION", "eu-west-1"),
            ("BLOBPROXY_MIRROR_EU_ACCESS_KEY_ID", "id"),
            ("BLOBPROXY_MIRROR_EU_SECRET_ACCESS_KEY", "secret"),
            ("BLOBPROXY_MIRROR_ONPREM_2_S3_BUCKET", "copy"),
        ]);
        let mirrors = read(&names, vars).unwrap();
        assert_eq!(
            mirrors[0].s3.endpoint.as_deref(),
            Some("https://s3.eu.example")
        );
        assert_eq!(mirrors[0].s3.region, "eu-west-1");
        assert_eq!(mirrors[0].keys.as_ref().unwrap().access_key_id, "id");
        assert_eq!(
            (mirrors[1].name.as_str(), mirrors[1].s3.bucket.as_str()),
            ("onprem_2", "copy")
        );
        assert_eq!(mirrors[1].keys, None);
    }

    #[test]
    fn a_bad_list_or_a_missing_bucket_names_the_variable() {
        let err = |names: &[&str], vars: &[(&str, &str)]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            read(&names, env(vars)).unwrap_err().to_string()
        };
        assert!(err(&["EU"], &[]).contains("not a mirror name"));
        assert!(err(&["eu"], &[]).contains("BLOBPROXY_MIRROR_EU_S3_BUCKET"));
        assert!(err(&["eu", "eu"], &[("BLOBPROXY_MIRROR_EU_S3_BUCKET", "b")]).contains("twice"));
        let half = [
            ("BLOBPROXY_MIRROR_EU_S3_BUCKET", "b"),
            ("BLOBPROXY_MIRROR_EU_ACCESS_KEY_ID", "id"),
        ];
        assert!(err(&["eu"], &half).contains("or neither"));
    }
}
