//! Blob storage.
//!
//! A [`BlobStore`] holds two kinds of content: committed blobs, addressed by digest (and, in
//! content-addressed stores such as IPFS, by the content id the store gave them at commit)
//! and immutable, and in-progress uploads, addressed by upload id and written at an offset.
//! The interface is streaming in both directions and never needs a whole blob in memory.
//!
//! A store knows nothing of repositories, access or digests' correctness: the registry layer
//! hashes what it streams in, and the metadata database decides what is visible. The store's
//! only promise is that a committed blob is complete and durable before `commit_upload`
//! returns, so that the database row written after it never points at a partial file.
//!
//! Implementations: [`filesystem`], [`object`] (S3, Google Cloud Storage and Azure Blob
//! Storage, one implementation configured per service) and [`ipfs`] (a Kubo node's RPC API).

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, UploadId};
use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;

#[cfg(any(test, feature = "testing"))]
pub mod behaviour;
mod file_chunks;
pub mod filesystem;
pub mod ipfs;
pub mod object;
mod spool;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verify;
mod write_blocks;

pub use filesystem::FilesystemStore;
pub use ipfs::{IpfsCredentials, IpfsSettings, IpfsStore};
pub use object::{AzureSettings, GcsSettings, ObjectBlobStore, S3Encryption, S3Settings};

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
    /// A URL the client should fetch directly (a presigned object-store URL, an IPFS gateway).
    Redirect(String),
}

/// A committed blob as the metadata database records it: what a store needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    /// The content id a content-addressed store gave the blob at commit (IPFS: a CIDv1);
    /// `None` for stores that address blobs by digest.
    pub cid: Option<String>,
}

/// What committing an upload produced, to be recorded with the blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// See [`StoredBlob::cid`].
    pub cid: Option<String>,
}

/// How a store names a committed blob it holds, as found by listing the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobKey {
    Digest(Digest),
    /// A content id (an IPFS pin) in a store that knows blobs only by content id.
    Cid(String),
}

/// A blob found by [`BlobStore::list_blobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    pub key: BlobKey,
    /// The stored size, when listing reports it.
    pub size: Option<u64>,
    /// When its bytes were last written, when listing reports it (garbage collection leaves
    /// bytes younger than its grace period alone: their record may be on its way).
    pub modified: Option<SystemTime>,
}

/// Someone reading an upload while it is written (a pull-through cache serving a blob to its
/// clients as it arrives from the upstream); see [`BlobStore::write_upload_followed`].
pub trait UploadFollower: Send + Sync {
    /// The upload's bytes, readable (`pread`) at any offset below what [`written`] last
    /// reported, and still after the upload is committed or deleted. Called once, before
    /// anything is reported written.
    ///
    /// [`written`]: UploadFollower::written
    fn opened(&self, bytes: Arc<File>);

    /// The upload's first `upto` bytes are in the file [`opened`] gave. Called as the write
    /// goes on, with `upto` growing; last with the upload's whole size.
    ///
    /// [`opened`]: UploadFollower::opened
    fn written(&self, upto: u64);

    /// The writer checked every byte written (size and digest): they are the blob, and a
    /// follower may hand out its last byte without waiting for the bytes to be made durable
    /// and recorded. Never called when a check fails.
    fn verified(&self) {}
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Reads a committed blob, or the given range of it.
    async fn read_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError>;

