//! `berth backup DEST`: a consistent snapshot of the metadata database, the list of blobs it
//! references, and optionally copies of those blobs, while berth keeps serving.
//!
//! ```text
//! DEST/backup.json        what the backup holds (written last: without it, a backup is incomplete)
//! DEST/database/          berth.db (SQLite), berth.pgdump (pg_dump's custom format), or
//!                         logical/<table>.jsonl (PostgreSQL without pg_dump)
//! DEST/blobs.jsonl        every blob the snapshot records: digest, size, IPFS CID
//! DEST/blobs/<alg>/<hex>  copies of the blobs (--blobs), verified; a later backup into the
//!                         same DEST copies only the blobs it does not hold yet
//! ```
//!
//! The blob list comes from the snapshot itself, so it names exactly what the saved database
//! refers to. Blobs are immutable and written before the rows that name them, so copying them
//! after the snapshot is consistent too; only garbage collection could remove one meanwhile,
//! and the summary then says which.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_config::Config;
use berth_meta::snapshot::{BackupBlob, PostgresSnapshot};
use berth_oci::DigestHasher;
use berth_storage::{BlobStore, StoredBlob};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::backends::{Database, Engine};
use crate::progress::{Progress, human_bytes};

pub const INFO_FILE: &str = "backup.json";
pub const BLOB_LIST: &str = "blobs.jsonl";
const FORMAT: u32 = 1;

/// How a PostgreSQL database is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PostgresFormat {
    /// `pg_dump` when it is installed, otherwise `logical`.
    Auto,
    /// `pg_dump --format=custom` (restored with `pg_restore`).
    PgDump,
    /// Every table as JSON lines, read by berth itself.
    Logical,
}

pub struct Options {
    pub blobs: bool,
    pub postgres_format: PostgresFormat,
    pub quiet: bool,
}

/// How the database was saved, under `DEST/database/`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SavedDatabase {
    Sqlite { file: String },
    PgDump { file: String },
    Logical { tables: Vec<String>, version: i64 },
}

/// `backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupInfo {
    pub format: u32,
    pub berth_version: String,
    pub created_at: String,
    pub database: SavedDatabase,
    pub blobs: u64,
    pub bytes: u64,
    /// Whether `blobs/` holds a copy of every listed blob.
    pub blob_copies: bool,
    /// Where the blobs were (for people reading the file).
    pub storage: String,
}

/// What a backup did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub blobs: u64,
    pub bytes: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    /// Blob copies already in DEST from an earlier backup.
    pub already_there: u64,
    /// Blobs the snapshot lists that could not be copied, with why.
    pub not_copied: Vec<(String, String)>,
    pub seconds: f64,
}

pub fn read_info(dir: &Path) -> Result<BackupInfo, String> {
    let path = dir.join(INFO_FILE);
    let text = std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e} (a backup is complete only once berth backup wrote this file)",
            path.display()
        )
    })?;
    let info: BackupInfo =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if info.format != FORMAT {
        return Err(format!(
            "{}: backup format {} is not one this berth reads ({FORMAT})",
            path.display(),
            info.format
        ));
    }
    Ok(info)
}

