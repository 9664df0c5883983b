//! One upstream download per uncached blob, however many clients ask for it.
//!
//! The first request for a blob starts a download task; later requests join it. The task
//! is spawned, not run by a request, so a client that disconnects stops only its own
//! reading. The task writes what arrives to an anonymous spool file (it has no name, so a
//! crash leaves nothing) and, at the same time, into an upload in berth's store through
//! [`Registry::upload_blob`], which hashes it and commits the blob only if the digest and
//! the size match. Readers follow the spool file as it grows, from any offset, so each is
//! served as the bytes arrive and none holds more than one chunk in memory. A reader gets
//! its last byte only once the blob is verified: a corrupt or truncated download makes every
//! reader's transfer fail instead of completing with wrong content.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_oci::{Digest, RepositoryName};
use berth_registry::Registry;
use berth_registry::events::Origin;
use berth_storage::ByteStream;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::errors::CacheFailure;
use crate::stats::{CacheStats, Counter};
use crate::upstream::{Upstream, UpstreamError, content_length};

/// Bytes gathered before they are written to the spool file and announced to readers.
const SPOOL_BLOCK: usize = 256 * 1024;
/// The most a reader reads from the spool file at once.
const READ_CHUNK: u64 = 512 * 1024;
/// Chunks queued for the store before the download waits for it.
const STORE_QUEUE: usize = 16;

/// What a download has done so far.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    /// Set once the upstream answered: the blob's size and the spool file.
    pub started: Option<(u64, Arc<File>)>,
    /// Bytes in the spool file.
    pub written: u64,
    /// Set at the end: committed to the store (`Ok`), or why not.
    pub done: Option<Result<(), CacheFailure>>,
}

/// What a download needs.
pub(crate) struct Fetch {
    pub registry: Arc<Registry>,
    pub upstream: Arc<Upstream>,
    pub stats: Arc<CacheStats>,
    pub origin: Arc<Origin>,
    pub spool_dir: Option<PathBuf>,
    pub repository: RepositoryName,
    pub upstream_name: String,
    pub digest: Digest,
}

type Key = (RepositoryName, Digest);

/// The downloads in progress, by repository and digest.
#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<Key, watch::Receiver<Progress>>>,
}

impl Flights {
    /// Joins the download of the blob, starting it if none runs.
    pub fn join(self: &Arc<Self>, fetch: Fetch) -> watch::Receiver<Progress> {
        let key = (fetch.repository.clone(), fetch.digest.clone());
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(progress) = running.get(&key) {
            return progress.clone();
        }
        let (sender, receiver) = watch::channel(Progress::default());
        running.insert(key.clone(), receiver.clone());
        drop(running);
        fetch.stats.add(Counter::BlobFetch, 1);
        let flights = Arc::clone(self);
        tokio::spawn(async move {
            let result = download(&fetch, &sender).await;
            if let Err(failure) = &result {
                tracing::warn!(
                    repository = %fetch.repository, digest = %fetch.digest, error = ?failure,
                    "caching a blob from the upstream failed; nothing was cached"
                );
            }
            // Out of the map first: a request arriving after this finds the committed blob
            // in the store (or starts a fresh attempt after a failure).
            flights
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            sender.send_modify(|p| p.done = Some(result));
        });
        receiver
    }
}

