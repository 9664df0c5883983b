//! An upload's body written to its file in blocks of [`WRITE_BLOCK`] bytes, each block
//! written on a blocking thread while the next one fills, the blocks reused.
//!
//! A block allocated afresh for each megabyte cost more than the copy into it: 256 page
//! faults per block, as the allocator hands freed blocks back to the system and maps them
//! again for the next one (a fifth of berth's CPU during a cold pull through the cache).
//! So the two blocks of an upload take turns, and a few spare ones are kept for the next
//! uploads.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::{ByteStream, StorageError, UploadFollower};

/// Few enough syscalls and blocking tasks per gigabyte, and at most two blocks per upload
/// in memory.
pub(crate) const WRITE_BLOCK: usize = 1024 * 1024;

/// How many free blocks are kept (8 MiB at most), for as many uploads at a time.
const SPARE_BLOCKS: usize = 8;

/// Free write blocks, shared by a store's uploads.
#[derive(Default)]
pub(crate) struct Blocks {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Blocks {
    fn take(&self) -> Vec<u8> {
        self.spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(WRITE_BLOCK))
    }

    fn give(&self, mut block: Vec<u8>) {
        block.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_BLOCKS && block.capacity() >= WRITE_BLOCK {
            spare.push(block);
        }
    }
}

type Written = JoinHandle<io::Result<Vec<u8>>>;

/// Writes `data` to `file` from `offset` on; the number of bytes written. The data is not
/// synced. `follower` hears where the written bytes end each time a block is written.
pub(crate) async fn write_blocks(
    blocks: &Arc<Blocks>,
    file: &Arc<File>,
    offset: u64,
    mut data: ByteStream,
    follower: Option<&dyn UploadFollower>,
) -> Result<u64, StorageError> {
    let mut position = offset;
    let mut block = blocks.take();
    let mut in_flight: Option<Written> = None;
    // Blocks are written in order, one at a time: once the one in flight is written, every
    // byte before `position` is.
    let written = |upto: u64| {
        if let Some(follower) = follower {
            follower.written(upto);
        }
    };
    let write = |block: Vec<u8>, at: u64| -> Written {
        let file = Arc::clone(file);
        tokio::task::spawn_blocking(move || file.write_all_at(&block, at).map(|()| block))
    };
    while let Some(chunk) = data.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                // Let the write in flight end before the caller reuses the file.
                if let Some(handle) = in_flight.take()
                    && let Ok(spare) = finish(handle).await
                {
                    blocks.give(spare);
                }
                blocks.give(block);
                return Err(StorageError::Body(e));
            }
        };
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = rest.len().min(WRITE_BLOCK - block.len());
            block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if block.len() == WRITE_BLOCK {
                let next = match in_flight.take() {
                    Some(handle) => {
                        let next = finish(handle).await?;
                        written(position);
                        next
                    }
                    None => blocks.take(),
                };
                let full = std::mem::replace(&mut block, next);
                in_flight = Some(write(full, position));
                position += WRITE_BLOCK as u64;
            }
        }
    }
    if let Some(handle) = in_flight.take() {
        blocks.give(finish(handle).await?);
    }
    if !block.is_empty() {
        let len = block.len() as u64;
        block = finish(write(block, position)).await?;
        position += len;
    }
    blocks.give(block);
    written(position);
    Ok(position - offset)
}

/// The written block back, empty.
async fn finish(handle: Written) -> io::Result<Vec<u8>> {
    let mut block = handle.await.map_err(io::Error::other)??;
    block.clear();
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn blocks_are_reused_and_the_bytes_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("upload")).unwrap());
        let blocks = Arc::new(Blocks::default());
        // Chunks that straddle block boundaries, 2.5 blocks in all.
        let data: Vec<u8> = (0..WRITE_BLOCK * 5 / 2).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<io::Result<Bytes>> = data
            .chunks(300_007)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body: ByteStream = Box::pin(futures_util::stream::iter(chunks));
        let written = write_blocks(&blocks, &file, 0, body, None).await.unwrap();
        assert_eq!(written, data.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("upload")).unwrap(), data);
        // Both blocks went back, empty and whole; the next upload takes them.
        let spare = blocks.spare.lock().unwrap();
        assert_eq!(spare.len(), 2);
        assert!(
            spare
                .iter()
                .all(|b| b.is_empty() && b.capacity() >= WRITE_BLOCK)
        );
    }
}
