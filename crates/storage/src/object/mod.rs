//! Blob storage in an object store: S3 and S3-compatible stores (AWS S3, Garage, MinIO, Ceph
//! RGW), Google Cloud Storage and Azure Blob Storage, through the `object_store` crate. One
//! implementation, [`ObjectBlobStore`]; each service is a configuration of it (`s3`, `gcs`,
//! `azure`) that supplies an `object_store` client for reads, listings and deletes, an
//! [`ObjectWriter`] for writes, and a signer for presigned redirects where the service has one.
//!
//! Layout under the configured root prefix, the same as the filesystem backend's:
//!
//! ```text
//! docker/registry/v2/blobs/sha256/ab/abcdef.../data   committed blobs
//! berth/uploads/<id>/state/<size>                    an upload's state once <size> bytes were acknowledged
//! berth/uploads/<id>/tail/<size>                     the bytes after its last complete part at that point
//! berth/uploads/<id>/data                            the assembled upload, once sealed
//! berth/quarantine/<algorithm>/<hex>                 blobs whose bytes failed verification
//! ```
//!
//! An upload streams into parts of a fixed size (S3 wants at least 5 MiB for every part but
//! the last): an S3 multipart upload, Azure blocks, or GCS part objects composed at the end.
//! Bytes that do not fill a part yet are kept as a `tail` object between requests, so at most
//! [`PARTS_IN_FLIGHT`] parts plus the one filling are ever in memory; parts are stored while
//! the next one is read from the client. After each write the store records a state snapshot
//! named by the size it represents: the next write, on this instance or another, starts from
//! the snapshot of the size the database acknowledged, re-uploading (and so replacing) any part
//! a failed request left behind. Nothing an instance holds in memory is needed by another.
//!
//! Committing assembles the parts into the upload's `data` object, then copies it to the
//! blob's address; an object becomes visible only once it is whole.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, UploadId};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, FuturesOrdered};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::{
    BlobContent, BlobKey, BlobStore, ByteStream, Committed, ListedBlob, StorageError, StoredBlob,
};

mod azure;
mod gcs;
mod s3;
mod writer;

pub use azure::{AzureSettings, MIN_BLOCK_SIZE};
pub use gcs::{GcsSettings, MIN_COMPOSE_PART};
pub use s3::{MIN_PART_SIZE, S3Encryption, S3Settings};
pub(crate) use writer::ObjectWriter;

/// Parts of one upload stored at once while the next one fills from the client. Memory per
/// upload: this many parts plus the one filling (3 x 5 MiB with S3's default `chunksize`).
const PARTS_IN_FLIGHT: usize = 2;

/// An object store holding blobs; see the module documentation.
pub struct ObjectBlobStore {
    /// Reads, listings, deletes.
    objects: Arc<dyn ObjectStore>,
    /// Writes: small objects, parts, server-side copies.
    writer: Box<dyn ObjectWriter>,
    /// Presigns blob URLs for redirects, when the service can and redirects are on.
    signer: Option<Arc<dyn Signer>>,
    root: String,
    part_size: u64,
    redirect: Option<Duration>,
}

/// Where an upload stood when a given number of bytes had been acknowledged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UploadState {
    /// The assembly (S3 multipart upload) holding the complete parts, once one was needed.
    multipart: Option<String>,
    /// The ids of the complete parts (ETags, block ids, generations), in order; each is
    /// `part_size` bytes.
    parts: Vec<String>,
    /// The part size this upload started with; a configuration change must not alter it.
    part_size: u64,
    /// Bytes after the last part, in the `tail` object of the same size.
    tail: u64,
    /// The parts were assembled into the `data` object; no more writes.
    sealed: bool,
}

impl UploadState {
    fn size(&self) -> u64 {
        self.parts.len() as u64 * self.part_size + self.tail
    }
}

pub(crate) fn storage_error(err: object_store::Error) -> StorageError {
    match err {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Unavailable(other.to_string()),
    }
}

/// Retries that fail over to a 503 within seconds rather than retrying for minutes.
pub(crate) fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..RetryConfig::default()
    }
}

