//! Blob storage in IPFS, through a node's Kubo RPC API (`/api/v0`).
//!
//! Committed blobs are IPFS files: CIDv1 with raw leaves, pinned, their CID recorded with
//! the blob's row in the database (the digest alone cannot find them). Reads `cat` a range of
//! the CID, or redirect to a gateway when one is configured; the first read of a CID in a
//! process checks its size against the database's. Deleting a blob unpins it, and the node's
//! own garbage collection reclaims the space.
//!
//! Uploads are staged in the node's MFS (its mutable file system), so that they survive a
//! restart and any berth instance using the node can continue them:
//!
//! ```text
//! <root>/uploads/<id>/state/<size>     the upload's segments once <size> bytes were acknowledged
//! <root>/uploads/<id>/segments/<cid>   each segment, linked so that node GC keeps it
//! ```
//!
//! A blob that arrives whole in one request (a monolithic push, or a session finished by
//! its only chunk) has nothing another request could continue: it streams straight into one
//! pinned `add`, nothing staged. The registry checks the body (size, digest, quotas) as it
//! ends, and a body it refuses fails before the node sees its end, so the node never
//! completes or pins that file.
//!
//! Each chunked write streams its body straight into `add` as one segment (never buffered), then
//! records the state of the new size; as with the object stores, the next write starts from
//! the state of the size the database acknowledged, so a write that failed after its `add`
//! is simply forgotten. Committing an upload of one segment (a monolithic push, or one
//! `PATCH`) pins that segment: it already is the file. Several segments are concatenated by
//! streaming them back into one `add`, hashing them on the way: the digest is verified
//! against what the node holds before the CID is returned.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, DigestHasher, UploadId};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::{
    BlobContent, BlobKey, BlobStore, ByteStream, Committed, ListedBlob, StorageError, StoredBlob,
};

mod rpc;

use rpc::Rpc;

/// How to reach the node.
#[derive(Debug, Clone)]
pub struct IpfsSettings {
    /// The RPC API's base URL, e.g. `http://127.0.0.1:5001` (berth adds `/api/v0`).
    pub api: url::Url,
    /// Credentials for the API, when it is behind an authenticating proxy.
    pub credentials: Option<IpfsCredentials>,
    /// Pin committed blobs (on by default); without pins, the node's GC may reclaim them.
    pub pin: bool,
    /// A gateway to redirect blob GETs to (`https://gateway.example.com`, serving
    /// `/ipfs/<cid>`), instead of streaming them through berth.
    pub gateway: Option<url::Url>,
    /// The limit of every call to the node (and, for content lookups, the node's own limit).
    pub timeout: Duration,
    /// The MFS directory that stages uploads.
    pub root: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum IpfsCredentials {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Never shows the secrets.
impl std::fmt::Debug for IpfsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpfsCredentials::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            IpfsCredentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

pub struct IpfsStore {
    rpc: Arc<Rpc>,
    pin: bool,
    gateway: Option<url::Url>,
    root: String,
    /// CIDs whose size was checked against the database in this process.
    size_checked: Mutex<HashSet<String>>,
}

/// One `add`ed piece of an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Segment {
    cid: String,
    size: u64,
}

/// Where an upload stood when a given number of bytes had been acknowledged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UploadState {
    segments: Vec<Segment>,
    /// When this state was written (Unix milliseconds), for purging abandoned uploads.
    written_at: i64,
}

impl UploadState {
    fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Io(std::io::Error::other(what.to_string()))
}

impl IpfsStore {
    pub fn new(settings: &IpfsSettings) -> Result<IpfsStore, StorageError> {
        Ok(IpfsStore {
            rpc: Arc::new(Rpc::new(
                &settings.api,
                settings.credentials.clone(),
                settings.timeout,
            )?),
            pin: settings.pin,
            gateway: settings.gateway.clone(),
            root: format!("/{}", settings.root.trim_matches('/')),
            size_checked: Mutex::default(),
        })
    }

    fn upload_dir(&self, id: UploadId) -> String {
        format!("{}/uploads/{id}", self.root)
    }

    fn state_path(&self, id: UploadId, size: u64) -> String {
        format!("{}/uploads/{id}/state/{size}", self.root)
    }

    async fn load_state(&self, id: UploadId, size: u64) -> Result<UploadState, StorageError> {
        let json = self.rpc.read(&self.state_path(id, size)).await?;
        serde_json::from_slice(&json).map_err(|e| corrupt(format!("corrupt upload state: {e}")))
    }

