//! Blob uploads: monolithic, chunked and resumable.
//!
//! A chunked upload is a session row in the database (how many bytes are acknowledged and
//! the running hash of them) plus an upload in the blob store. Each chunk is hashed as it
//! streams in and written durably before the session advances, under a per-upload lock, so
//! an acknowledged chunk survives a restart and two requests never write one upload at once.
//! Finishing verifies the digest, commits the bytes to their content address, and only then
//! records the blob: a crash at any point leaves either nothing visible or a complete blob.

use std::io;
use std::sync::{Arc, Mutex};

use berth_meta::UploadSession;
use berth_oci::range::upload_range_header;
use berth_oci::{
    Algorithm, ContentRange, Digest, DigestHasher, ErrorCode, RegistryError, RepositoryName,
    UploadId,
};
use berth_storage::{ByteStream, StorageError, UploadFollower};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use crate::errors::{from_meta, from_storage};
use crate::events::Origin;
use crate::{Registry, Result};

/// A piece of request body destined for an upload, with what the client said about it.
pub struct Chunk {
    /// `Content-Range`: where the client believes the chunk goes.
    pub content_range: Option<ContentRange>,
    /// `Content-Length`, when the body is not chunk-encoded.
    pub content_length: Option<u64>,
    pub body: ByteStream,
}

impl Chunk {
    /// Whether the client declared an empty body: then there is nothing to write.
    fn is_declared_empty(&self) -> bool {
        self.content_range.is_none() && self.content_length == Some(0)
    }
}

/// What the checks at the end of a whole blob's body decided (`None`: they did not run):
/// the refusal, and whether it finishes the upload.
type Verdict = Arc<Mutex<Option<std::result::Result<(), (RegistryError, bool)>>>>;

/// What a whole blob's body has shown so far.
struct Seen {
    hasher: Option<DigestHasher>,
    size: u64,
    failed: bool,
}

/// Wraps `body` so that every byte that streams through is hashed.
fn hashing(body: ByteStream, hasher: &Arc<Mutex<DigestHasher>>) -> ByteStream {
    let hasher = Arc::clone(hasher);
    Box::pin(body.inspect_ok(move |chunk| {
        hasher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(chunk)
    }))
}

/// Takes the hasher back once the stream that fed it is gone.
fn into_hasher(hasher: Arc<Mutex<DigestHasher>>) -> DigestHasher {
    Arc::into_inner(hasher)
        .expect("the hashing stream is dropped once the write returns")
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
}

fn size_invalid(why: String) -> RegistryError {
    RegistryError::new(
        ErrorCode::SizeInvalid,
        "provided length did not match content length",
    )
    .with_detail(why)
}

fn digest_mismatch(expected: &Digest, actual: &Digest) -> RegistryError {
    RegistryError::new(
        ErrorCode::DigestInvalid,
        "provided digest did not match uploaded content",
    )
    .with_detail(serde_json::json!({ "expected": expected.as_str(), "actual": actual.as_str() }))
}

impl Registry {
    /// Starts a chunked (or streamed) upload session.
    pub async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadSession> {
        self.ensure_writable()?;
        let id = UploadId::random();
        let now = berth_meta::now_millis();
        let session = UploadSession {
            id,
            repository: repository.clone(),
            size: 0,
            hash_state: DigestHasher::new(Algorithm::Sha256).save_state(),
            created_at: now,
            updated_at: now,
        };
        // Storage first: a session row must never point at an upload that does not exist.
        self.blobs.create_upload(id).await.map_err(from_storage)?;
        if let Err(e) = self.meta.create_upload(&session).await {
            let _ = self.blobs.delete_upload(id).await;
            return Err(from_meta(e));
        }
        Ok(session)
    }