impl ObjectBlobStore {
    fn new(
        objects: Arc<dyn ObjectStore>,
        writer: Box<dyn ObjectWriter>,
        signer: Option<Arc<dyn Signer>>,
        root: &str,
        part_size: u64,
        redirect: Option<Duration>,
    ) -> ObjectBlobStore {
        ObjectBlobStore {
            objects,
            writer,
            signer: redirect.and(signer),
            root: root.trim_matches('/').to_string(),
            part_size,
            redirect,
        }
    }

    fn path(&self, relative: &str) -> Path {
        if self.root.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{}/{relative}", self.root))
        }
    }

    /// The registry:2 layout, as on the filesystem.
    pub fn blob_path(&self, digest: &Digest) -> Path {
        self.path(&crate::blob_key(digest))
    }

    fn upload_prefix(&self, id: UploadId) -> Path {
        self.path(&format!("berth/uploads/{id}"))
    }

    fn state_path(&self, id: UploadId, size: u64) -> Path {
        self.path(&format!("berth/uploads/{id}/state/{size}"))
    }

    fn tail_path(&self, id: UploadId, size: u64) -> Path {
        self.path(&format!("berth/uploads/{id}/tail/{size}"))
    }

    fn data_path(&self, id: UploadId) -> Path {
        self.path(&format!("berth/uploads/{id}/data"))
    }

    async fn get_bytes(&self, path: &Path) -> Result<Bytes, StorageError> {
        self.objects
            .get(path)
            .await
            .map_err(storage_error)?
            .bytes()
            .await
            .map_err(storage_error)
    }

    async fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        match self.objects.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn delete_if_present(&self, path: &Path) -> Result<(), StorageError> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn load_state(&self, id: UploadId, size: u64) -> Result<UploadState, StorageError> {
        let json = self.get_bytes(&self.state_path(id, size)).await?;
        serde_json::from_slice(&json).map_err(|e| {
            StorageError::Io(std::io::Error::other(format!("corrupt upload state: {e}")))
        })
    }

    async fn save_state(&self, id: UploadId, state: &UploadState) -> Result<(), StorageError> {
        let json = serde_json::to_vec(state).expect("upload states serialize");
        self.writer
            .put(&self.state_path(id, state.size()), Bytes::from(json))
            .await
    }

    async fn load_tail(&self, id: UploadId, state: &UploadState) -> Result<BytesMut, StorageError> {
        if state.tail == 0 {
            return Ok(BytesMut::new());
        }
        let tail = self.get_bytes(&self.tail_path(id, state.size())).await?;
        Ok(BytesMut::from(&tail[..]))
    }

    /// The id of the upload's assembly, starting it first if no part was written yet.
    async fn assembly(
        &self,
        id: UploadId,
        state: &mut UploadState,
    ) -> Result<String, StorageError> {
        if let Some(multipart) = &state.multipart {
            return Ok(multipart.clone());
        }
        let created = self.writer.start_parts(&self.data_path(id)).await?;
        state.multipart = Some(created.clone());
        // Recorded in the snapshot being extended (its size is unchanged: no part yet), so a
        // retry reuses this assembly and deleting the upload aborts it.
        self.save_state(id, state).await?;
        Ok(created)
    }

    /// Uploads `data` as part number `parts.len()`, starting the assembly first if this is
    /// the first part.
    async fn put_part(
        &self,
        id: UploadId,
        state: &mut UploadState,
        data: Bytes,
    ) -> Result<(), StorageError> {
        let multipart = self.assembly(id, state).await?;
        let part = self
            .writer
            .put_part(&self.data_path(id), &multipart, state.parts.len(), data)
            .await?;
        state.parts.push(part);
        Ok(())
    }

    /// Assembles an upload's first `size` bytes into its `data` object (idempotent).
    async fn seal(&self, id: UploadId, size: u64) -> Result<UploadState, StorageError> {
        let mut state = self.load_state(id, size).await?;
        if state.sealed {
            return Ok(state);
        }
        let tail = self.load_tail(id, &state).await?.freeze();
        if state.multipart.is_none() {
            // Small enough never to have needed a part.
            self.writer.put(&self.data_path(id), tail).await?;
        } else {
            if !tail.is_empty() {
                self.put_part(id, &mut state, tail).await?;
            }
            let multipart = state.multipart.clone().expect("checked above");
            self.writer
                .complete_parts(&self.data_path(id), &multipart, &state.parts)
                .await?;
        }
        let sealed = UploadState {
            sealed: true,
            ..state.clone()
        };
        // The snapshot of this size now says "sealed": a retried commit skips the work.
        let json = serde_json::to_vec(&sealed).expect("upload states serialize");
        self.writer
            .put(&self.state_path(id, size), Bytes::from(json))
            .await?;
        Ok(sealed)
    }
}

