//! Streaming a byte range of a file.
//!
//! A chunk is read where it costs least without ever blocking an async thread on a device:
//!
//! - **Inline**, in `poll_next`, when the read cannot wait for a device: always for a file on
//!   a memory filesystem (tmpfs, ramfs: a read is a memory copy), and on other Linux
//!   filesystems for whatever `preadv2(RWF_NOWAIT)` finds in the page cache. This is the
//!   common case for a registry (hot layers are pulled again and again), and it spares each
//!   chunk a hand-off to a blocking thread and back: on the machine the benchmark was written
//!   on, those two thread wake-ups cost more CPU than the copy itself.
//! - **On a short blocking task** (`pread`) otherwise: when the page cache does not hold the
//!   chunk (`EAGAIN`), for the rest of the range when the filesystem cannot tell
//!   (`EOPNOTSUPP`), and on other systems; with one read ahead, so that a slow client does not
//!   pin a thread for the length of its download and a fast one does not wait on the disk.
//!
//! Buffers are filled from uninitialised capacity (no zero-fill before the read), except by
//! `RWF_NOWAIT` reads, which need an initialised buffer.

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Large enough that per-chunk overhead (a syscall, a poll, a frame) is negligible next to
/// the copy, small enough that many concurrent downloads stay cheap in memory and that an
/// inline read keeps the async thread for well under a millisecond.
const CHUNK_SIZE: usize = 512 * 1024;

/// Where chunks are read; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A memory filesystem: plain `pread` on the async thread.
    Memory,
    /// `preadv2(RWF_NOWAIT)` on the async thread; a blocking task for what is not cached.
    NoWait,
    /// Blocking tasks with one read ahead.
    Blocking,
}

