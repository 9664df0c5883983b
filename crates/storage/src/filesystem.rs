//! Blob storage on a local filesystem.
//!
//! Layout under the root directory:
//!
//! ```text
//! docker/registry/v2/blobs/sha256/ab/abcdef.../data   committed blobs, as the official registry lays them out
//! berth/uploads/<upload id>                          uploads in progress, one file each
//! berth/quarantine/<algorithm>/<hex>                 blobs whose bytes failed verification
//! ```
//!
//! Uploads live on the same filesystem as blobs so that committing one is a `rename`: after
//! the upload's data is fsynced, the rename makes it visible under its digest in one atomic
//! step, and fsyncing the directory makes the rename itself durable.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, UploadId};
use futures_util::stream::BoxStream;

use crate::file_chunks::FileChunks;
#[cfg(test)]
use crate::write_blocks::WRITE_BLOCK;
use crate::write_blocks::{Blocks, write_blocks};
use crate::{
    BlobContent, BlobKey, BlobStore, ByteStream, Committed, ListedBlob, StorageError, StoredBlob,
    UploadFollower,
};

pub struct FilesystemStore {
    root: PathBuf,
    blobs: PathBuf,
    uploads: PathBuf,
    /// Incoming data is written in blocks of [`WRITE_BLOCK`] bytes, reused across uploads.
    blocks: Arc<Blocks>,
}

