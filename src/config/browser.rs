//! What browsers need: which origins may call the API (CORS), and the secret that signs
//! presigned URLs, which let a browser read or write one key without the API key.

use std::path::PathBuf;

use anyhow::bail;

/// Settings for calls from browsers.
#[derive(clap::Args, Debug, Clone)]
pub struct BrowserSettings {
    /// Origins whose pages may call the API, comma-separated (`https://app.example.com`), or
    /// `*` for any. Unset: no CORS headers, so browsers refuse cross-origin calls.
    #[arg(
        long = "cors-origins",
        env = "BLOBPROXY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// The secret that signs presigned URLs (HMAC-SHA256), the same on every replica; 32+
    /// characters. Unset: `POST /presign` and presigned URLs are refused.
    #[arg(
        long = "presign-secret",
        env = "BLOBPROXY_PRESIGN_SECRET",
        hide_env_values = true
    )]
    pub presign_secret: Option<String>,

    /// A file holding the presign secret (a Docker/Swarm secret).
    #[arg(long = "presign-secret-file", env = "BLOBPROXY_PRESIGN_SECRET_FILE")]
    pub presign_secret_file: Option<PathBuf>,

    /// The address clients reach the service at (`https://blobs.example.com`), the start of
    /// every presigned URL. Unset: taken from each `POST /presign` request (its `Host`, and
    /// `X-Forwarded-Proto`/`Forwarded` from the proxy).
    #[arg(long = "public-url", env = "BLOBPROXY_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl BrowserSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        for origin in &self.cors_origins {
            let origin = origin.trim();
            let scheme_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            let valid = origin == "*"
                || scheme_host.is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if !valid {
                bail!(
                    "BLOBPROXY_CORS_ORIGINS: {origin:?} is not an origin: use scheme://host[:port] (no path), or *"
                );
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("BLOBPROXY_PUBLIC_URL must start with http:// or https://");
        }
        self.presign_secret()?;
        Ok(())
    }

    /// The secret that signs presigned URLs, from `BLOBPROXY_PRESIGN_SECRET` or its file.
    pub fn presign_secret(&self) -> anyhow::Result<Option<String>> {
        let secret = match (&self.presign_secret, &self.presign_secret_file) {
            (Some(_), Some(_)) => {
                bail!("set BLOBPROXY_PRESIGN_SECRET or BLOBPROXY_PRESIGN_SECRET_FILE, not both")
            }
            (Some(secret), None) => secret.trim().to_owned(),
            (None, Some(path)) => super::read_secret(path, "BLOBPROXY_PRESIGN_SECRET_FILE")?,
            (None, None) => return Ok(None),
        };
        if secret.len() < 32 {
            bail!(
                "the presign secret (BLOBPROXY_PRESIGN_SECRET or its file) must be at least 32 characters"
            );
        }
        Ok(Some(secret))
    }
}
