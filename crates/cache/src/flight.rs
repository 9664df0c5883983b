//! One upstream download per uncached blob, however many clients ask for it.
//!
//! The first request for a blob starts a download task; later requests join it. The task
//! is spawned, not run by a request, so a client that disconnects stops only its own
//! reading. The task hands each chunk that arrives, without copying it, to two places: an
//! upload in berth's store through [`Registry::upload_blob_followed`] (which hashes it and
//! commits the blob only if the digest and the size match), and a small window of the
//! latest chunks in memory ([`WINDOW`] bytes at most, plus what the store has not written
//! yet) that readers keeping up are served from at once. Readers behind the window, such as
//! one that joined late, read the store's upload at any offset below what the store reports
//! written: the filesystem store's upload file itself; stores whose uploads cannot be read
//! before commit keep a spool file for it
//! ([`write_upload_followed`](berth_storage::BlobStore::write_upload_followed)). So each reader is served as the bytes arrive, and memory stays
//! bounded however many readers there are. A reader gets
//! its last byte only once the blob is verified: a corrupt or truncated download makes every
//! reader's transfer fail instead of completing with wrong content. A transfer that breaks
//! midway resumes with a `Range` request where the upstream serves ranges; one that crawls
//! (a slow-loris upstream) is cut off after the remote's timeout.
//!
//! Across the instances of a PostgreSQL deployment, a lease per blob (`cache-blob:<name>@
//! <digest>`, renewed while the download runs) lets one instance download it; another that
//! is asked for the same blob meanwhile waits until it is in storage and serves it from
//! there. The wait is bounded: a lapsed lease (its holder died) or [`MAX_WAIT`] and the
//! waiting instance downloads it itself.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use berth_oci::{Digest, RepositoryName};
use berth_registry::Registry;
use berth_registry::events::Origin;
use berth_storage::{ByteStream, UploadFollower};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::Shared;
use crate::errors::CacheFailure;
use crate::stats::{CacheStats, Counter};
use crate::upstream::{Upstream, UpstreamError, content_length};

/// The latest bytes kept in memory for readers keeping up: past it, chunks that the store
/// has written go.
const WINDOW: usize = 2 * 1024 * 1024;
/// The most a reader reads from the store's upload at once.
const READ_CHUNK: u64 = 512 * 1024;
/// Chunks queued for the store before the download waits for it.
const STORE_QUEUE: usize = 16;
/// The least a blob transfer must bring in each period of the upstream's timeout.
const MIN_PROGRESS: u64 = 64 * 1024;
/// How many times one download resumes a broken transfer.
const MAX_RESUMES: u32 = 3;
/// How long a download's lease lasts unless renewed; renewed every third of it.
const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often an instance waiting for another's download looks whether it is stored.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// The longest an instance waits for another's download before downloading it itself.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// What a download has done so far.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    /// Set once the upstream answered: the blob's size.
    pub size: Option<u64>,
    /// The store's upload (or its spool), once the store opened it.
    pub upload: Option<Arc<File>>,
    /// Bytes received so far.
    pub received: u64,
    /// Bytes the store has written, readable from `upload` (at most `received`).
    pub written: u64,
    /// The latest chunks received, in order, ending at `received`: every byte from
    /// `received - window_bytes` on. A chunk leaves only once the store has written it.
    pub window: VecDeque<Bytes>,
    pub window_bytes: u64,
    /// Set once every byte is checked against the digest, before the commit: readers may
    /// have the last byte.
    pub verified: bool,
    /// Set at the end: committed to the store (`Ok`), or why not.
    pub done: Option<Result<(), CacheFailure>>,
}

impl Progress {
    /// Where the window starts.
    fn window_start(&self) -> u64 {
        self.received - self.window_bytes
    }

    /// The bytes from `pos` (within the window) up to `upto`, without copying.
    fn in_window(&self, pos: u64, upto: u64) -> Option<Bytes> {
        let mut at = self.window_start();
        if pos < at || pos >= upto {
            return None;
        }
        for chunk in &self.window {
            let end = at + chunk.len() as u64;
            if pos < end {
                let from = (pos - at) as usize;
                let to = (upto.min(end) - at) as usize;
                return Some(chunk.slice(from..to));
            }
            at = end;
        }
        None
    }

    /// A chunk arrived.
    fn receive(&mut self, chunk: Bytes) {
        self.received += chunk.len() as u64;
        self.window_bytes += chunk.len() as u64;
        self.window.push_back(chunk);
        self.trim();
    }

