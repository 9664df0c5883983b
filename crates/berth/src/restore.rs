//! `berth restore SOURCE`: rebuilds a registry from a backup made by `berth backup`, into the
//! database and blob store the configuration names, then verifies the result.
//!
//! 1. The database: a SQLite snapshot is copied into place (an existing database is kept
//!    aside with `--force`, refused otherwise); into PostgreSQL, which must be an empty
//!    database, `pg_restore` loads a dump and berth itself loads a logical export. Migrations
//!    newer than the backup then run as on any start.
//! 2. The blobs: each listed blob the store does not hold is uploaded from the backup's copy
//!    (streamed and verified against its digest, as a push would be).
//! 3. Verification: every listed blob is in the store with its size (with
//!    `--verify-content`, its bytes hash to its digest), and the database records them all.

use std::path::Path;
use std::sync::Arc;

use berth_config::Config;
use berth_meta::snapshot::BackupBlob;
use berth_oci::{DigestHasher, UploadId};
use berth_storage::verify::{ContentCheck, Pace, check_content};
use berth_storage::{BlobStore, ByteStream, StoredBlob};
use bytes::Bytes;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::backup::{BackupInfo, SavedDatabase, blob_copy_path, read_blob_list};
use crate::progress::{Progress, human_bytes};

pub struct Options {
    /// Replace an existing SQLite database (kept aside as `<file>.replaced-<time>`).
    pub force: bool,
    pub verify_content: bool,
    pub quiet: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs uploaded from the backup's copies.
    pub uploaded: u64,
    /// Blobs the store already held.
    pub present: u64,
    /// Listed blobs that are neither in the store nor in the backup, or failed to verify.
    pub problems: Vec<(String, String)>,
    pub seconds: f64,
}

impl Summary {
    pub fn print(&self) {
        for (digest, why) in &self.problems {
            println!("problem      {digest}: {why}");
        }
        println!(
            "restored the database and {} blobs ({}): {} were in the store, {} uploaded from the backup; {} problems; in {:.1}s",
            self.blobs,
            human_bytes(self.bytes),
            self.present,
            self.uploaded,
            self.problems.len(),
            self.seconds
        );
    }
}

/// Puts the backup's database where the configuration says; the database must be opened
/// (and migrated) afterwards.
pub async fn restore_database(
    config: &Config,
    source: &Path,
    info: &BackupInfo,
    force: bool,
) -> Result<(), String> {
    let url = config.database_url();
    let saved = source.join("database");
    match (&info.database, url.starts_with("sqlite:")) {
        (SavedDatabase::Sqlite { file }, true) => {
            let target = sqlite_path(&url)?;
            let from = saved.join(file);
            if target.exists() {
                if !force {
                    return Err(format!(
                        "{} exists: restore into a new location, or pass --force to keep the existing database aside and replace it",
                        target.display()
                    ));
                }
                let aside =
                    target.with_extension(format!("db.replaced-{}", berth_meta::now_millis()));
                std::fs::rename(&target, &aside)
                    .map_err(|e| format!("moving {} aside: {e}", target.display()))?;
                eprintln!(
                    "berth restore: the existing database is now {}",
                    aside.display()
                );
                for suffix in ["-wal", "-shm"] {
                    let stale = std::path::PathBuf::from(format!("{}{suffix}", target.display()));
                    let _ = std::fs::remove_file(stale);
                }
            }
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let partial = target.with_extension("db.restoring");
            std::fs::copy(&from, &partial).map_err(|e| format!("{}: {e}", from.display()))?;
            std::fs::File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("{}: {e}", partial.display()))?;
            std::fs::rename(&partial, &target).map_err(|e| format!("{}: {e}", target.display()))
        }
        (SavedDatabase::PgDump { file }, false) => {
            ensure_empty(&url).await?;
            let dump = saved.join(file).to_string_lossy().to_string();
            let dbname = crate::backup::libpq_environment(&url)?
                .into_iter()
                .find_map(|(key, value)| (key == "PGDATABASE").then_some(value))
                .unwrap_or_default();
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                crate::backup::run_libpq_program(
                    "pg_restore",
                    &[
                        "--no-owner",
                        "--exit-on-error",
                        "--single-transaction",
                        "--dbname",
                        &dbname,
                        &dump,
                    ],
                    &url,
                )
            })
            .await
            .map_err(|e| e.to_string())?
        }
        (SavedDatabase::Logical { tables, version }, false) => {
            ensure_empty(&url).await?;
            berth_meta::snapshot::postgres_import(&url, &saved.join("logical"), tables, *version)
                .await
                .map_err(|e| format!("loading the logical export: {e}"))
        }
        (saved, _) => Err(format!(
            "the backup holds a {} database, but database.url names {}: restore into the same kind of database",
            match saved {
                SavedDatabase::Sqlite { .. } => "SQLite",
                _ => "PostgreSQL",
            },
            config.redacted_database_url()
        )),
    }
}