impl FilesystemStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FilesystemStore> {
        let root = root.into();
        let blobs = root.join("docker/registry/v2/blobs");
        let uploads = root.join("berth/uploads");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&uploads)?;
        Ok(FilesystemStore {
            root,
            blobs,
            uploads,
            blocks: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/<algorithm>/<first two hex>/<hex>/data`. The digest is validated, so the path
    /// cannot escape the root.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn upload_path(&self, id: UploadId) -> PathBuf {
        self.uploads.join(id.to_string())
    }

    fn quarantine_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(crate::quarantine_key(digest))
    }
}

/// Every `<algorithm>/<xx>/<hex>/data` under `blobs`, sent to `found` as it walks; stops
/// when the receiver is gone.
fn walk_blobs(
    blobs: &Path,
    found: &tokio::sync::mpsc::Sender<Result<ListedBlob, StorageError>>,
) -> io::Result<()> {
    let entries = |dir: &Path| -> io::Result<Vec<fs::DirEntry>> {
        match fs::read_dir(dir) {
            Ok(entries) => entries.collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    for algorithm in entries(blobs)? {
        for prefix in entries(&algorithm.path())? {
            for blob in entries(&prefix.path())? {
                let name = format!(
                    "{}:{}",
                    algorithm.file_name().to_string_lossy(),
                    blob.file_name().to_string_lossy()
                );
                let Ok(digest) = Digest::parse(&name) else {
                    continue;
                };
                let meta = match fs::metadata(blob.path().join("data")) {
                    Ok(meta) => meta,
                    // A directory without data: a commit that never happened.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let listed = ListedBlob {
                    key: BlobKey::Digest(digest),
                    size: Some(meta.len()),
                    modified: meta.modified().ok(),
                };
                if found.blocking_send(Ok(listed)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Runs blocking filesystem work off the async threads. A missing file or directory is
/// reported as [`StorageError::NotFound`].
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
    {
        Ok(value) => Ok(value),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StorageError::NotFound),
        Err(e) => Err(StorageError::Io(e)),
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates `dir` and any missing parents, fsyncing each parent whose entry list changed so
/// that the new directories survive a power loss along with what is renamed into them.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Another commit of a blob with the same prefix got there first.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FilesystemStore {
    async fn read_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError> {
        let path = self.blob_path(&blob.digest);
        let (file, size) = blocking(move || {
            let file = File::open(path)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        })
        .await?;
        let (start, end) = match range {
            Some(r) => (r.start, (r.end + 1).min(size)),
            None => (0, size),
        };
        Ok(BlobContent::Stream(Box::pin(FileChunks::new(
            file, start, end,
        ))))
    }

    async fn create_upload(&self, id: UploadId) -> Result<(), StorageError> {
        let path = self.upload_path(id);
        blocking(move || {
            OpenOptions::new().write(true).create_new(true).open(path)?;
            Ok(())
        })
        .await
    }

    async fn write_upload(
        &self,
        id: UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64, StorageError> {
        let path = self.upload_path(id);
        let file = blocking(move || {
            let file = OpenOptions::new().write(true).open(path)?;
            // Whatever lies past `offset` was never acknowledged.
            file.set_len(offset)?;
            Ok(Arc::new(file))
        })
        .await?;

        let written = write_blocks(&self.blocks, &file, offset, data, None).await?;
        // Durable before the caller records the new size.
        blocking(move || file.sync_data()).await?;
        Ok(written)
    }

    /// The follower reads the upload's own file (no copy of the bytes is written): through
    /// its own handle, which still reads the bytes once the commit has renamed the file or a
    /// failure has removed it.
    async fn write_upload_followed(
        &self,
        id: UploadId,
        data: ByteStream,
        follower: &dyn UploadFollower,
    ) -> Result<u64, StorageError> {
        let path = self.upload_path(id);
        let file = blocking(move || {
            let file = OpenOptions::new().read(true).write(true).open(path)?;
            file.set_len(0)?;
            Ok(Arc::new(file))
        })
        .await?;
        follower.opened(Arc::clone(&file));
        // Made durable by the commit (`sync_all`), after the follower had the last byte.
        write_blocks(&self.blocks, &file, 0, data, Some(follower)).await
    }

    async fn read_upload(&self, id: UploadId, size: u64) -> Result<ByteStream, StorageError> {
        let path = self.upload_path(id);
        let file = blocking(move || File::open(path)).await?;
        Ok(Box::pin(FileChunks::new(file, 0, size)))
    }

    async fn commit_upload(
        &self,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<Committed, StorageError> {
        let upload = self.upload_path(id);
        let blob = self.blob_path(digest);
        blocking(move || {
            if blob.exists() {
                // Content addressing: the blob is already here, complete. The upload may be
                // gone already if an earlier commit renamed it but was not recorded.
                return match fs::remove_file(&upload) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                };
            }
            let file = OpenOptions::new().write(true).open(&upload)?;
            file.set_len(size)?;
            file.sync_all()?;
            drop(file);
            let dir = blob.parent().expect("blob paths have a parent");
            create_dir_durably(dir)?;
            fs::rename(&upload, &blob)?;
            sync_dir(dir)
        })
        .await?;
        Ok(Committed::default())
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError> {
        let path = self.upload_path(id);
        blocking(move || match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError> {
        let dir = self.uploads.clone();
        blocking(move || {
            let mut uploads = Vec::new();
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| UploadId::parse(n).ok())
                else {
                    continue;
                };
                // An upload committed or deleted since the directory was read is gone: skip it.
                match entry.metadata() {
                    Ok(metadata) => uploads.push((id, metadata.modified()?)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(uploads)
        })
        .await
    }

    async fn delete_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        let path = self.blob_path(&blob.digest);
        blocking(move || {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            // The now empty `<hex>` directory; its parent is shared with other blobs.
            let dir = path.parent().expect("blob paths have a parent");
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn stat_blob(&self, blob: &StoredBlob) -> Result<Option<u64>, StorageError> {
        let path = self.blob_path(&blob.digest);
        match blocking(move || fs::metadata(path)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list_blobs(&self) -> BoxStream<'_, Result<ListedBlob, StorageError>> {
        let (found, receiver) = tokio::sync::mpsc::channel(256);
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = walk_blobs(&blobs, &found) {
                let _ = found.blocking_send(Err(StorageError::Io(e)));
            }
        });
        Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async { receiver.recv().await.map(|item| (item, receiver)) },
        ))
    }

    async fn quarantine_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        let path = self.blob_path(&blob.digest);
        let aside = self.quarantine_path(&blob.digest);
        blocking(move || {
            let dir = aside.parent().expect("quarantine paths have a parent");
            create_dir_durably(dir)?;
            fs::rename(&path, &aside)?;
            sync_dir(dir)?;
            sync_dir(path.parent().expect("blob paths have a parent"))
        })
        .await
    }

    async fn check(&self) -> Result<(), StorageError> {
        let probe = self.uploads.join(".readiness-probe");
        blocking(move || {
            fs::write(&probe, b"ok")?;
            fs::remove_file(&probe)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::Algorithm;
    use bytes::Bytes;
    use futures_util::stream;

    #[tokio::test]
    async fn passes_the_behaviour_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(dir.path()).unwrap();
        let other = FilesystemStore::open(dir.path()).unwrap();
        crate::behaviour::run_all(&store, &other, WRITE_BLOCK).await;
    }

    #[tokio::test]
    async fn blobs_use_the_official_registry_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::open(dir.path()).unwrap();
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        let body: ByteStream = Box::pin(stream::iter([Ok(Bytes::from_static(b"layout"))]));
        store.write_upload(id, 0, body).await.unwrap();
        let digest = Digest::of(Algorithm::Sha256, b"layout");
        assert_eq!(
            store.commit_upload(id, 6, &digest).await.unwrap(),
            Committed::default()
        );
        let expected = dir
            .path()
            .join("docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data");
        assert_eq!(fs::read(expected).unwrap(), b"layout");
        assert_eq!(
            fs::read_dir(dir.path().join("berth/uploads"))
                .unwrap()
                .count(),
            0
        );
    }
}
