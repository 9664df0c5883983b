//! The blob store decorator: a `berth_storage_operation_duration_seconds` histogram by
//! backend and action, and a child span of the request per call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, UploadId};
use berth_storage::{
    BlobContent, BlobStore, ByteStream, Committed, ListedBlob, StorageError, StoredBlob,
};
use futures_util::stream::BoxStream;
use tracing::Instrument;

/// Times `call` as `action` of `backend`, in a span of its own.
async fn measure<T, E>(
    backend: &'static str,
    action: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let span = tracing::info_span!("storage", otel.name = action, backend, action);
    let started = Instant::now();
    let result = call.instrument(span).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!(
        "berth_storage_operation_duration_seconds",
        "backend" => backend,
        "action" => action,
        "outcome" => outcome
    )
    .record(started.elapsed().as_secs_f64());
    result
}

/// A [`BlobStore`] whose calls are timed and traced. Streams are timed until they are
/// handed over (time to first byte), not until the client has read them.
pub struct MeasuredBlobStore {
    inner: Arc<dyn BlobStore>,
    backend: &'static str,
}

impl MeasuredBlobStore {
    pub fn new(inner: Arc<dyn BlobStore>, backend: &'static str) -> MeasuredBlobStore {
        MeasuredBlobStore { inner, backend }
    }
}

#[async_trait]
impl BlobStore for MeasuredBlobStore {
    async fn read_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError> {
        measure(self.backend, "read_blob", self.inner.read_blob(blob, range)).await
    }

    async fn stream_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        measure(
            self.backend,
            "read_blob",
            self.inner.stream_blob(blob, range),
        )
        .await
    }

    async fn create_upload(&self, id: UploadId) -> Result<(), StorageError> {
        measure(self.backend, "create_upload", self.inner.create_upload(id)).await
    }

    async fn write_upload(
        &self,
        id: UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64, StorageError> {
        measure(
            self.backend,
            "write_upload",
            self.inner.write_upload(id, offset, data),
        )
        .await
    }

    async fn read_upload(&self, id: UploadId, size: u64) -> Result<ByteStream, StorageError> {
        measure(
            self.backend,
            "read_upload",
            self.inner.read_upload(id, size),
        )
        .await
    }

    async fn commit_upload(
        &self,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<Committed, StorageError> {
        measure(
            self.backend,
            "commit_upload",
            self.inner.commit_upload(id, size, digest),
        )
        .await
    }

    async fn write_whole_upload(
        &self,
        id: UploadId,
        data: ByteStream,
        digest: &Digest,
    ) -> Result<(u64, Committed), StorageError> {
        measure(
            self.backend,
            "write_whole_upload",
            self.inner.write_whole_upload(id, data, digest),
        )
        .await
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError> {
        measure(self.backend, "delete_upload", self.inner.delete_upload(id)).await
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError> {
        measure(self.backend, "list_uploads", self.inner.list_uploads()).await
    }

    async fn delete_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        measure(self.backend, "delete_blob", self.inner.delete_blob(blob)).await
    }

    async fn delete_blobs(&self, blobs: &[StoredBlob]) -> Result<(), StorageError> {
        measure(self.backend, "delete_blobs", self.inner.delete_blobs(blobs)).await
    }

    async fn stat_blob(&self, blob: &StoredBlob) -> Result<Option<u64>, StorageError> {
        measure(self.backend, "stat_blob", self.inner.stat_blob(blob)).await
    }

    /// Not timed: a listing is consumed at the caller's pace (integrity checks), so its
    /// duration says nothing of the store.
    fn list_blobs(&self) -> BoxStream<'_, Result<ListedBlob, StorageError>> {
        self.inner.list_blobs()
    }

    async fn quarantine_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        measure(
            self.backend,
            "quarantine_blob",
            self.inner.quarantine_blob(blob),
        )
        .await
    }

    async fn check(&self) -> Result<(), StorageError> {
        measure(self.backend, "check", self.inner.check()).await
    }
}