    /// A whole blob in one request (`POST ...?digest=`). Nothing is recorded unless the
    /// content matches the digest.
    pub async fn upload_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.ensure_writable()?;
        let id = UploadId::random();
        self.blobs.create_upload(id).await.map_err(from_storage)?;
        let result = self
            .commit_whole(origin, repository, id, digest, content_length, body)
            .await
            .map_err(|(e, _)| e);
        if result.is_err() {
            let _ = self.blobs.delete_upload(id).await;
        }
        result
    }

    /// [`Registry::upload_blob`] while `follower` reads the bytes written so far (a
    /// pull-through cache serving its clients from the upload as it arrives; see
    /// [`berth_storage::BlobStore::write_upload_followed`]). The follower reads bytes that
    /// are not verified yet: it must not treat them as the blob before this returns `Ok`.
    pub async fn upload_blob_followed(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
        follower: &dyn UploadFollower,
    ) -> Result<u64> {
        self.ensure_writable()?;
        let id = UploadId::random();
        self.blobs.create_upload(id).await.map_err(from_storage)?;
        let result = async {
            let hasher = Arc::new(Mutex::new(DigestHasher::new(digest.algorithm())));
            let body = hashing(body, &hasher);
            // Staged and then committed: the follower reads the staged upload as it grows.
            let size = self
                .blobs
                .write_upload_followed(id, body, follower)
                .await
                .map_err(from_storage)?;
            if let Some(expected) = content_length
                && expected != size
            {
                return Err(size_invalid(format!(
                    "Content-Length is {expected} but the body had {size} bytes"
                )));
            }
            let actual = into_hasher(hasher).finish();
            if &actual != digest {
                return Err(digest_mismatch(digest, &actual));
            }
            // The follower's clients need not wait for the commit's flush.
            follower.verified();
            self.commit(origin, repository, id, size, digest).await?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = self.blobs.delete_upload(id).await;
        }
        result
    }

    /// Writes and commits a whole blob in one storage call, checked as its body ends (see
    /// [`Registry::checked_body`]), then records it. On failure, also whether the upload is
    /// finished with (a digest that does not match, no room in a quota) or may be retried (a
    /// body of the wrong size, the store unavailable).
    async fn commit_whole(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        id: UploadId,
        digest: &Digest,
        declared: Option<u64>,
        body: ByteStream,
    ) -> std::result::Result<u64, (RegistryError, bool)> {
        // Taken before the bytes may reach their address, as for a staged commit.
        let seen = self
            .settled_deletion(digest)
            .await
            .map_err(|e| (e, false))?;
        let (body, verdict) = self.checked_body(repository, digest, declared, body);
        let stored = self.blobs.write_whole_upload(id, body, digest).await;
        let verdict = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (size, committed) = match (stored, verdict) {
            // The registry's own refusal, whatever the store made of the failed stream.
            (_, Some(Err(refusal))) => return Err(refusal),
            (Ok(stored), _) => stored,
            (Err(StorageError::NotFound), _) => {
                return Err((RegistryError::upload_unknown(), false));
            }
            (Err(e), _) => return Err((from_storage(e), false)),
        };
        self.record(origin, repository, id, digest, size, committed, seen)
            .await
            .map_err(|e| (e, false))?;
        Ok(size)
    }

    /// `body`, hashed and counted as it streams into storage and checked once it has ended,
    /// before the store may make it a blob: the size announced, the digest, room in the
    /// quotas. A failed check (or a failed body) fails the stream as its last item, so the
    /// store keeps nothing of it as a blob; the verdict says which check failed, and whether
    /// that finishes the upload.
    fn checked_body(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        declared: Option<u64>,
        body: ByteStream,
    ) -> (ByteStream, Verdict) {
        let verdict: Verdict = Arc::default();
        let seen: Arc<Mutex<Seen>> = Arc::new(Mutex::new(Seen {
            hasher: Some(DigestHasher::new(digest.algorithm())),
            size: 0,
            failed: false,
        }));
        let passing = {
            let seen = Arc::clone(&seen);
            body.map(move |item| {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                match &item {
                    Ok(chunk) => {
                        seen.size += chunk.len() as u64;
                        if let Some(hasher) = seen.hasher.as_mut() {
                            hasher.update(chunk);
                        }
                    }
                    Err(_) => seen.failed = true,
                }
                item
            })
        };
        let check = {
            let (meta, repository, digest) =
                (Arc::clone(&self.meta), repository.clone(), digest.clone());
            let verdict = Arc::clone(&verdict);
            futures_util::stream::once(async move {
                let (hasher, size, failed) = {
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    (seen.hasher.take(), seen.size, seen.failed)
                };
                let Some(hasher) = hasher.filter(|_| !failed) else {
                    // The body itself failed; the store reports that.
                    return Err(io::Error::other("the request body failed"));
                };
                let checked = async {
                    if let Some(expected) = declared
                        && expected != size
                    {
                        return Err((
                            size_invalid(format!(
                                "expected {expected} bytes but the body had {size}"
                            )),
                            false,
                        ));
                    }
                    let actual = hasher.finish();
                    if actual != digest {
                        return Err((digest_mismatch(&digest, &actual), true));
                    }
                    // A blob no quota has room for is refused before its bytes reach their
                    // address.
                    meta.check_quota(&repository, &digest, size)
                        .await
                        .map_err(|e| {
                            let finished = matches!(e, berth_meta::MetaError::QuotaExceeded { .. });
                            (from_meta(e), finished)
                        })
                }
                .await;
                let refused = checked.is_err();
                *verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(checked);
                if refused {
                    Err(io::Error::other("refused by the registry's checks"))
                } else {
                    Ok(Bytes::new())
                }
            })
        };
        let stream = passing
            .chain(check)
            .try_filter(|chunk| std::future::ready(!chunk.is_empty()));
        (Box::pin(stream), verdict)
    }

    /// Moves verified upload bytes to their content address, then records the blob (see
    /// `berth_meta::gc` for how this stays safe while garbage collection deletes blobs).
    async fn commit(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        id: UploadId,
        size: u64,
        digest: &Digest,
    ) -> Result<()> {
        // Garbage collection may be deleting this very digest: see where it stands before
        // relying on what storage holds, and let the record refuse if that moved on.
        let seen = self.settled_deletion(digest).await?;
        // A blob no quota has room for is refused before its bytes reach their address.
        if let Err(e) = self.meta.check_quota(repository, digest, size).await {
            if matches!(e, berth_meta::MetaError::QuotaExceeded { .. }) {
                let _ = self.discard_upload(id).await;
            }
            return Err(from_meta(e));
        }
        let committed = self
            .blobs
            .commit_upload(id, size, digest)
            .await
            .map_err(|e| match e {
                StorageError::NotFound => RegistryError::upload_unknown(),
                other => from_storage(other),
            })?;
        self.record(origin, repository, id, digest, size, committed, seen)
            .await
    }

    /// Records a blob whose bytes were committed to storage (`seen`: where garbage
    /// collection stood with its digest before they were).
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        id: UploadId,
        digest: &Digest,
        size: u64,
        committed: berth_storage::Committed,
        seen: Option<berth_meta::gc::BlobDeletion>,
    ) -> Result<()> {
        let blob = berth_meta::NewBlob {
            digest,
            size,
            cid: committed.cid.as_deref(),
        };
        let events = match self
            .meta
            .record_committed_blob(repository, blob, seen, origin)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                if matches!(
                    e,
                    berth_meta::MetaError::BeingCollected
                        | berth_meta::MetaError::QuotaExceeded { .. }
                ) {
                    // The upload's bytes went into storage (and may be gone with the blob, or
                    // are refused for good): the session has nothing left to finish. Bytes no
                    // record names are found by garbage collection's orphan sweep.
                    let _ = self.meta.delete_upload(id).await;
                }
                return Err(from_meta(e));
            }
        };
        self.publish(&events);
        Ok(())
    }

    /// The session, if it exists and belongs to `repository`.
    async fn session(&self, repository: &RepositoryName, id: UploadId) -> Result<UploadSession> {
        match self.meta.upload(id).await.map_err(from_meta)? {
            Some(session) if &session.repository == repository => Ok(session),
            _ => Err(RegistryError::upload_unknown()),
        }
    }

    pub async fn upload_status(
        &self,
        repository: &RepositoryName,
        id: UploadId,
    ) -> Result<UploadSession> {
        self.session(repository, id).await
    }

    /// Appends a chunk (`PATCH`). Returns the session as it stands afterwards.
    pub async fn append_upload(
        &self,
        repository: &RepositoryName,
        id: UploadId,
        chunk: Chunk,
    ) -> Result<UploadSession> {
        self.ensure_writable()?;
        let _lock = self.meta.lock_upload(id).await.map_err(from_meta)?;
        let session = self.session(repository, id).await?;
        self.append_locked(session, chunk).await
    }

    /// Checks what a chunk says about itself against the session; returns how many bytes
    /// it announces, if it does.
    fn announced_length(session: &UploadSession, chunk: &Chunk) -> Result<Option<u64>> {
        let out_of_order = |why: String| {
            RegistryError::new(
                ErrorCode::RangeInvalid,
                "chunk does not continue the upload",
            )
            .with_detail(why)
            .with_header("range", upload_range_header(session.size))
        };
        if let Some(range) = chunk.content_range {
            let Some(len) = range.len() else {
                return Err(out_of_order(format!(
                    "Content-Range {}-{} ends before it starts",
                    range.start, range.end
                )));
            };
            if range.start != session.size {
                return Err(out_of_order(format!(
                    "Content-Range starts at {} but the upload holds {} bytes",
                    range.start, session.size
                )));
            }
            if let Some(declared) = chunk.content_length
                && declared != len
            {
                return Err(size_invalid(format!(
                    "Content-Range announces {len} bytes but Content-Length is {declared}"
                )));
            }
        }
        Ok(chunk
            .content_range
            .and_then(|r| r.len())
            .or(chunk.content_length))
    }

    /// Writes a chunk at the end of a session; the caller holds the upload's lock.
    async fn append_locked(&self, session: UploadSession, chunk: Chunk) -> Result<UploadSession> {
        let expected = Self::announced_length(&session, &chunk)?;
        let hasher = DigestHasher::restore_state(&session.hash_state).ok_or_else(|| {
            RegistryError::internal(format!("corrupt hash state for upload {}", session.id))
        })?;
        let hasher = Arc::new(Mutex::new(hasher));
        let written = self
            .blobs
            .write_upload(session.id, session.size, hashing(chunk.body, &hasher))
            .await
            .map_err(|e| match e {
                StorageError::NotFound => RegistryError::upload_unknown(),
                other => from_storage(other),
            })?;
        // A chunk that does not match what was announced is not acknowledged; the next write
        // starts again at the session's size and overwrites it.
        if let Some(expected) = expected
            && expected != written
        {
            return Err(size_invalid(format!(
                "expected {expected} bytes but the body had {written}"
            )));
        }
        let hash_state = into_hasher(hasher).save_state();
        let new_size = session.size + written;
        if !self
            .meta
            .advance_upload(session.id, session.size, new_size, &hash_state)
            .await
            .map_err(from_meta)?
        {
            return Err(RegistryError::upload_unknown());
        }
        Ok(UploadSession {
            size: new_size,
            hash_state,
            ..session
        })
    }

    /// Finishes an upload (`PUT ...?digest=`), with an optional last chunk. On a digest
    /// mismatch the upload is discarded: nothing of it is kept.
    pub async fn finish_upload(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        id: UploadId,
        digest: &Digest,
        last_chunk: Chunk,
    ) -> Result<u64> {
        self.ensure_writable()?;
        let _lock = self.meta.lock_upload(id).await.map_err(from_meta)?;
        let mut session = self.session(repository, id).await?;
        if session.size == 0 && !last_chunk.is_declared_empty() {
            // The whole blob in this request: written and committed in one storage call.
            let declared = Self::announced_length(&session, &last_chunk)?;
            return match self
                .commit_whole(origin, repository, id, digest, declared, last_chunk.body)
                .await
            {
                Ok(size) => {
                    self.meta.delete_upload(id).await.map_err(from_meta)?;
                    Ok(size)
                }
                Err((e, finished)) => {
                    if finished {
                        self.discard_upload(id).await?;
                    }
                    Err(e)
                }
            };
        }
        if !last_chunk.is_declared_empty() {
            session = self.append_locked(session, last_chunk).await?;
        }

        let actual = match digest.algorithm() {
            // The running hash is sha256, what nearly every client uses.
            Algorithm::Sha256 => DigestHasher::restore_state(&session.hash_state)
                .ok_or_else(|| {
                    RegistryError::internal(format!("corrupt hash state for upload {id}"))
                })?
                .finish(),
            other => self.rehash_upload(id, session.size, other).await?,
        };
        if &actual != digest {
            self.discard_upload(id).await?;
            return Err(digest_mismatch(digest, &actual));
        }
        self.commit(origin, repository, id, session.size, digest)
            .await?;
        self.meta.delete_upload(id).await.map_err(from_meta)?;
        Ok(session.size)
    }

    /// Hashes an upload's bytes with another algorithm than the running hash.
    async fn rehash_upload(&self, id: UploadId, size: u64, algorithm: Algorithm) -> Result<Digest> {
        let mut hasher = DigestHasher::new(algorithm);
        let mut content = self
            .blobs
            .read_upload(id, size)
            .await
            .map_err(from_storage)?;
        while let Some(chunk) = content
            .try_next()
            .await
            .map_err(|e| from_storage(StorageError::Io(e)))?
        {
            hasher.update(&chunk);
        }
        Ok(hasher.finish())
    }

    /// Cancels an upload (`DELETE`).
    pub async fn cancel_upload(&self, repository: &RepositoryName, id: UploadId) -> Result<()> {
        let _lock = self.meta.lock_upload(id).await.map_err(from_meta)?;
        self.session(repository, id).await?;
        self.discard_upload(id).await
    }

    /// Forgets a session and its bytes: the row first, so that a crash in between leaves only
    /// an unreferenced upload file for the purge to remove.
    pub(crate) async fn discard_upload(&self, id: UploadId) -> Result<()> {
        self.meta.delete_upload(id).await.map_err(from_meta)?;
        self.blobs.delete_upload(id).await.map_err(from_storage)
    }
}