fn sqlite_path(url: &str) -> Result<std::path::PathBuf, String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err("database.url names no SQLite file".into());
    }
    Ok(std::path::PathBuf::from(path))
}

async fn ensure_empty(url: &str) -> Result<(), String> {
    let empty = berth_meta::snapshot::postgres_is_empty(url)
        .await
        .map_err(|e| format!("connecting to the database: {e}"))?;
    if empty {
        Ok(())
    } else {
        Err("the PostgreSQL database is not empty: restore into a new, empty database (CREATE DATABASE ...), then point database.url at it".into())
    }
}

/// A file as a stream of 1 MiB chunks.
fn file_stream(file: tokio::fs::File) -> ByteStream {
    Box::pin(futures_util::stream::try_unfold(
        file,
        |mut file| async move {
            let mut buffer = bytes::BytesMut::with_capacity(1024 * 1024);
            let read = file.read_buf(&mut buffer).await?;
            Ok((read > 0).then(|| (Bytes::from(buffer), file)))
        },
    ))
}

/// Uploads a blob's copy from the backup into the store, verified; returns the CID the
/// store gave it.
async fn upload_copy(
    store: &dyn BlobStore,
    source: &Path,
    blob: &BackupBlob,
) -> Result<Option<String>, String> {
    let path = blob_copy_path(source, &blob.digest);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("no copy in the backup ({}: {e})", path.display()))?;
    let hasher = Arc::new(std::sync::Mutex::new(DigestHasher::new(
        blob.digest.algorithm(),
    )));
    let hashing: ByteStream = {
        let hasher = Arc::clone(&hasher);
        Box::pin(futures_util::TryStreamExt::inspect_ok(
            file_stream(file),
            move |chunk| {
                hasher
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .update(chunk)
            },
        ))
    };
    let id = UploadId::random();
    store.create_upload(id).await.map_err(|e| e.to_string())?;
    let result = async {
        let written = store
            .write_upload(id, 0, hashing)
            .await
            .map_err(|e| e.to_string())?;
        let actual = Arc::into_inner(hasher)
            .expect("the write is over")
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .finish();
        if actual != blob.digest || written != blob.size {
            return Err(format!(
                "the backup's copy has {written} bytes hashing to {actual}, not the recorded {} bytes",
                blob.size
            ));
        }
        store
            .commit_upload(id, written, &blob.digest)
            .await
            .map(|c| c.cid)
            .map_err(|e| e.to_string())
    }
    .await;
    if result.is_err() {
        let _ = store.delete_upload(id).await;
    }
    result
}

/// Steps 2 and 3: brings the listed blobs into the store and verifies them.
pub async fn restore_blobs(
    inventory: &Arc<dyn berth_meta::BlobInventory>,
    store: &Arc<dyn BlobStore>,
    source: &Path,
    info: &BackupInfo,
    options: &Options,
) -> Result<Summary, String> {
    let started = std::time::Instant::now();
    let blobs = read_blob_list(source)?;
    let mut summary = Summary::default();
    let mut progress = Progress::new("restore blobs", info.blobs, info.bytes, options.quiet);
    let mut pace = Pace::new(None);
    let counts = inventory
        .blob_counts()
        .await
        .map_err(|e| format!("reading the restored database: {e}"))?;
    if counts.blobs != blobs.len() as u64 {
        summary.problems.push((
            "database".into(),
            format!(
                "the restored database records {} blobs, the backup lists {}",
                counts.blobs,
                blobs.len()
            ),
        ));
    }
    for blob in blobs {
        summary.blobs += 1;
        summary.bytes += blob.size;
        let stored = StoredBlob {
            digest: blob.digest.clone(),
            size: blob.size,
            cid: blob.cid.clone(),
        };
        let present = match store.stat_blob(&stored).await {
            Ok(size) => size == Some(blob.size),
            Err(e) => return Err(format!("blob storage: {e}")),
        };
        if present {
            summary.present += 1;
            if options.verify_content {
                match check_content(store.as_ref(), &stored, &mut pace).await {
                    Ok(ContentCheck::Intact) => {}
                    Ok(found) => summary
                        .problems
                        .push((blob.digest.to_string(), found.describe(blob.size))),
                    Err(e) => summary
                        .problems
                        .push((blob.digest.to_string(), e.to_string())),
                }
            }
        } else {
            match upload_copy(store.as_ref(), source, &blob).await {
                Ok(cid) => {
                    summary.uploaded += 1;
                    if cid != blob.cid {
                        // Another kind of store than the backup's (a move to IPFS, or away).
                        inventory
                            .set_cid(&blob.digest, cid.as_deref())
                            .await
                            .map_err(|e| format!("updating the database: {e}"))?;
                    }
                }
                Err(why) => summary.problems.push((blob.digest.to_string(), why)),
            }
        }
        progress.advance(blob.size);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
