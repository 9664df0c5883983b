//! Opening the metadata database and the blob store the configuration names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_config::Config;
use berth_meta::postgres::PoolSettings;
use berth_meta::{MetaError, MetadataStore, PostgresStore, SqliteStore};
use berth_storage::{BlobStore, FilesystemStore, S3Settings, S3Store};

/// How long startup keeps retrying a database that is not answering yet (it may be starting
/// alongside berth, as in docker compose).
const DATABASE_STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Opens the metadata database and applies pending migrations. PostgreSQL migrations run
/// under a database lock, so instances starting together apply them once.
pub async fn open_metadata(config: &Config) -> Result<Arc<dyn MetadataStore>, String> {
    let url = config.database_url();
    let shown = config.redacted_database_url();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open_url(&url)
            .await
            .map_err(|e| format!("opening the database {shown}: {e}"))?;
        return Ok(Arc::new(store));
    }
    let settings = PoolSettings {
        max_connections: config.database.maxconnections,
        acquire_timeout: config.database.connecttimeout,
    };
    let started = Instant::now();
    loop {
        match PostgresStore::connect(&url, &settings).await {
            Ok(store) => return Ok(Arc::new(store)),
            Err(MetaError::Unavailable(e)) if started.elapsed() < DATABASE_STARTUP_PATIENCE => {
                tracing::warn!(database = %shown, error = %e, "the database is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(format!("opening the database {shown}: {e}")),
        }
    }
}

/// Opens the blob store: S3 when `storage.s3` is configured, else the filesystem.
pub fn open_blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, String> {
    match &config.storage.s3 {
        Some(s3) => {
            let redirect = &config.storage.redirect;
            let settings = S3Settings {
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                endpoint: s3.endpoint(),
                access_key: s3.accesskey.clone(),
                secret_key: s3.secretkey.clone(),
                session_token: s3.sessiontoken.clone(),
                root: s3.rootdirectory.clone(),
                path_style: s3.forcepathstyle,
                part_size: s3.chunksize,
                redirect: (!redirect.disable).then_some(redirect.expiry),
            };
            let store =
                S3Store::new(&settings).map_err(|e| format!("configuring S3 storage: {e}"))?;
            Ok(Arc::new(store))
        }
        None => {
            let root = &config.storage.filesystem.rootdirectory;
            let store = FilesystemStore::open(root)
                .map_err(|e| format!("opening storage at {}: {e}", root.display()))?;
            Ok(Arc::new(store))
        }
    }
}

/// Where blobs live, for the startup log.
pub fn describe_storage(config: &Config) -> String {
    match &config.storage.s3 {
        Some(s3) => format!(
            "s3://{}/{}{}",
            s3.bucket,
            s3.rootdirectory,
            s3.endpoint()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        ),
        None => config
            .storage
            .filesystem
            .rootdirectory
            .display()
            .to_string(),
    }
}
