//! `blobproxy presign`: a presigned URL made on the operator's machine, with the secret the
//! replicas share; no replica, Redis or S3 is asked.

use std::time::Duration;

use anyhow::Context as _;

use crate::config::{BrowserSettings, units};
use crate::domain::BlobKey;
use crate::domain::presigned::{MAX_EXPIRY, Presigned, PresignedMethod, Presigner};

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Method {
    Get,
    Put,
}

#[derive(clap::Args, Debug)]
pub struct PresignArgs {
    /// The key the URL reads or writes.
    pub key: String,
    /// What the URL allows: `get` (GET or HEAD) or `put`.
    #[arg(long, value_enum, default_value = "get")]
    pub method: Method,
    /// How long the URL works (`15m`, `1h`, seconds; at most a week).
    #[arg(long = "expires-in", default_value = "1h", value_parser = units::seconds)]
    pub expires_in: Duration,
    #[command(flatten)]
    pub browser: BrowserSettings,
}

/// The URL `args` ask for.
pub fn presign(args: &PresignArgs) -> anyhow::Result<Presigned> {
    args.browser.validate()?;
    let secret = args
        .browser
        .presign_secret()?
        .context("set BLOBPROXY_PRESIGN_SECRET (or its _FILE), the secret the replicas share")?;
    let base =
        args.browser.public_url.as_deref().context(
            "set BLOBPROXY_PUBLIC_URL (or --public-url): where clients reach the service",
        )?;
    if args.expires_in.is_zero() || args.expires_in > MAX_EXPIRY {
        anyhow::bail!("--expires-in must be from 1 second to a week");
    }
    let key = BlobKey::parse(args.key.clone())?;
    let method = match args.method {
        Method::Get => PresignedMethod::Get,
        Method::Put => PresignedMethod::Put,
    };
    Ok(Presigner::new(&secret).presign(base, method, &key, args.expires_in))
}
