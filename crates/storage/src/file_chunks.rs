//! Streaming a byte range of a file with one read ahead.
//!
//! Each chunk is read by a short blocking task (`pread`), so a slow client does not pin a
//! thread for the length of its download; the next chunk is read while the current one is
//! being sent, so a fast client is not kept waiting on the disk.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Large enough that per-chunk task overhead is negligible next to the copy, small enough
/// that many concurrent downloads stay cheap in memory (two chunks each).
const CHUNK_SIZE: usize = 512 * 1024;

pub(crate) struct FileChunks {
    file: Arc<File>,
    next_offset: u64,
    end: u64,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileChunks {
    /// Streams `[start, end)` of `file`.
    pub(crate) fn new(file: File, start: u64, end: u64) -> Self {
        let mut chunks = FileChunks {
            file: Arc::new(file),
            next_offset: start,
            end,
            pending: None,
        };
        chunks.read_ahead();
        chunks
    }

    fn read_ahead(&mut self) {
        if self.next_offset >= self.end {
            return;
        }
        let len = (self.end - self.next_offset).min(CHUNK_SIZE as u64) as usize;
        let offset = self.next_offset;
        self.next_offset += len as u64;
        let file = Arc::clone(&self.file);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::zeroed(len);
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf.freeze())
        }));
    }
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(Pin::new(pending).poll(cx));
        self.pending = None;
        let chunk = match result {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
            Err(join_error) => return Poll::Ready(Some(Err(io::Error::other(join_error)))),
        };
        self.read_ahead();
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Drop for FileChunks {
    fn drop(&mut self) {
        // A client that went away leaves at most one read behind; it finishes on its own.
        if let Some(pending) = self.pending.take() {
            pending.abort();
        }
    }
}