async fn download(fetch: &Fetch, progress: &watch::Sender<Progress>) -> Result<(), CacheFailure> {
    let answer = fetch
        .upstream
        .blob(&fetch.upstream_name, &fetch.digest)
        .await?
        .ok_or_else(|| {
            CacheFailure::Upstream(UpstreamError::Status {
                upstream: fetch.upstream.describe().to_string(),
                status: 404,
            })
        })?;
    let size = content_length(&answer)?;
    let upstream = answer.upstream.clone();
    let spool_dir = fetch.spool_dir.clone();
    let spool = spool_io(move || match spool_dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    })
    .await?;
    let spool = Arc::new(spool);
    progress.send_modify(|p| p.started = Some((size, Arc::clone(&spool))));

    // The store consumes the same bytes through a bounded queue: a slow store slows the
    // download, and nothing piles up in memory.
    let (to_store, queue) = mpsc::channel::<io::Result<Bytes>>(STORE_QUEUE);
    let body: ByteStream = Box::pin(futures_util::stream::unfold(queue, |mut queue| async {
        queue.recv().await.map(|item| (item, queue))
    }));
    let store = {
        let registry = Arc::clone(&fetch.registry);
        let origin = Arc::clone(&fetch.origin);
        let repository = fetch.repository.clone();
        let digest = fetch.digest.clone();
        tokio::spawn(async move {
            registry
                .upload_blob(&origin, &repository, &digest, Some(size), body)
                .await
        })
    };

    let mut stream = answer.response.bytes_stream();
    let mut received = 0u64;
    let mut block = BytesMut::new();
    let mut store_closed = false;
    let broken = loop {
        let chunk = match stream.next().await {
            None => break None,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => break Some(crate::upstream::describe_error(e)),
        };
        received += chunk.len() as u64;
        fetch.stats.add(Counter::UpstreamBytes, chunk.len() as u64);
        if received > size {
            break Some(format!(
                "the body is longer than its Content-Length ({size})"
            ));
        }
        block.extend_from_slice(&chunk);
        if block.len() >= SPOOL_BLOCK {
            spool_block(&spool, progress, &mut block).await?;
        }
        if to_store.send(Ok(chunk)).await.is_err() {
            // The store gave up (storage failure): its error is the answer.
            store_closed = true;
            break None;
        }
    };
    spool_block(&spool, progress, &mut block).await?;
    let broken = broken.or_else(|| {
        (!store_closed && received < size)
            .then(|| format!("the transfer ended after {received} of {size} bytes"))
    });
    if let Some(why) = &broken {
        let _ = to_store.send(Err(io::Error::other(why.clone()))).await;
    }
    drop(to_store);
    let stored = store
        .await
        .map_err(|e| CacheFailure::internal(format!("storing task: {e}")))?;
    if let Some(cause) = broken {
        return Err(CacheFailure::Upstream(UpstreamError::Unreachable {
            upstream,
            cause,
        }));
    }
    stored
        .map(|_| ())
        .map_err(|e| CacheFailure::from_store(&upstream, e))
}

/// Runs file I/O on the spool file on a blocking thread; a failure is the server's.
async fn spool_io<T: Send + 'static>(
    io: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, CacheFailure> {
    tokio::task::spawn_blocking(io)
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(|e| CacheFailure::internal(format!("spool file: {e}")))
}

/// Appends the gathered bytes to the spool file and tells the readers.
async fn spool_block(
    spool: &Arc<File>,
    progress: &watch::Sender<Progress>,
    block: &mut BytesMut,
) -> Result<(), CacheFailure> {
    if block.is_empty() {
        return Ok(());
    }
    let data = block.split().freeze();
    let offset = progress.borrow().written;
    let file = Arc::clone(spool);
    let len = data.len() as u64;
    spool_io(move || file.write_all_at(&data, offset)).await?;
    progress.send_modify(|p| p.written += len);
    Ok(())
}

/// The bytes `start..end` of the blob a download is fetching, as they arrive. The last
/// byte of the blob comes only once it is verified and committed.
pub(crate) fn follow(
    progress: watch::Receiver<Progress>,
    spool: Arc<File>,
    size: u64,
    start: u64,
    end: u64,
) -> ByteStream {
    let state = (progress, start);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut progress, pos)| {
            let spool = Arc::clone(&spool);
            async move {
                if pos >= end {
                    return None;
                }
                loop {
                    let available = {
                        let p = progress.borrow_and_update();
                        match &p.done {
                            Some(Ok(())) => Ok(size),
                            Some(Err(failure)) => Err(io::Error::other(format!("{failure:?}"))),
                            None => Ok(p.written.min(size.saturating_sub(1))),
                        }
                    };
                    let available = match available {
                        Ok(available) => available,
                        Err(error) => return Some((Err(error), (progress, end))),
                    };
                    if pos < available.min(end) {
                        let upto = available.min(end).min(pos + READ_CHUNK);
                        let read = tokio::task::spawn_blocking(move || {
                            let mut buffer = vec![0; (upto - pos) as usize];
                            spool.read_exact_at(&mut buffer, pos).map(|()| buffer)
                        })
                        .await
                        .map_err(io::Error::other)
                        .and_then(|r| r);
                        return Some(match read {
                            Ok(buffer) => (Ok(Bytes::from(buffer)), (progress, upto)),
                            Err(e) => (Err(e), (progress, end)),
                        });
                    }
                    if progress.changed().await.is_err() {
                        let error = io::Error::other("the download ended without an outcome");
                        return Some((Err(error), (progress, end)));
                    }
                }
            }
        },
    ))
}
