//! How an object store is written: small objects, the parts of an upload, server-side copies.
//! S3 and Azure do all of it through `object_store` ([`MultipartWriter`]); Google Cloud Storage
//! assembles parts with its JSON API's compose (see `gcs`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::storage_error;
use crate::StorageError;

#[async_trait]
pub(crate) trait ObjectWriter: Send + Sync {
    /// Writes a small object (state snapshots, tails) in one request.
    async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StorageError>;

    /// Copies an object of `size` bytes within the store; `to` appears whole or not at all.
    async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<(), StorageError>;

    /// Starts assembling parts into `target`; returns the assembly's id.
    async fn start_parts(&self, target: &Path) -> Result<String, StorageError>;

    /// Writes part number `index` (replacing an earlier write of that number); returns what
    /// identifies this write of the part when completing.
    async fn put_part(
        &self,
        target: &Path,
        assembly: &str,
        index: usize,
        data: Bytes,
    ) -> Result<String, StorageError>;

    /// Makes `target` the concatenation of `parts`, in order.
    async fn complete_parts(
        &self,
        target: &Path,
        assembly: &str,
        parts: &[String],
    ) -> Result<(), StorageError>;

    /// Abandons an unfinished assembly.
    async fn abort_parts(&self, target: &Path, assembly: &str) -> Result<(), StorageError>;
}

/// Writes through `object_store`: parts are the service's multipart upload (S3) or blocks
/// (Azure).
pub(crate) struct MultipartWriter {
    pub objects: Arc<dyn ObjectStore>,
    pub multipart: Arc<dyn MultipartStore>,
    /// The largest object the service copies in one request (S3: 5 GiB); bigger ones are
    /// copied by streaming them through berth in parts of `part_size`.
    pub max_copy: Option<u64>,
    pub part_size: u64,
    /// Check the copy's size afterwards: the service may complete a copy asynchronously
    /// (Azure's Copy Blob), and a blob must never be recorded before it is whole.
    pub verify_copy: bool,
}

impl MultipartWriter {
    /// Copies a blob that is too large for a single-request copy by streaming it.
    async fn stream_copy(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        let mut source = self
            .objects
            .get(from)
            .await
            .map_err(storage_error)?
            .into_stream();
        let mut upload = WriteMultipart::new_with_chunk_size(
            self.objects
                .put_multipart(to)
                .await
                .map_err(storage_error)?,
            self.part_size as usize,
        );
        while let Some(chunk) = source.try_next().await.map_err(storage_error)? {
            upload.wait_for_capacity(2).await.map_err(storage_error)?;
            upload.put(chunk);
        }
        upload.finish().await.map_err(storage_error)?;
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for MultipartWriter {
    async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), StorageError> {
        self.objects
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<(), StorageError> {
        if self.max_copy.is_some_and(|max| size > max) {
            return self.stream_copy(from, to).await;
        }
        self.objects.copy(from, to).await.map_err(storage_error)?;
        if self.verify_copy {
            let copied = self.objects.head(to).await.map_err(storage_error)?.size;
            if copied != size {
                return Err(StorageError::Unavailable(format!(
                    "the copy to {to} is not complete yet ({copied} of {size} bytes)"
                )));
            }
        }
        Ok(())
    }

    async fn start_parts(&self, target: &Path) -> Result<String, StorageError> {
        self.multipart
            .create_multipart(target)
            .await
            .map_err(storage_error)
    }

    async fn put_part(
        &self,
        target: &Path,
        assembly: &str,
        index: usize,
        data: Bytes,
    ) -> Result<String, StorageError> {
        let assembly = assembly.to_string();
        let part = self
            .multipart
            .put_part(target, &assembly, index, PutPayload::from(data))
            .await
            .map_err(storage_error)?;
        Ok(part.content_id)
    }

    async fn complete_parts(
        &self,
        target: &Path,
        assembly: &str,
        parts: &[String],
    ) -> Result<(), StorageError> {
        let parts = parts
            .iter()
            .map(|id| PartId {
                content_id: id.clone(),
            })
            .collect();
        self.multipart
            .complete_multipart(target, &assembly.to_string(), parts)
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn abort_parts(&self, target: &Path, assembly: &str) -> Result<(), StorageError> {
        self.multipart
            .abort_multipart(target, &assembly.to_string())
            .await
            .map_err(storage_error)
    }
}
