//! The spool: how a store whose uploads cannot be read before they are committed (object
//! stores, IPFS) lets a follower read an upload while it is written
//! ([`BlobStore::write_upload_followed`]'s default). The bytes stream to the store and,
//! gathered in blocks, to an anonymous temporary file (it has no name, so a crash leaves
//! nothing) that the follower reads.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use berth_oci::UploadId;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::{BlobStore, ByteStream, StorageError, UploadFollower};

/// Bytes gathered before they are written to the spool (one blocking call each).
const SPOOL_BLOCK: usize = 1024 * 1024;
/// Chunks queued for the store before the body waits for it.
const STORE_QUEUE: usize = 16;

pub(crate) async fn write_spooled<S: BlobStore + ?Sized>(
    store: &S,
    id: UploadId,
    mut data: ByteStream,
    follower: &dyn UploadFollower,
) -> Result<u64, StorageError> {
    let spool = Arc::new(blocking(tempfile::tempfile).await?);
    follower.opened(Arc::clone(&spool));
    // The store takes the same chunks through a bounded queue, in this task: a slow store
    // slows the body, and nothing piles up in memory.
    let (to_store, queue) = mpsc::channel::<io::Result<Bytes>>(STORE_QUEUE);
    let body: ByteStream = Box::pin(futures_util::stream::unfold(queue, |mut queue| async {
        queue.recv().await.map(|item| (item, queue))
    }));
    let spooling = async move {
        let mut pending = Vec::new();
        let mut pending_bytes = 0;
        let mut spooled = 0;
        while let Some(item) = data.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    // The store fails the write with the body's error.
                    let _ = to_store.send(Err(e)).await;
                    return Ok(());
                }
            };
            pending_bytes += chunk.len();
            pending.push(chunk.clone());
            if to_store.send(Ok(chunk)).await.is_err() {
                return Ok(()); // the store stopped: its error is the answer
            }
            if pending_bytes >= SPOOL_BLOCK {
                spooled = append(&spool, spooled, std::mem::take(&mut pending)).await?;
                pending_bytes = 0;
                follower.written(spooled);
            }
        }
        spooled = append(&spool, spooled, pending).await?;
        // Reported before the store has all of it: the follower reads the spool, not the
        // store, and learns from the write's result whether the store took it.
        follower.written(spooled);
        Ok::<(), StorageError>(())
    };
    let (stored, spooled) = futures_util::join!(store.write_upload(id, 0, body), spooling);
    spooled?;
    stored
}

/// Writes `chunks` to the spool at `at`; where they end.
async fn append(spool: &Arc<File>, at: u64, chunks: Vec<Bytes>) -> Result<u64, StorageError> {
    let file = Arc::clone(spool);
    blocking(move || {
        let mut end = at;
        for chunk in &chunks {
            file.write_all_at(chunk, end)?;
            end += chunk.len() as u64;
        }
        Ok(end)
    })
    .await
}

async fn blocking<T: Send + 'static>(
    io: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(io)
        .await
        .map_err(io::Error::other)?
        .map_err(|e| StorageError::Io(io::Error::new(e.kind(), format!("spool file: {e}"))))
}
