//! Multipart uploads to S3: what a write-through streams a large blob through.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::S3Store;
use crate::domain::BlobKey;
use crate::store::classify::classify;
use crate::store::metadata;
use crate::store::{MultipartUpload, ObjectMeta, StoreError, StoreResult, Upload, UploadedPart};

#[async_trait::async_trait]
impl MultipartUpload for S3Store {
    async fn start_upload(&self, key: &BlobKey, meta: ObjectMeta<'_>) -> StoreResult<Upload> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(meta.content_type)
            .set_metadata(Some(metadata::of_blob(meta.extension, meta.version)))
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        let id = upload
            .upload_id()
            .ok_or_else(|| StoreError::Permanent("S3 answered no upload id".into()))?;
        Ok(Upload {
            key: key.clone(),
            id: id.to_owned(),
        })
    }

    async fn upload_part(
        &self,
        upload: &Upload,
        number: i32,
        data: Bytes,
    ) -> StoreResult<UploadedPart> {
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(&upload.id)
            .part_number(number)
            .body(ByteStream::from(data))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|_| upload_gone()))?;
        Ok(UploadedPart {
            number,
            etag: part.e_tag().map(str::to_owned),
        })
    }

    async fn complete_upload(&self, upload: &Upload, parts: Vec<UploadedPart>) -> StoreResult<()> {
        let parts = parts
            .into_iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .set_e_tag(p.etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|_| upload_gone()))?;
        Ok(())
    }

    async fn abort_upload(&self, upload: &Upload) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(upload.key.as_str())
            .upload_id(&upload.id)
            .send()
            .await
        {
            tracing::warn!(key = %upload.key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "cannot abort a multipart upload");
        }
    }
}

/// A 404 in the middle of a multipart upload: the upload (or its bucket) is gone.
fn upload_gone() -> StoreError {
    StoreError::Permanent("the multipart upload or its bucket no longer exists".into())
}