    async fn save_state(&self, id: UploadId, state: &UploadState) -> Result<(), StorageError> {
        let json = serde_json::to_vec(state).expect("upload states serialize");
        self.rpc
            .write(&self.state_path(id, state.size()), Bytes::from(json))
            .await
    }

    /// The upload's segments, one after the other.
    fn concatenate(&self, segments: Vec<Segment>) -> ByteStream {
        let rpc = Arc::clone(&self.rpc);
        Box::pin(
            futures_util::stream::iter(segments)
                .then(move |segment| {
                    let rpc = Arc::clone(&rpc);
                    async move {
                        rpc.cat(&segment.cid, 0, segment.size)
                            .await
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    }
                })
                .try_flatten(),
        )
    }

    fn cid_of(blob: &StoredBlob) -> Result<&str, StorageError> {
        blob.cid.as_deref().ok_or_else(|| {
            corrupt(format!(
                "no IPFS CID is recorded for {}: it was not stored in IPFS",
                blob.digest
            ))
        })
    }

    /// Checks once per process that the node's file has the size the database records, so
    /// that a wrong CID is caught before anything of it is served.
    async fn check_size(&self, cid: &str, size: u64) -> Result<(), StorageError> {
        if self
            .size_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(cid)
        {
            return Ok(());
        }
        let stored = self.rpc.stat(&format!("/ipfs/{cid}")).await?;
        if stored != size {
            return Err(corrupt(format!(
                "IPFS file {cid} has {stored} bytes where {size} are recorded"
            )));
        }
        self.size_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cid.to_string());
        Ok(())
    }
}

#[async_trait]
impl BlobStore for IpfsStore {
    async fn read_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<BlobContent, StorageError> {
        let cid = Self::cid_of(blob)?;
        if let Some(gateway) = &self.gateway {
            let mut url = gateway.clone();
            url.path_segments_mut()
                .map_err(|()| corrupt("the IPFS gateway URL cannot be a base"))?
                .pop_if_empty()
                .extend(["ipfs", cid]);
            return Ok(BlobContent::Redirect(url.to_string()));
        }
        self.stream_blob(blob, range).await.map(BlobContent::Stream)
    }

    async fn stream_blob(
        &self,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let cid = Self::cid_of(blob)?;
        self.check_size(cid, blob.size).await?;
        let (offset, length) = match range {
            Some(r) => (r.start, r.end + 1 - r.start),
            None => (0, blob.size),
        };
        self.rpc.cat(cid, offset, length).await
    }

    async fn create_upload(&self, id: UploadId) -> Result<(), StorageError> {
        // One call: the state's write makes the upload's directory (and `copy_in` its
        // `segments/`).
        let state = UploadState {
            written_at: now_millis(),
            ..UploadState::default()
        };
        self.save_state(id, &state).await
    }

    async fn write_upload(
        &self,
        id: UploadId,
        offset: u64,
        data: ByteStream,
    ) -> Result<u64, StorageError> {
        let mut state = self.load_state(id, offset).await?;
        // Unpinned: the segment is kept by its MFS link until the upload is committed or
        // deleted.
        let (cid, written) = self.rpc.add(data, false).await?;
        if written == 0 {
            return Ok(0);
        }
        self.rpc
            .copy_in(&cid, &format!("{}/segments/{cid}", self.upload_dir(id)))
            .await?;
        state.segments.push(Segment { cid, size: written });
        state.written_at = now_millis();
        // The state last: until it exists, the write did not happen.
        self.save_state(id, &state).await?;
        Ok(written)
    }

    async fn read_upload(&self, id: UploadId, size: u64) -> Result<ByteStream, StorageError> {
        let state = self.load_state(id, size).await?;
        Ok(self.concatenate(state.segments))
    }