pub(crate) struct FileChunks {
    file: Arc<File>,
    next_offset: u64,
    end: u64,
    mode: Mode,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileChunks {
    /// Streams `[start, end)` of `file`.
    pub(crate) fn new(file: File, start: u64, end: u64) -> Self {
        let mode = mode_for(&file);
        let mut chunks = FileChunks {
            file: Arc::new(file),
            next_offset: start,
            end,
            mode,
            pending: None,
        };
        if mode == Mode::Blocking {
            chunks.read_ahead();
        }
        chunks
    }

    /// The length and offset of the next chunk, advancing past it; `None` at the end.
    fn take_next(&mut self) -> Option<(u64, usize)> {
        if self.next_offset >= self.end {
            return None;
        }
        let len = (self.end - self.next_offset).min(CHUNK_SIZE as u64) as usize;
        let offset = self.next_offset;
        self.next_offset += len as u64;
        Some((offset, len))
    }

    /// Starts reading the next chunk on a blocking task.
    fn read_ahead(&mut self) {
        if let Some((offset, len)) = self.take_next() {
            self.read_blocking(offset, len);
        }
    }

    fn read_blocking(&mut self, offset: u64, len: usize) {
        let file = Arc::clone(&self.file);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            read_exact_at(&file, offset, len)
        }));
    }
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(pending) = self.pending.as_mut() {
                let result = ready!(Pin::new(pending).poll(cx));
                self.pending = None;
                let chunk = match result {
                    Ok(Ok(chunk)) => chunk,
                    Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Err(join_error) => {
                        return Poll::Ready(Some(Err(io::Error::other(join_error))));
                    }
                };
                if self.mode == Mode::Blocking {
                    self.read_ahead();
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            match self.mode {
                Mode::Blocking => {
                    // Only at the switch from `NoWait`: later chunks are read ahead.
                    self.read_ahead();
                    if self.pending.is_none() {
                        return Poll::Ready(None);
                    }
                }
                Mode::Memory => {
                    let Some((offset, len)) = self.take_next() else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(Some(read_exact_at(&self.file, offset, len)));
                }
                Mode::NoWait => {
                    let Some((offset, len)) = self.take_next() else {
                        return Poll::Ready(None);
                    };
                    match read_cached_at(&self.file, offset, len) {
                        Cached::Read(chunk) => {
                            // What the page cache held; the rest of the chunk comes next.
                            self.next_offset = offset + chunk.len() as u64;
                            return Poll::Ready(Some(Ok(chunk)));
                        }
                        Cached::WouldBlock => self.read_blocking(offset, len),
                        Cached::Unsupported => {
                            self.mode = Mode::Blocking;
                            self.read_blocking(offset, len);
                        }
                        Cached::Failed(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
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

/// Reads exactly `len` bytes at `offset` into a fresh buffer, without zero-filling it first.
fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::os::unix::fs::FileExt;
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, offset)?;
    }
    Ok(Bytes::from(buf))
}

/// The outcome of a read that must not wait for a device.
enum Cached {
    /// Between 1 and `len` bytes the page cache held.
    Read(Bytes),
    /// The page cache does not hold the first byte: a blocking read must fetch it.
    WouldBlock,
    /// The filesystem cannot tell without waiting (`EOPNOTSUPP`).
    Unsupported,
    Failed(io::Error),
}

#[cfg(target_os = "linux")]
fn read_cached_at(file: &File, offset: u64, len: usize) -> Cached {
    use rustix::io::{Errno, ReadWriteFlags};
    let mut buf = vec![0u8; len];
    loop {
        let mut slices = [io::IoSliceMut::new(&mut buf)];
        return match rustix::io::preadv2(file, &mut slices, offset, ReadWriteFlags::NOWAIT) {
            Ok(0) => Cached::Failed(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf.truncate(n);
                Cached::Read(Bytes::from(buf))
            }
            Err(Errno::AGAIN) => Cached::WouldBlock,
            Err(Errno::OPNOTSUPP) => Cached::Unsupported,
            Err(Errno::INTR) => continue,
            Err(e) => Cached::Failed(e.into()),
        };
    }
}

#[cfg(not(target_os = "linux"))]
fn read_cached_at(_: &File, _: u64, _: usize) -> Cached {
    Cached::Unsupported
}

/// How to read `file`: inline on a memory filesystem, inline from the page cache on other
/// Linux filesystems, on blocking tasks elsewhere.
fn mode_for(file: &File) -> Mode {
    #[cfg(target_os = "linux")]
    {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        const RAMFS_MAGIC: u64 = 0x8584_58f6;
        // `f_type` is a signed or unsigned word depending on the architecture; the magic
        // numbers are 32-bit.
        #[allow(clippy::unnecessary_cast)]
        match rustix::fs::fstatfs(file).map(|s| s.f_type as u64 & 0xffff_ffff) {
            Ok(TMPFS_MAGIC | RAMFS_MAGIC) => Mode::Memory,
            _ => Mode::NoWait,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Mode::Blocking
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;
    use std::io::Write;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    async fn collect(chunks: FileChunks) -> Vec<u8> {
        let parts: Vec<Bytes> = chunks.try_collect().await.unwrap();
        parts.concat()
    }

    /// Every mode streams exactly the requested range, across chunk boundaries.
    #[tokio::test]
    async fn every_mode_streams_the_range() {
        let len = 2 * CHUNK_SIZE + 12345;
        let data = content(len);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        for mode in [Mode::Memory, Mode::NoWait, Mode::Blocking] {
            for (start, end) in [
                (0, len),
                (1, len - 1),
                (CHUNK_SIZE as u64 as usize, len),
                (5, 5),
            ] {
                let mut chunks = FileChunks {
                    file: Arc::new(file.try_clone().unwrap()),
                    next_offset: start as u64,
                    end: end as u64,
                    mode,
                    pending: None,
                };
                if mode == Mode::Blocking {
                    chunks.read_ahead();
                }
                assert_eq!(
                    collect(chunks).await,
                    &data[start..end],
                    "{mode:?} {start}..{end}"
                );
            }
        }
    }

    /// A file shorter than the range (its size came from the database) is an error, not a
    /// short response that looks complete.
    #[tokio::test]
    async fn a_truncated_file_is_an_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&content(1000)).unwrap();
        for mode in [Mode::Memory, Mode::NoWait, Mode::Blocking] {
            let mut chunks = FileChunks {
                file: Arc::new(file.try_clone().unwrap()),
                next_offset: 0,
                end: 2000,
                mode,
                pending: None,
            };
            if mode == Mode::Blocking {
                chunks.read_ahead();
            }
            let result: io::Result<Vec<Bytes>> = chunks.try_collect().await;
            assert!(result.is_err(), "{mode:?}");
        }
    }

    #[test]
    fn the_mode_follows_the_filesystem() {
        if std::path::Path::new("/dev/shm").is_dir()
            && let Ok(file) = tempfile::tempfile_in("/dev/shm")
        {
            assert_eq!(mode_for(&file), Mode::Memory);
        }
    }
}
