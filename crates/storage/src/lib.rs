//! Blob storage.
//!
//! A [`BlobStore`] holds two kinds of content: committed blobs, addressed by digest and
//! immutable, and in-progress uploads, addressed by upload id and written at an offset. The
//! interface is streaming in both directions and never needs a whole blob in memory.
//!
//! A store knows nothing of repositories, access or digests' correctness: the registry layer
//! hashes what it streams in, and the metadata database decides what is visible. The store's
//! only promise is that a committed blob is complete and durable before `commit_upload`
//! returns, so that the database row written after it never points at a partial file.

use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, UploadId};
use bytes::Bytes;
use futures_util::Stream;

#[cfg(any(test, feature = "testing"))]
pub mod behaviour;
mod file_chunks;
pub mod filesystem;
#[cfg(any(test, feature = "testing"))]
pub mod garage_testing;
pub mod s3;

pub use filesystem::FilesystemStore;
pub use s3::{S3Settings, S3Store};

/// A stream of bytes, for request bodies going in and blob contents going out.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found in storage")]
    NotFound,
    /// Reading the client's request body failed (disconnect, malformed chunked encoding).
    /// This is the client's failure, not the store's.
    #[error("request body: {0}")]
    Body(io::Error),
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    /// A remote store cannot be reached or failed; retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// How a client gets a blob's bytes.
pub enum BlobContent {
    /// The bytes of the requested range, streamed through berth.
    Stream(ByteStream),
    /// A URL the client should fetch directly (a presigned object-store URL).
    Redirect(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Reads a committed blob, or the given range of it.
    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError>;

    /// Starts an empty upload.
    async fn create_upload(&self, id: UploadId) -> Result<(), StorageError>;

    /// Writes `data` into the upload starting at `offset`, discarding anything the upload held
    /// beyond `offset` (left by an earlier write that failed before it was acknowledged).
    /// Returns the number of bytes written; they are durable when this returns.
    async fn write_upload(
        &self,
        id: UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64, StorageError>;

    /// Reads the first `size` bytes of an upload back (to hash them with another algorithm).
    async fn read_upload(&self, id: UploadId, size: u64) -> Result<ByteStream, StorageError>;

    /// Makes the upload's first `size` bytes the blob `digest`, atomically: the blob is
    /// either absent or complete. If the blob already exists the upload is simply dropped
    /// (content addressing makes the two identical).
    async fn commit_upload(
        &self,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<(), StorageError>;

    /// Removes an upload; removing one that does not exist is not an error.
    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError>;

    /// Every upload the store holds, with when it was last written, so that uploads whose
    /// session was never recorded (a crash mid-request) can be purged.
    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError>;

    /// Removes committed blobs (garbage collection), as many per request as the store
    /// allows (S3: up to 1000 per DeleteObjects); a blob that is not there counts as removed.
    /// One outcome per digest, in order.
    async fn delete_blobs(&self, digests: &[Digest]) -> Vec<Result<(), StorageError>>;

    /// Whether the store is reachable and writable, for readiness checks.
    async fn check(&self) -> Result<(), StorageError>;
}