    async fn commit_upload(
        &self,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<Committed, StorageError> {
        let state = self.load_state(id, size).await?;
        let cid = match state.segments.as_slice() {
            // Added in one piece with berth's parameters: that is the file.
            [only] => {
                if self.pin {
                    self.rpc.pin_add(&only.cid).await?;
                }
                only.cid.clone()
            }
            segments => {
                let hasher = Arc::new(Mutex::new(DigestHasher::new(digest.algorithm())));
                let hashing = {
                    let hasher = Arc::clone(&hasher);
                    self.concatenate(segments.to_vec())
                        .inspect_ok(move |chunk| {
                            hasher
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .update(chunk)
                        })
                };
                // The segments come from the node, so a failure reading them is the node's.
                let (cid, added) =
                    self.rpc
                        .add(Box::pin(hashing), self.pin)
                        .await
                        .map_err(|e| match e {
                            StorageError::Body(e) => {
                                StorageError::Unavailable(format!("IPFS: {e}"))
                            }
                            other => other,
                        })?;
                let actual = Arc::into_inner(hasher)
                    .expect("the add is over")
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .finish();
                if &actual != digest || added != size {
                    let _ = self.rpc.pin_rm(&cid).await;
                    return Err(corrupt(format!(
                        "the upload's segments in IPFS hash to {actual} ({added} bytes), not {digest} ({size} bytes)"
                    )));
                }
                cid
            }
        };
        self.check_size(&cid, size).await?;
        self.delete_upload(id).await?;
        Ok(Committed { cid: Some(cid) })
    }

    async fn write_whole_upload(
        &self,
        id: UploadId,
        data: ByteStream,
        _digest: &Digest,
    ) -> Result<(u64, Committed), StorageError> {
        // The caller's checks end the stream: a body that is not the blob fails before its
        // end, so the node never completes (nor pins) the file.
        let (cid, size) = self.rpc.add(data, self.pin).await?;
        // The node returned this CID for the bytes just counted: no size check is needed on
        // its first read.
        self.size_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cid.clone());
        // The upload staged nothing; what its creation wrote goes, or is purged later with
        // the other uploads no session names.
        if let Err(e) = self.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %e, "IPFS: could not remove a committed upload's directory");
        }
        Ok((size, Committed { cid: Some(cid) }))
    }

    async fn delete_upload(&self, id: UploadId) -> Result<(), StorageError> {
        self.rpc.remove(&self.upload_dir(id)).await
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, StorageError> {
        let uploads = match self.rpc.list(&format!("{}/uploads", self.root)).await {
            Ok(uploads) => uploads,
            Err(StorageError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in uploads {
            let Ok(id) = UploadId::parse(&entry.name) else {
                continue;
            };
            let states = match self
                .rpc
                .list(&format!("{}/state", self.upload_dir(id)))
                .await
            {
                Ok(states) => states,
                // Removed meanwhile, or never got a state (a crash inside create).
                Err(StorageError::NotFound) => Vec::new(),
                Err(e) => return Err(e),
            };
            let latest = states
                .iter()
                .filter_map(|s| s.name.parse::<u64>().ok())
                .max();
            let written_at = match latest {
                Some(size) => match self.load_state(id, size).await {
                    Ok(state) => state.written_at,
                    Err(StorageError::NotFound) => 0,
                    Err(e) => return Err(e),
                },
                None => 0,
            };
            let when = SystemTime::UNIX_EPOCH + Duration::from_millis(written_at.max(0) as u64);
            found.push((id, when));
        }
        Ok(found)
    }

    async fn delete_blob(&self, blob: &StoredBlob) -> Result<(), StorageError> {
        match &blob.cid {
            Some(cid) => self.rpc.pin_rm(cid).await,
            None => Ok(()),
        }
    }

    async fn stat_blob(&self, blob: &StoredBlob) -> Result<Option<u64>, StorageError> {
        let Some(cid) = &blob.cid else {
            return Ok(None);
        };
        match self.rpc.stat(&format!("/ipfs/{cid}")).await {
            Ok(size) => Ok(Some(size)),
            Err(StorageError::NotFound) => Ok(None),
            // The node looked for it within the timeout and did not find it.
            Err(StorageError::Unavailable(e))
                if e.contains("timed out") || e.contains("timeout") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn list_blobs(&self) -> BoxStream<'_, Result<ListedBlob, StorageError>> {
        Box::pin(
            futures_util::stream::once(self.rpc.pins())
                .map_ok(|pins| {
                    futures_util::stream::iter(pins.into_iter().map(|cid| {
                        Ok(ListedBlob {
                            key: BlobKey::Cid(cid),
                            size: None,
                            modified: None,
                        })
                    }))
                })
                .try_flatten(),
        )
    }

    async fn quarantine_blob(&self, _blob: &StoredBlob) -> Result<(), StorageError> {
        // A CID names its bytes: there is nothing to move aside. The database's mark stops
        // pulls, and a new push of the digest records a new CID.
        Ok(())
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.rpc.mkdir(&format!("{}/uploads", self.root)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::{is_unavailable, read};
    use crate::testing::ipfs::IpfsNode;
    use crate::testing::{body, fetch};
    use berth_oci::Algorithm;

    #[tokio::test]
    async fn passes_the_behaviour_suite_on_an_ipfs_node() {
        let node = IpfsNode::start();
        let store = IpfsStore::new(&node.settings("/suite")).unwrap();
        let other = IpfsStore::new(&node.settings("/suite")).unwrap();
        crate::behaviour::run_all(&store, &other, 256 * 1024).await;
    }

    async fn push(store: &IpfsStore, chunks: &[&'static [u8]]) -> StoredBlob {
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        let mut offset = 0;
        for chunk in chunks {
            offset += store.write_upload(id, offset, body(chunk)).await.unwrap();
        }
        let digest = Digest::of(Algorithm::Sha256, &chunks.concat());
        let committed = store.commit_upload(id, offset, &digest).await.unwrap();
        StoredBlob {
            digest,
            size: offset,
            cid: committed.cid,
        }
    }

    #[tokio::test]
    async fn cids_pins_gateway_checks_restarts_and_outages() {
        let mut node = IpfsNode::start();
        let store = IpfsStore::new(&node.settings("/berth")).unwrap();

        // CIDv1 with raw leaves, the same whether pushed in one piece or in chunks, pinned.
        let whole = push(&store, &[b"content addressed"]).await;
        let chunked = push(&store, &[b"content ", b"addressed"]).await;
        let cid = whole.cid.clone().unwrap();
        assert!(cid.starts_with("bafkrei"), "{cid}");
        assert_eq!(chunked.cid, whole.cid);
        assert!(store.rpc.pins().await.unwrap().contains(&cid));
        // Written whole, in one `add`: pinned, nothing left staged, the CID a staged upload
        // of the same bytes gets.
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        let digest = Digest::of(Algorithm::Sha256, b"added whole");
        let (size, in_one) = store
            .write_whole_upload(id, body(b"added whole"), &digest)
            .await
            .unwrap();
        assert_eq!(size, 11);
        let in_one = in_one.cid.unwrap();
        assert!(store.rpc.pins().await.unwrap().contains(&in_one));
        assert!(matches!(
            store.rpc.list(&store.upload_dir(id)).await,
            Err(StorageError::NotFound)
        ));
        assert_eq!(push(&store, &[b"added ", b"whole"]).await.cid, Some(in_one));

        // The gateway serves what a redirect points at.
        let redirecting = IpfsStore::new(&IpfsSettings {
            gateway: Some(node.gateway().parse().unwrap()),
            ..node.settings("/berth")
        })
        .unwrap();
        let BlobContent::Redirect(url) = redirecting.read_blob(&whole, None).await.unwrap() else {
            panic!("expected a redirect")
        };
        assert_eq!(url, format!("{}/ipfs/{cid}", node.gateway()));
        assert_eq!(fetch(&url).await, b"content addressed");

        // A CID whose file does not have the recorded size is never served.
        let other = push(&store, &[b"other bytes"]).await;
        let wrong = StoredBlob {
            cid: other.cid.clone(),
            ..whole.clone()
        };
        let fresh = IpfsStore::new(&node.settings("/berth")).unwrap();
        assert!(matches!(
            fresh.read_blob(&wrong, None).await,
            Err(StorageError::Io(_))
        ));

        // Deleting unpins.
        store.delete_blob(&whole).await.unwrap();
        assert!(!store.rpc.pins().await.unwrap().contains(&cid));

        // An upload staged before the node restarts continues afterwards.
        let id = UploadId::random();
        store.create_upload(id).await.unwrap();
        store.write_upload(id, 0, body(b"survives ")).await.unwrap();
        node.stop();
        assert!(matches!(
            store.write_upload(id, 9, body(b"a restart")).await,
            Err(StorageError::Unavailable(_))
        ));
        is_unavailable(&store, &other).await;
        node.start_again();
        store.write_upload(id, 9, body(b"a restart")).await.unwrap();
        let digest = Digest::of(Algorithm::Sha256, b"survives a restart");
        let committed = store.commit_upload(id, 18, &digest).await.unwrap();
        let blob = StoredBlob {
            digest,
            size: 18,
            cid: committed.cid,
        };
        assert_eq!(
            read(&store, &blob, Some(ByteRange { start: 9, end: 17 })).await,
            b"a restart"
        );
    }
}
