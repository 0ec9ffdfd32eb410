//! The bucket at start-up: wait for S3, create the bucket when it is missing (with versioning
//! when the settings ask for it), and settle whether the history is on.

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

use super::S3Store;
use crate::config::{S3Settings, Versioning};
use crate::store::classify::classify;
use crate::store::{BlobStore as _, StoreResult};

impl S3Store {
    /// Makes sure the bucket exists, retrying for a while (under Compose or Swarm, S3 may start
    /// after us), then settles versioning; returns whether the history is on.
    pub async fn open_bucket(&mut self, settings: &S3Settings) -> anyhow::Result<bool> {
        let create_versioned = settings.versioning == Versioning::On;
        let mut attempt = 0;
        loop {
            match self.ensure_bucket(create_versioned).await {
                Ok(()) => break,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    tracing::warn!(error = %format!("{e:#}"), attempt, "S3 not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.settle_versioning(settings).await)
    }

    /// Creates the bucket when it does not exist yet, with versioning on when `versioned`.
    pub async fn ensure_bucket(&self, versioned: bool) -> anyhow::Result<()> {
        if self.ping().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) if versioned => {
                // A server without versioning still stores blobs: say so, and carry on.
                match self.enable_versioning().await {
                    Ok(()) => tracing::info!(bucket = %self.bucket, "created the bucket, versioning on"),
                    Err(e) => tracing::warn!(
                        bucket = %self.bucket, error = %e,
                        "created the bucket, but cannot turn versioning on: no history"
                    ),
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e)).with_context(|| {
                format!(
                    "cannot create bucket BLOBPROXY_S3_BUCKET={} (check BLOBPROXY_S3_ENDPOINT and the AWS credentials)",
                    self.bucket
                )
            }),
        }
    }

    /// Decides whether the history is on (`BLOBPROXY_S3_VERSIONING`: as set, or as the bucket
    /// says), and from then on lets deletes leave their mark when it is.
    async fn settle_versioning(&mut self, settings: &S3Settings) -> bool {
        let enabled = self.versioning_enabled().await;
        let bucket = &settings.bucket;
        self.versioned = match (settings.versioning, enabled) {
            (Versioning::Off, _) => false,
            (Versioning::Auto, Ok(enabled)) => {
                tracing::info!(%bucket, versioning = enabled, "history follows the bucket's versioning");
                enabled
            }
            (Versioning::Auto, Err(e)) => {
                tracing::warn!(%bucket, error = %e, "cannot read the bucket's versioning; history is off");
                false
            }
            (Versioning::On, Ok(true)) => true,
            (Versioning::On, answer) => {
                tracing::warn!(
                    %bucket,
                    answer = ?answer.map_err(|e| e.to_string()),
                    "BLOBPROXY_S3_VERSIONING=on but the bucket does not report versioning enabled: \
                     the history shows only what the bucket keeps"
                );
                true
            }
        };
        self.versioned
    }

    /// Whether the bucket reports versioning as enabled.
    pub async fn versioning_enabled(&self) -> StoreResult<bool> {
        use aws_sdk_s3::error::SdkError;
        match self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(answer) => Ok(answer.status() == Some(&BucketVersioningStatus::Enabled)),
            // moto names the answer's root element differently from AWS, which the SDK refuses
            // to parse; the status inside is the same.
            Err(SdkError::ServiceError(e)) if e.raw().status().is_success() => {
                let body = e.raw().body().bytes().unwrap_or_default();
                Ok(String::from_utf8_lossy(body).contains("<Status>Enabled</Status>"))
            }
            Err(e) => Err(classify(e).unwrap_or_else(|e| self.bucket_missing(e))),
        }
    }

    /// Turns versioning on (a bucket blobproxy just created, when the settings ask for it).
    async fn enable_versioning(&self) -> StoreResult<()> {
        let enabled = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(enabled)
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        Ok(())
    }
}