    /// Drops the oldest chunks past the window's size, if the store has written them.
    fn trim(&mut self) {
        while self.window_bytes > WINDOW as u64 {
            let Some(oldest) = self.window.front() else {
                break;
            };
            if self.window_start() + oldest.len() as u64 > self.written {
                break;
            }
            self.window_bytes -= oldest.len() as u64;
            self.window.pop_front();
        }
    }
}

/// What a download needs.
pub(crate) struct Fetch {
    pub registry: Arc<Registry>,
    pub upstream: Arc<Upstream>,
    pub stats: Arc<CacheStats>,
    pub origin: Arc<Origin>,
    pub shared: Shared,
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
        let flights = Arc::clone(self);
        tokio::spawn(async move {
            let result = fetch_once(&fetch, &sender).await;
            if let Err(failure) = &result {
                fetch
                    .stats
                    .note_error(failure.to_registry_error().message.clone());
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

/// Downloads the blob, unless another instance holds its lease: then waits for that one's
/// download to be stored (`Ok` with no `size`: readers read it from storage).
async fn fetch_once(fetch: &Fetch, progress: &watch::Sender<Progress>) -> Result<(), CacheFailure> {
    // A request that missed the store just before the previous download of this blob
    // committed (its readers had the last byte once it was verified, before the commit)
    // starts a new flight: the blob is stored by now, and its readers read it from there.
    if stored(fetch).await {
        return Ok(());
    }
    let Some(leases) = &fetch.shared.leases else {
        return download(fetch, progress).await;
    };
    let lease = format!("cache-blob:{}@{}", fetch.repository, fetch.digest);
    let holder = &fetch.shared.holder;
    let ttl_ms = LEASE_TTL.as_millis() as i64;
    let waiting_since = Instant::now();
    let mut waited = false;
    let leased = loop {
        match leases.try_lease(&lease, holder, ttl_ms).await {
            Ok(true) => break true,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(%lease, error = %e, "taking a blob download's lease failed; downloading without it");
                break false;
            }
        }
        if stored(fetch).await {
            fetch.stats.add(Counter::BlobWait, 1);
            return Ok(());
        }
        if waiting_since.elapsed() > MAX_WAIT {
            tracing::warn!(%lease, "another instance's download of the blob takes too long; downloading it too");
            break false;
        }
        waited = true;
        tokio::time::sleep(WAIT_POLL).await;
    };
    // The other instance's download may have been stored just before its lease went.
    if waited && stored(fetch).await {
        fetch.stats.add(Counter::BlobWait, 1);
        if leased {
            let _ = leases.release_lease(&lease, holder).await;
        }
        return Ok(());
    }
    let renewing = async {
        if !leased {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            if let Err(e) = leases.try_lease(&lease, holder, ttl_ms).await {
                tracing::warn!(%lease, error = %e, "renewing a blob download's lease failed");
            }
        }
    };
    let result = tokio::select! {
        result = download(fetch, progress) => result,
        () = renewing => unreachable!("renewing never ends"),
    };
    if leased && let Err(e) = leases.release_lease(&lease, holder).await {
        tracing::warn!(%lease, error = %e, "releasing a blob download's lease failed (it lapses)");
    }
    result
}

/// Whether the blob is in the local store (another instance stored it).
async fn stored(fetch: &Fetch) -> bool {
    fetch
        .registry
        .blob_size(&fetch.repository, &fetch.digest)
        .await
        .is_ok()
}

async fn download(fetch: &Fetch, progress: &watch::Sender<Progress>) -> Result<(), CacheFailure> {
    fetch.stats.add(Counter::BlobFetch, 1);
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
    progress.send_modify(|p| p.size = Some(size));

    // The store consumes the same bytes through a bounded queue: a slow store slows the
    // download, and nothing piles up in memory. It tells the readers how far it has written.
    let (to_store, queue) = mpsc::channel::<io::Result<Bytes>>(STORE_QUEUE);
    let body: ByteStream = Box::pin(futures_util::stream::unfold(queue, |mut queue| async {
        queue.recv().await.map(|item| (item, queue))
    }));
    let store = {
        let registry = Arc::clone(&fetch.registry);
        let origin = Arc::clone(&fetch.origin);
        let repository = fetch.repository.clone();
        let digest = fetch.digest.clone();
        let readers = Readers(progress.clone());
        tokio::spawn(async move {
            registry
                .upload_blob_followed(&origin, &repository, &digest, Some(size), body, &readers)
                .await
        })
    };

    let mut transfer = Transfer {
        fetch,
        progress,
        to_store: &to_store,
        size,
        received: 0,
    };
    let mut response = answer.response;
    let mut resumed_at = None;
    let broken = loop {
        let why = match transfer.relay(response).await? {
            Ended::Complete | Ended::StoreClosed => break None,
            Ended::Failed(why) => break Some(why),
            Ended::Broken(why) => why,
        };
        // A transfer that broke midway continues where it stopped if the upstream serves
        // ranges: a few times at most, and only after more bytes arrived.
        let offset = transfer.received;
        if resumed_at.is_some_and(|(at, times)| at >= offset || times == MAX_RESUMES) {
            break Some(why);
        }
        let times = resumed_at.map_or(1, |(_, times)| times + 1);
        resumed_at = Some((offset, times));
        match resume(fetch, offset, size).await {
            Ok(rest) => {
                tracing::info!(
                    repository = %fetch.repository, digest = %fetch.digest, offset, %why,
                    "an upstream blob transfer broke; resumed with a Range request"
                );
                fetch.stats.add(Counter::BlobResume, 1);
                response = rest;
            }
            Err(refused) => break Some(format!("{why}; resuming it failed: {refused}")),
        }
    };
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
    stored.map_err(|e| CacheFailure::from_store(&upstream, e))?;
    fetch.stats.filled();
    Ok(())
}

/// How one upstream response's body ended.
enum Ended {
    /// Every byte of the blob arrived.
    Complete,
    /// The store stopped taking bytes: its error is the answer.
    StoreClosed,
    /// The transfer broke midway (connection lost, body cut short): worth resuming.
    Broken(String),
    /// The upstream misbehaved (a body too long, too slow): not worth asking again.
    Failed(String),
}

/// The store's word to the readers: where its upload is, and how far it is written.
struct Readers(watch::Sender<Progress>);

impl UploadFollower for Readers {
    fn opened(&self, upload: Arc<File>) {
        self.0.send_modify(|p| p.upload = Some(upload));
    }

    fn written(&self, upto: u64) {
        self.0.send_modify(|p| {
            p.written = upto;
            p.trim();
        });
    }

    fn verified(&self) {
        self.0.send_modify(|p| p.verified = true);
    }
}

/// A blob's bytes on their way from the upstream to the readers and the store.
struct Transfer<'a> {
    fetch: &'a Fetch,
    progress: &'a watch::Sender<Progress>,
    to_store: &'a mpsc::Sender<io::Result<Bytes>>,
    size: u64,
    received: u64,
}

impl Transfer<'_> {
    /// Relays one response's body. Each period of the upstream's timeout must bring at
    /// least [`MIN_PROGRESS`] bytes: a slow-loris upstream (a byte now and then, never
    /// silent long enough for the read timeout) is cut off after one period.
    async fn relay(&mut self, response: reqwest::Response) -> Result<Ended, CacheFailure> {
        let period = self.fetch.upstream.timeout();
        let mut period_end = Instant::now() + period;
        let mut period_bytes = 0u64;
        let mut stream = response.bytes_stream();
        loop {
            let next = tokio::time::timeout_at(period_end, stream.next()).await;
            if Instant::now() >= period_end {
                if period_bytes < MIN_PROGRESS {
                    return Ok(Ended::Failed(format!(
                        "it sent {period_bytes} bytes in {}s, under the {MIN_PROGRESS} a transfer needs to go on (timeout)",
                        period.as_secs()
                    )));
                }
                period_end = Instant::now() + period;
                period_bytes = 0;
            }
            let chunk = match next {
                Err(_) => continue,
                Ok(None) if self.received < self.size => {
                    return Ok(Ended::Broken(format!(
                        "the transfer ended after {} of {} bytes",
                        self.received, self.size
                    )));
                }
                Ok(None) => return Ok(Ended::Complete),
                Ok(Some(Err(e))) if e.is_timeout() => {
                    return Ok(Ended::Failed(crate::upstream::describe_error(e)));
                }
                Ok(Some(Err(e))) => {
                    return Ok(Ended::Broken(crate::upstream::describe_error(e)));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let len = chunk.len() as u64;
            self.received += len;
            period_bytes += len;
            self.fetch.stats.add(Counter::UpstreamBytes, len);
            if self.received > self.size {
                return Ok(Ended::Failed(format!(
                    "the body is longer than its Content-Length ({})",
                    self.size
                )));
            }
            // Readers first (they may take it at once), then the store.
            self.progress.send_modify(|p| p.receive(chunk.clone()));
            if self.to_store.send(Ok(chunk)).await.is_err() {
                return Ok(Ended::StoreClosed);
            }
        }
    }
}

/// The rest of a blob from `offset`: a `206` whose `Content-Range` is exactly that.
async fn resume(fetch: &Fetch, offset: u64, size: u64) -> Result<reqwest::Response, String> {
    let answer = fetch
        .upstream
        .blob_from(&fetch.upstream_name, &fetch.digest, offset)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the upstream no longer has the blob")?;
    let status = answer.response.status();
    if status != reqwest::StatusCode::PARTIAL_CONTENT {
        return Err(format!(
            "the upstream answered {status} to a Range request (it does not serve ranges)"
        ));
    }
    let expected = format!("bytes {offset}-{}/", size - 1);
    let range = answer
        .response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !range.starts_with(&expected) {
        return Err(format!(
            "the upstream sent the range {range:?}, not {expected}{size}"
        ));
    }
    Ok(answer.response)
}

/// The bytes `start..end` of the blob a download is fetching, as they arrive: from the
/// window in memory when the reader keeps up, else from the store's upload. The last byte
/// of the blob comes only once it is verified (its commit need not have ended).
pub(crate) fn follow(
    progress: watch::Receiver<Progress>,
    size: u64,
    start: u64,
    end: u64,
) -> ByteStream {
    let state = (progress, start);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut progress, pos)| {
            async move {
                if pos >= end {
                    return None;
                }
                loop {
                    let next = {
                        let p = progress.borrow_and_update();
                        // Verified bytes stay readable even if the commit then fails.
                        let available = match &p.done {
                            _ if p.verified => Ok(size),
                            Some(Ok(())) => Ok(size),
                            Some(Err(failure)) => Err(io::Error::other(format!("{failure:?}"))),
                            None => Ok(p.received.min(size.saturating_sub(1))),
                        };
                        match available {
                            Err(error) => Next::Failed(error),
                            Ok(available) if pos < available.min(end) => {
                                let upto = available.min(end);
                                match (p.in_window(pos, upto), &p.upload) {
                                    (Some(bytes), _) => Next::Bytes(bytes),
                                    // Behind the window: written to the store's upload.
                                    (None, Some(upload)) => Next::Upload(
                                        Arc::clone(upload),
                                        upto.min(p.written).min(pos + READ_CHUNK),
                                    ),
                                    (None, None) => Next::Wait,
                                }
                            }
                            Ok(_) => Next::Wait,
                        }
                    };
                    match next {
                        Next::Failed(error) => return Some((Err(error), (progress, end))),
                        Next::Bytes(bytes) => {
                            let upto = pos + bytes.len() as u64;
                            return Some((Ok(bytes), (progress, upto)));
                        }
                        Next::Upload(upload, upto) if upto > pos => {
                            let read = tokio::task::spawn_blocking(move || {
                                let mut buffer = vec![0; (upto - pos) as usize];
                                upload.read_exact_at(&mut buffer, pos).map(|()| buffer)
                            })
                            .await
                            .map_err(io::Error::other)
                            .and_then(|r| r);
                            return Some(match read {
                                Ok(buffer) => (Ok(Bytes::from(buffer)), (progress, upto)),
                                Err(e) => (Err(e), (progress, end)),
                            });
                        }
                        Next::Upload(..) | Next::Wait => {}
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

/// What a reader does next.
enum Next {
    /// Sends these bytes (from the window).
    Bytes(Bytes),
    /// Reads the store's upload up to there.
    Upload(Arc<File>, u64),
    /// Waits for more.
    Wait,
    /// Fails: the download did.
    Failed(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[test]
    fn the_window_serves_the_latest_chunks_without_copying_and_keeps_what_is_not_written() {
        let mut p = Progress::default();
        let half = WINDOW / 2;
        for byte in 0..4u8 {
            p.receive(chunk(byte, half));
        }
        // The store has written nothing yet: every chunk stays, past the window's size.
        assert_eq!(p.window_bytes, 4 * half as u64);
        assert_eq!(p.window_start(), 0);
        let first = p.in_window(10, 20).unwrap();
        assert_eq!(&first[..], &[0u8; 10][..]);
        // A read stops at the end of its chunk, and at `upto`.
        assert_eq!(
            p.in_window(half as u64 - 5, 4 * half as u64).unwrap().len(),
            5
        );
        assert_eq!(
            p.in_window(half as u64, half as u64 + 3).unwrap()[..],
            [1, 1, 1]
        );
        // Once written, the oldest chunks go until the window fits.
        p.written = 4 * half as u64;
        p.trim();
        assert_eq!(p.window_bytes, WINDOW as u64);
        assert_eq!(p.window_start(), 2 * half as u64);
        assert!(
            p.in_window(0, 10).is_none(),
            "behind the window: the store's upload"
        );
        assert_eq!(
            p.in_window(2 * half as u64, 2 * half as u64 + 1).unwrap()[..],
            [2]
        );
        assert!(
            p.in_window(4 * half as u64, 5 * half as u64).is_none(),
            "not received"
        );
    }
}
