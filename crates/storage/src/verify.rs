//! Checking that a committed blob's stored bytes are its digest's, for `berth fsck` and the
//! scrub, at a bounded pace so that a check never starves the registry's own traffic.

use std::time::{Duration, Instant};

use berth_oci::{Digest, DigestHasher};
use futures_util::TryStreamExt;

use crate::{BlobStore, StorageError, StoredBlob};

/// Keeps reads at or under a number of bytes per second (no limit when `None`).
pub struct Pace {
    limit: Option<u64>,
    started: Instant,
    consumed: u64,
}

impl Pace {
    pub fn new(bytes_per_second: Option<u64>) -> Pace {
        Pace {
            limit: bytes_per_second.filter(|&l| l > 0),
            started: Instant::now(),
            consumed: 0,
        }
    }

    /// Accounts for `bytes` read, waiting first if that would go faster than the limit.
    pub async fn take(&mut self, bytes: u64) {
        self.consumed += bytes;
        if let Some(limit) = self.limit {
            let due = Duration::from_secs_f64(self.consumed as f64 / limit as f64);
            let elapsed = self.started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

/// What a content check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentCheck {
    /// The bytes are there, of the recorded size, and hash to the digest.
    Intact,
    /// Nothing is stored for the blob.
    Missing,
    /// The stored bytes have another size than the recorded one.
    WrongSize { stored: u64 },
    /// The stored bytes hash to another digest.
    WrongContent { actual: Digest },
}

impl ContentCheck {
    /// A sentence for reports and the quarantine record.
    pub fn describe(&self, recorded_size: u64) -> String {
        match self {
            ContentCheck::Intact => "intact".into(),
            ContentCheck::Missing => "no bytes are stored for it".into(),
            ContentCheck::WrongSize { stored } => {
                format!("{stored} bytes are stored where {recorded_size} are recorded")
            }
            ContentCheck::WrongContent { actual } => {
                format!("the stored bytes hash to {actual}")
            }
        }
    }
}

/// Reads a blob through (never redirected) and compares it with its record.
pub async fn check_content(
    store: &dyn BlobStore,
    blob: &StoredBlob,
    pace: &mut Pace,
) -> Result<ContentCheck, StorageError> {
    match store.stat_blob(blob).await? {
        None => return Ok(ContentCheck::Missing),
        Some(stored) if stored != blob.size => return Ok(ContentCheck::WrongSize { stored }),
        Some(_) => {}
    }
    let mut content = match store.stream_blob(blob, None).await {
        Ok(content) => content,
        Err(StorageError::NotFound) => return Ok(ContentCheck::Missing),
        Err(e) => return Err(e),
    };
    let mut hasher = DigestHasher::new(blob.digest.algorithm());
    let mut read = 0u64;
    while let Some(chunk) = content.try_next().await.map_err(StorageError::Io)? {
        read += chunk.len() as u64;
        hasher.update(&chunk);
        pace.take(chunk.len() as u64).await;
    }
    if read != blob.size {
        return Ok(ContentCheck::WrongSize { stored: read });
    }
    let actual = hasher.finish();
    Ok(if actual == blob.digest {
        ContentCheck::Intact
    } else {
        ContentCheck::WrongContent { actual }
    })
}
