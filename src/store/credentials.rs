//! S3 credentials from Docker/Swarm secret files, for when the standard AWS chain (env,
//! profile, instance role) is not how a deployment hands them over.

use anyhow::Context as _;

/// Credentials from Docker/Swarm secret files: `AWS_ACCESS_KEY_ID_FILE` and
/// `AWS_SECRET_ACCESS_KEY_FILE` name files holding the keys. `None` when neither is set, so the
/// standard AWS chain applies.
pub fn credentials_from_secret_files() -> anyhow::Result<Option<aws_sdk_s3::config::Credentials>> {
    let read = |var: &str| -> anyhow::Result<Option<String>> {
        let Some(path) = std::env::var_os(var) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {var}={}", path.to_string_lossy()))?;
        Ok(Some(text.trim().to_owned()))
    };
    match (
        read("AWS_ACCESS_KEY_ID_FILE")?,
        read("AWS_SECRET_ACCESS_KEY_FILE")?,
    ) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some(aws_sdk_s3::config::Credentials::new(
            id,
            secret,
            None,
            None,
            "secret-files",
        ))),
        _ => anyhow::bail!(
            "set both AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE, or neither"
        ),
    }
}
