//! Opening the metadata database and the blob store the configuration names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_auth::password::Htpasswd;
use berth_auth::registry_token::{RegistryTokens, SigningKey};
use berth_auth::{AccessService, Mode, TokenService};
use berth_config::{AuthConfig, Config};
use berth_meta::postgres::PoolSettings;
use berth_meta::{
    IdentityStore, Leases, MetaError, MetadataStore, PostgresStore, SqliteStore, WebhookStore,
};
use berth_storage::{BlobStore, FilesystemStore, S3Settings, S3Store};

/// How long startup keeps retrying a database that is not answering yet (it may be starting
/// alongside berth, as in docker compose).
const DATABASE_STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// The database, seen as each of the stores it holds.
pub struct Database {
    pub meta: Arc<dyn MetadataStore>,
    pub identity: Arc<dyn IdentityStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub leases: Arc<dyn Leases>,
}

impl Database {
    fn of<S: MetadataStore + IdentityStore + WebhookStore + Leases>(store: S) -> Database {
        let store = Arc::new(store);
        Database {
            meta: store.clone(),
            identity: store.clone(),
            webhooks: store.clone(),
            leases: store,
        }
    }
}

/// Opens the database and applies pending migrations. PostgreSQL migrations run under a
/// database lock, so instances starting together apply them once.
pub async fn open_database(config: &Config) -> Result<Database, String> {
    let url = config.database_url();
    let shown = config.redacted_database_url();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open_url(&url)
            .await
            .map_err(|e| format!("opening the database {shown}: {e}"))?;
        return Ok(Database::of(store));
    }
    let settings = PoolSettings {
        max_connections: config.database.maxconnections,
        acquire_timeout: config.database.connecttimeout,
    };
    let started = Instant::now();
    loop {
        match PostgresStore::connect(&url, &settings).await {
            Ok(store) => return Ok(Database::of(store)),
            Err(MetaError::Unavailable(e)) if started.elapsed() < DATABASE_STARTUP_PATIENCE => {
                tracing::warn!(database = %shown, error = %e, "the database is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(format!("opening the database {shown}: {e}")),
        }
    }
}

/// The access service the configuration asks for: no authentication, an htpasswd file, or
/// berth's identity store and token service (its signing key from files, or generated once
/// and kept in the database so that every instance signs with the same key).
pub async fn open_access(
    config: &Config,
    identity: Arc<dyn IdentityStore>,
) -> Result<Arc<AccessService>, String> {
    let mode = match &config.auth {
        AuthConfig::None => Mode::None,
        AuthConfig::Htpasswd(htpasswd) => {
            let text = std::fs::read_to_string(&htpasswd.path).map_err(|e| {
                format!("reading the htpasswd file {}: {e}", htpasswd.path.display())
            })?;
            let file =
                Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", htpasswd.path.display()))?;
            Mode::Htpasswd {
                realm: htpasswd.realm.clone(),
                file,
            }
        }
        AuthConfig::Berth(berth) => {
            let key = match (&berth.key, &berth.certificate) {
                (Some(key), Some(certificate)) => {
                    let read = |path: &std::path::Path| {
                        std::fs::read_to_string(path)
                            .map_err(|e| format!("reading {}: {e}", path.display()))
                    };
                    SigningKey::from_pem(&read(key)?, &read(certificate)?)
                        .map_err(|e| format!("auth.berth.key: {e}"))?
                }
                _ => {
                    let generated = SigningKey::generate().map_err(|e| e.to_string())?;
                    let (key, certificate) = identity
                        .signing_key_or_insert(generated.key_pem(), generated.certificate_pem())
                        .await
                        .map_err(|e| format!("storing the token signing key: {e}"))?;
                    SigningKey::from_pem(&key, &certificate)
                        .map_err(|e| format!("the stored token signing key: {e}"))?
                }
            };
            Mode::Berth(Box::new(TokenService {
                tokens: RegistryTokens::new(key, &berth.issuer, &berth.service, berth.tokenexpiry),
                realm: berth.realm.as_ref().map(|r| r.as_str().to_string()),
                refresh_lifetime: berth.refreshtokenexpiry,
            }))
        }
    };
    Ok(Arc::new(AccessService::new(mode, identity)))
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
/// The storage backend's kind, for metrics labels.
pub fn storage_kind(config: &Config) -> &'static str {
    if config.storage.s3.is_some() {
        "s3"
    } else {
        "filesystem"
    }
}

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