    /// Reads a committed blob's bytes through berth even where clients are redirected
    /// (`storage.redirect`, an IPFS gateway): berth itself looking into a blob (an image's
    /// config for the dashboard and search, a content check). A store that never redirects
    /// needs no other implementation.
    async fn stream_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        match self.read_blob(blob, range).await? {
            BlobContent::Stream(stream) => Ok(stream),
            BlobContent::Redirect(_) => Err(StorageError::Io(io::Error::other(
                "the store redirects reads and cannot stream them",
            ))),
        }
    }

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

    /// Writes a fresh upload's whole body like [`BlobStore::write_upload`] from offset 0,
    /// while `follower` reads what is written so far; the bytes need not be durable when
    /// this returns (the commit that follows at once makes them so). The default, for stores whose uploads
    /// cannot be read before they are committed (object stores, IPFS), writes a copy of the
    /// bytes to an anonymous temporary file (the spool) as they stream to the store; the
    /// filesystem store lets the follower read its upload file itself.
    async fn write_upload_followed(
        &self,
        id: UploadId,
        data: ByteStream,
        follower: &dyn UploadFollower,
    ) -> Result<u64, StorageError> {
        spool::write_spooled(self, id, data, follower).await
    }

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
    ) -> Result<Committed, StorageError>;

    /// Writes a whole blob into the empty upload `id` and commits it as `digest` (a
    /// monolithic push, or a session finished by its only chunk); returns its size. The
    /// caller checks `data` as it streams (size, digest): the stream fails as its last item
    /// when its bytes are not the blob, and then nothing of it becomes a blob (the upload
    /// may keep what was written, as after any failed write). On success the upload is gone.
    /// Writing then committing is the default; IPFS streams the body into one pinned `add`,
    /// since a single request has nothing to stage for another request to continue.
    async fn write_whole_upload(
        &self,
        id: UploadId,
        data: ByteStream,
        digest: &Digest,
    ) -> Result<(u64, Committed), StorageError> {
        let size = self.write_upload(id, 0, data).await?;
        let committed = self.commit_upload(id, size, digest).await?;
        Ok((size, committed))
    }

    /// Removes an upload; removing one that does not exist is not an error.
    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError>;

    /// Every upload the store holds, with when it was last written, so that uploads whose
    /// session was never recorded (a crash mid-request) can be purged.
    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError>;

    /// Removes a committed blob (garbage collection; IPFS unpins it). Removing one that is
    /// not there is not an error.
    async fn delete_blob(&self, blob: &StoredBlob) -> Result<(), StorageError>;

    /// Removes many committed blobs (garbage collection's sweep), in batches where the
    /// service has a batch delete; like [`BlobStore::delete_blob`] for each otherwise. Stops
    /// at the first failure: blobs after it may remain, and deleting them again is harmless.
    async fn delete_blobs(&self, blobs: &[StoredBlob]) -> Result<(), StorageError> {
        for blob in blobs {
            self.delete_blob(blob).await?;
        }
        Ok(())
    }

    /// The stored size of a committed blob, `None` when its bytes are not there.
    async fn stat_blob(&self, blob: &StoredBlob) -> Result<Option<u64>, StorageError>;

    /// Every committed blob the store holds, in no particular order (for integrity checks,
    /// which compare it with the database).
    fn list_blobs(&self) -> BoxStream<'_, Result<ListedBlob, StorageError>>;

    /// Moves a committed blob's bytes aside (under `berth/quarantine/`) because they do not
    /// match its digest: it is no longer served, a new push of the digest stores it afresh,
    /// and the bad bytes stay for inspection. A content-addressed store, where the content
    /// id cannot name other bytes, keeps the content and relies on the database's mark.
    async fn quarantine_blob(&self, blob: &StoredBlob) -> Result<(), StorageError>;

    /// Whether the store is reachable and writable, for readiness checks.
    async fn check(&self) -> Result<(), StorageError>;
}

/// The registry:2 layout of a committed blob, relative to the store's root:
/// `docker/registry/v2/blobs/<algorithm>/<first two hex>/<hex>/data`.
pub fn blob_key(digest: &Digest) -> String {
    let hex = digest.hex();
    format!(
        "docker/registry/v2/blobs/{}/{}/{hex}/data",
        digest.algorithm().as_str(),
        &hex[..2]
    )
}

/// Where a quarantined blob's bytes go, relative to the store's root.
pub fn quarantine_key(digest: &Digest) -> String {
    format!(
        "berth/quarantine/{}/{}",
        digest.algorithm().as_str(),
        digest.hex()
    )
}

/// The digest of a blob key (see [`blob_key`]), or `None` if the key is something else.
pub fn digest_of_blob_key(key: &str) -> Option<Digest> {
    let rest = key.strip_prefix("docker/registry/v2/blobs/")?;
    let mut parts = rest.split('/');
    let (algorithm, prefix, hex, data) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if data != "data" || parts.next().is_some() || !hex.starts_with(prefix) || prefix.len() != 2 {
        return None;
    }
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}