/// The blobs a backup lists.
pub fn read_blob_list(dir: &Path) -> Result<Vec<BackupBlob>, String> {
    let path = dir.join(BLOB_LIST);
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// Where a blob's copy is in a backup.
pub fn blob_copy_path(dir: &Path, digest: &berth_oci::Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// Writes `bytes` to `path` through a temporary file, fsynced, so that `path` is whole or
/// absent.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(io(&partial))?;
    file.write_all(bytes).map_err(io(&partial))?;
    file.sync_all().map_err(io(&partial))?;
    std::fs::rename(&partial, path).map_err(io(path))
}

pub async fn run(
    config: &Config,
    database: &Database,
    store: &Arc<dyn BlobStore>,
    dest: &Path,
    options: &Options,
) -> Result<Summary, String> {
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    // A new database copy is made beside the old one and replaces it once complete.
    let saving = dest.join("database.partial");
    if saving.exists() {
        std::fs::remove_dir_all(&saving).map_err(io(&saving))?;
    }
    std::fs::create_dir_all(&saving).map_err(io(&saving))?;
    let list_path = dest.join("blobs.jsonl.partial");
    let mut list =
        std::io::BufWriter::new(std::fs::File::create(&list_path).map_err(io(&list_path))?);
    let mut summary = Summary::default();
    let mut record = |blob: BackupBlob| {
        summary.blobs += 1;
        summary.bytes += blob.size;
        let line = serde_json::to_string(&blob).expect("blobs serialize");
        writeln!(list, "{line}")
    };

    let saved = match &database.engine {
        Engine::Sqlite(store) => {
            let file = saving.join("berth.db");
            store
                .snapshot_into(&file)
                .await
                .map_err(|e| format!("snapshotting the database: {e}"))?;
            // The list from the snapshot, not the live database.
            let snapshot = berth_meta::SqliteStore::open(&file)
                .await
                .map_err(|e| format!("opening the snapshot: {e}"))?;
            snapshot
                .for_each_blob(&mut record)
                .await
                .map_err(|e| format!("listing the snapshot's blobs: {e}"))?;
            snapshot.close().await;
            SavedDatabase::Sqlite {
                file: "berth.db".into(),
            }
        }
        Engine::Postgres(store) => {
            let mut snapshot = store
                .snapshot()
                .await
                .map_err(|e| format!("snapshotting the database: {e}"))?;
            snapshot
                .for_each_blob(&mut record)
                .await
                .map_err(|e| format!("listing the snapshot's blobs: {e}"))?;
            let saved = save_postgres(config, &mut snapshot, &saving, options).await?;
            snapshot
                .finish()
                .await
                .map_err(|e| format!("ending the snapshot: {e}"))?;
            saved
        }
    };
    list.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(io(&list_path))?;

    let database_dir = dest.join("database");
    if database_dir.exists() {
        std::fs::remove_dir_all(&database_dir).map_err(io(&database_dir))?;
    }
    std::fs::rename(&saving, &database_dir).map_err(io(&database_dir))?;
    std::fs::rename(&list_path, dest.join(BLOB_LIST)).map_err(io(dest))?;

    if options.blobs {
        copy_blobs(store, dest, &mut summary, options.quiet).await?;
    }
    let info = BackupInfo {
        format: FORMAT,
        berth_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        database: saved,
        blobs: summary.blobs,
        bytes: summary.bytes,
        blob_copies: options.blobs && summary.not_copied.is_empty(),
        storage: crate::backends::describe_storage(config),
    };
    write_atomically(
        &dest.join(INFO_FILE),
        &serde_json::to_vec_pretty(&info).expect("info serializes"),
    )?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Whether `pg_dump` is installed.
fn pg_dump_installed() -> bool {
    Command::new("pg_dump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// libpq's environment for a `postgres://` URL: the password never on a command line.
pub fn libpq_environment(url: &str) -> Result<Vec<(&'static str, String)>, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("database.url: {e}"))?;
    let mut env = vec![
        (
            "PGHOST",
            parsed.host_str().unwrap_or("localhost").to_string(),
        ),
        ("PGPORT", parsed.port().unwrap_or(5432).to_string()),
        (
            "PGDATABASE",
            parsed.path().trim_start_matches('/').to_string(),
        ),
    ];
    if !parsed.username().is_empty() {
        env.push(("PGUSER", berth_config::percent_decode(parsed.username())));
    }
    if let Some(password) = parsed.password() {
        env.push(("PGPASSWORD", berth_config::percent_decode(password)));
    }
    for (key, value) in parsed.query_pairs() {
        if key == "sslmode" {
            env.push(("PGSSLMODE", value.into_owned()));
        }
    }
    Ok(env)
}

/// Runs a PostgreSQL client program, its output kept for the error message.
pub fn run_libpq_program(program: &str, args: &[&str], url: &str) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .envs(libpq_environment(url)?)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

async fn save_postgres(
    config: &Config,
    snapshot: &mut PostgresSnapshot,
    saving: &Path,
    options: &Options,
) -> Result<SavedDatabase, String> {
    let use_pg_dump = match options.postgres_format {
        PostgresFormat::PgDump => true,
        PostgresFormat::Logical => false,
        PostgresFormat::Auto => pg_dump_installed(),
    };
    if use_pg_dump {
        let file = saving.join("berth.pgdump");
        let file_arg = file.to_string_lossy().to_string();
        let snapshot_id = snapshot.id.clone();
        let url = config.database_url();
        // pg_dump reads the snapshot this transaction exported; it stays open meanwhile.
        let dumped = tokio::task::spawn_blocking(move || {
            run_libpq_program(
                "pg_dump",
                &[
                    "--format=custom",
                    "--no-owner",
                    "--snapshot",
                    &snapshot_id,
                    "--file",
                    &file_arg,
                ],
                &url,
            )
        })
        .await
        .map_err(|e| e.to_string())?;
        match dumped {
            Ok(()) => {
                return Ok(SavedDatabase::PgDump {
                    file: "berth.pgdump".into(),
                });
            }
            // An older pg_dump than the server refuses; the logical export always works.
            Err(e) if options.postgres_format == PostgresFormat::Auto => {
                eprintln!("berth backup: {e}; saving a logical export instead");
            }
            Err(e) => return Err(e),
        }
    }
    let dir = saving.join("logical");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let version = snapshot
        .schema_version()
        .await
        .map_err(|e| format!("reading the schema version: {e}"))?;
    let tables = snapshot
        .export_tables(&dir)
        .await
        .map_err(|e| format!("exporting the database: {e}"))?;
    Ok(SavedDatabase::Logical { tables, version })
}

/// Copies into `dest/blobs/` each listed blob it does not hold yet, verifying each against
/// its digest on the way.
async fn copy_blobs(
    store: &Arc<dyn BlobStore>,
    dest: &Path,
    summary: &mut Summary,
    quiet: bool,
) -> Result<(), String> {
    let blobs = read_blob_list(dest)?;
    let mut progress = Progress::new("backup blobs", summary.blobs, summary.bytes, quiet);
    for blob in blobs {
        let path = blob_copy_path(dest, &blob.digest);
        let size = blob.size;
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == blob.size) {
            summary.already_there += 1;
        } else {
            match copy_blob(store.as_ref(), &blob, &path).await {
                Ok(()) => {
                    summary.copied += 1;
                    summary.copied_bytes += blob.size;
                }
                Err(why) => summary.not_copied.push((blob.digest.to_string(), why)),
            }
        }
        progress.advance(size);
    }
    Ok(())
}

async fn copy_blob(store: &dyn BlobStore, blob: &BackupBlob, path: &Path) -> Result<(), String> {
    let stored = StoredBlob {
        digest: blob.digest.clone(),
        size: blob.size,
        cid: blob.cid.clone(),
    };
    let mut content = store
        .stream_blob(&stored, None)
        .await
        .map_err(|e| e.to_string())?;
    let dir = path.parent().expect("copies have a directory");
    tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
    let partial = path.with_extension("partial");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(io(&partial))?;
    let mut hasher = DigestHasher::new(blob.digest.algorithm());
    let mut written = 0u64;
    while let Some(chunk) = content.try_next().await.map_err(|e| e.to_string())? {
        hasher.update(&chunk);
        written += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(io(&partial))?;
    }
    file.sync_all().await.map_err(io(&partial))?;
    drop(file);
    let actual = hasher.finish();
    if actual != blob.digest || written != blob.size {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(format!(
            "the store holds {written} bytes hashing to {actual}, not the recorded {} bytes",
            blob.size
        ));
    }
    tokio::fs::rename(&partial, path).await.map_err(io(path))
}

impl Summary {
    pub fn print(&self, dest: &Path) {
        for (digest, why) in &self.not_copied {
            println!("not copied   {digest}: {why}");
        }
        println!(
            "backed up the database and a list of {} blobs ({}) to {}; copied {} blobs ({}), {} were already there; {} could not be copied; in {:.1}s",
            self.blobs,
            human_bytes(self.bytes),
            dest.display(),
            self.copied,
            human_bytes(self.copied_bytes),
            self.already_there,
            self.not_copied.len(),
            self.seconds
        );
    }
}