fn io_stream(result: object_store::GetResult) -> ByteStream {
    Box::pin(
        result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string())),
    )
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn read_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError> {
        if let (Some(signer), Some(expires)) = (&self.signer, self.redirect) {
            let url = signer
                .signed_url(http::Method::GET, &self.blob_path(&blob.digest), expires)
                .await
                .map_err(storage_error)?;
            return Ok(BlobContent::Redirect(url.to_string()));
        }
        self.stream_blob(blob, range).await.map(BlobContent::Stream)
    }

    async fn stream_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let path = self.blob_path(&blob.digest);
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..GetOptions::default()
        };
        let result = self
            .objects
            .get_opts(&path, options)
            .await
            .map_err(storage_error)?;
        Ok(io_stream(result))
    }

    async fn create_upload(&self, id: UploadId) -> Result<(), StorageError> {
        let state = UploadState {
            part_size: self.part_size,
            ..UploadState::default()
        };
        self.save_state(id, &state).await
    }

    async fn write_upload(
        &self,
        id: UploadId,
        offset: u64,
        mut data: ByteStream,
    ) -> Result<u64, StorageError> {
        let mut state = self.load_state(id, offset).await?;
        if state.sealed {
            return Err(StorageError::Io(std::io::Error::other(
                "the upload is already sealed",
            )));
        }
        let part_size = state.part_size as usize;
        let mut pending = self.load_tail(id, &state).await?;
        let mut written = 0u64;
        let path = self.data_path(id);
        // Parts being stored while the client's next bytes are read: receiving and storing
        // overlap instead of taking turns. Numbered in order; they complete in order.
        let mut storing = FuturesOrdered::new();
        loop {
            let chunk = if storing.len() < PARTS_IN_FLIGHT {
                if storing.is_empty() {
                    data.next().await
                } else {
                    tokio::select! {
                        stored = storing.next() => {
                            state.parts.push(stored.expect("not empty")?);
                            continue;
                        }
                        chunk = data.next() => chunk,
                    }
                }
            } else {
                // As many parts in flight as memory allows: wait for the oldest.
                state.parts.push(storing.next().await.expect("not empty")?);
                continue;
            };
            let Some(chunk) = chunk else { break };
            let mut chunk = chunk.map_err(StorageError::Body)?;
            written += chunk.len() as u64;
            while !chunk.is_empty() {
                let take = (part_size - pending.len()).min(chunk.len());
                pending.extend_from_slice(&chunk.split_to(take));
                if pending.len() == part_size {
                    let part = std::mem::replace(&mut pending, BytesMut::with_capacity(part_size))
                        .freeze();
                    let multipart = self.assembly(id, &mut state).await?;
                    let index = state.parts.len() + storing.len();
                    let (writer, path) = (&self.writer, &path);
                    storing.push_back(async move {
                        writer.put_part(path, &multipart, index, part).await
                    });
                }
            }
        }
        while let Some(stored) = storing.next().await {
            state.parts.push(stored?);
        }
        state.tail = pending.len() as u64;
        if !pending.is_empty() {
            self.writer
                .put(&self.tail_path(id, state.size()), pending.freeze())
                .await?;
        }
        // The snapshot last: until it exists, the write did not happen.
        self.save_state(id, &state).await?;
        Ok(written)
    }

    async fn read_upload(&self, id: UploadId, size: u64) -> Result<ByteStream, StorageError> {
        // Parts of an unfinished assembly cannot be read back: assemble them first.
        self.seal(id, size).await?;
        let result = self
            .objects
            .get(&self.data_path(id))
            .await
            .map_err(storage_error)?;
        Ok(io_stream(result))
    }

    async fn commit_upload(
        &self,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<Committed, StorageError> {
        let blob = self.blob_path(digest);
        if !self.exists(&blob).await? {
            self.seal(id, size).await?;
            self.writer.copy(&self.data_path(id), &blob, size).await?;
        }
        self.delete_upload(id).await?;
        Ok(Committed::default())
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError> {
        let prefix = self.upload_prefix(id);
        let objects: Vec<_> = self
            .objects
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(storage_error)?;
        // Abandon any unfinished assembly so its parts stop costing storage.
        for object in &objects {
            if object.location.as_ref().contains("/state/")
                && let Ok(json) = self.get_bytes(&object.location).await
                && let Ok(UploadState {
                    multipart: Some(multipart),
                    sealed: false,
                    ..
                }) = serde_json::from_slice::<UploadState>(&json)
            {
                // Already completed or aborted through another snapshot: nothing to do.
                let _ = self
                    .writer
                    .abort_parts(&self.data_path(id), &multipart)
                    .await;
            }
        }
        for object in objects {
            self.delete_if_present(&object.location).await?;
        }
        Ok(())
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError> {
        let prefix = self.path("berth/uploads");
        let mut latest: std::collections::HashMap<UploadId, SystemTime> =
            std::collections::HashMap::new();
        let mut objects = self.objects.list(Some(&prefix));
        while let Some(object) = objects.try_next().await.map_err(storage_error)? {
            let relative = object
                .location
                .as_ref()
                .strip_prefix(prefix.as_ref())
                .unwrap_or_default();
            let Some(id) = relative
                .trim_start_matches('/')
                .split('/')
                .next()
                .and_then(|s| UploadId::parse(s).ok())
            else {
                continue;
            };
            let modified = SystemTime::from(object.last_modified);
            let entry = latest.entry(id).or_insert(modified);
            *entry = (*entry).max(modified);
        }
        Ok(latest.into_iter().collect())
    }

    async fn delete_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        self.delete_if_present(&self.blob_path(&blob.digest)).await
    }

    /// object_store's bulk delete: S3's DeleteObjects (up to 1000 keys a request), and
    /// concurrent single deletes on GCS and Azure.
    async fn delete_blobs(&self, blobs: &[StoredBlob]) -> Result<(), StorageError> {
        let paths: Vec<object_store::Result<Path>> = blobs
            .iter()
            .map(|blob| Ok(self.blob_path(&blob.digest)))
            .collect();
        let mut deleted = self
            .objects
            .delete_stream(futures_util::stream::iter(paths).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(())
    }

    async fn stat_blob(&self, blob: &StoredBlob) -> Result<Option<u64>, StorageError> {
        match self.objects.head(&self.blob_path(&blob.digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    fn list_blobs(&self) -> BoxStream<'_, Result<ListedBlob, StorageError>> {
        let prefix = self.path("docker/registry/v2/blobs");
        let root = self.root.clone();
        Box::pin(
            self.objects
                .list(Some(&prefix))
                .map_err(storage_error)
                .try_filter_map(move |object| {
                    let key = object.location.as_ref();
                    let relative = if root.is_empty() {
                        Some(key)
                    } else {
                        key.strip_prefix(root.as_str())
                            .and_then(|k| k.strip_prefix('/'))
                    };
                    let listed =
                        relative
                            .and_then(crate::digest_of_blob_key)
                            .map(|digest| ListedBlob {
                                key: BlobKey::Digest(digest),
                                size: Some(object.size),
                                modified: Some(SystemTime::from(object.last_modified)),
                            });
                    std::future::ready(Ok(listed))
                }),
        )
    }

    async fn quarantine_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        let from = self.blob_path(&blob.digest);
        let aside = self.path(&crate::quarantine_key(&blob.digest));
        let size = self.objects.head(&from).await.map_err(storage_error)?.size;
        self.writer.copy(&from, &aside, size).await?;
        self.delete_if_present(&from).await
    }

    async fn check(&self) -> Result<(), StorageError> {
        let probe = self.path("berth/readiness-probe");
        self.writer.put(&probe, Bytes::from_static(b"ok")).await?;
        self.objects.delete(&probe).await.map_err(storage_error)
    }
}
