//! Opening the metadata database and the blob store the configuration names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_auth::passkey::RelyingParty;
use berth_auth::password::Htpasswd;
use berth_auth::registry_token::{RegistryTokens, SigningKey};
use berth_auth::service::{MfaRequirement, SecondFactorPolicy};
use berth_auth::{AccessService, Mode, TokenService};
use berth_config::{AuthConfig, BerthAuth, Config, PasskeysMode, RequireMfa};
use berth_meta::postgres::PoolSettings;
use berth_meta::{
    BlobInventory, IdentityStore, Leases, MetaError, MetadataStore, PostgresStore, SqliteStore,
    WebhookStore,
};
use berth_storage::{BlobStore, FilesystemStore, ObjectBlobStore, S3Encryption, S3Settings};

/// How long startup keeps retrying a database that is not answering yet (it may be starting
/// alongside berth, as in docker compose).
const DATABASE_STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// The database, seen as each of the stores it holds.
pub struct Database {
    pub meta: Arc<dyn MetadataStore>,
    pub identity: Arc<dyn IdentityStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub leases: Arc<dyn Leases>,
    pub inventory: Arc<dyn BlobInventory>,
    /// The engine itself, for what only it can do (snapshots for backups).
    pub engine: Engine,
}

pub enum Engine {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Engine {
    /// The engine's name in OpenTelemetry's `db.system` terms.
    pub fn system(&self) -> &'static str {
        match self {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgresql",
        }
    }
}

impl Database {
    fn sqlite(store: SqliteStore) -> Database {
        let store = Arc::new(store);
        Database::of(store.clone(), Engine::Sqlite(store))
    }

    fn postgres(store: PostgresStore) -> Database {
        let store = Arc::new(store);
        Database::of(store.clone(), Engine::Postgres(store))
    }

    fn of<S>(store: Arc<S>, engine: Engine) -> Database
    where
        S: MetadataStore + IdentityStore + WebhookStore + Leases + BlobInventory,
    {
        Database {
            meta: store.clone(),
            identity: store.clone(),
            webhooks: store.clone(),
            leases: store.clone(),
            inventory: store,
            engine,
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
        return Ok(Database::sqlite(store));
    }
    let settings = PoolSettings {
        max_connections: config.database.maxconnections,
        acquire_timeout: config.database.connecttimeout,
    };
    let started = Instant::now();
    loop {
        match PostgresStore::connect(&url, &settings).await {
            Ok(store) => return Ok(Database::postgres(store)),
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
    let mut access = AccessService::new(mode, identity);
    if let AuthConfig::Berth(berth) = &config.auth {
        access = access.with_second_factor_policy(SecondFactorPolicy {
            required: match berth.requiremfa {
                RequireMfa::None => MfaRequirement::None,
                RequireMfa::Admins => MfaRequirement::Admins,
                RequireMfa::All => MfaRequirement::All,
            },
            issuer: berth.service.clone(),
        });
        if let Some(relying_party) = relying_party(config, berth)? {
            access = access.with_passkeys(relying_party);
        }
        if let Some(ldap) = &berth.ldap {
            access = access.with_directory(crate::sign_in_sources::ldap_directory(ldap)?);
        }
        access = access.with_oidc_providers(crate::sign_in_sources::oidc_providers(&berth.oidc)?);
    }
    Ok(Arc::new(access))
}

/// The WebAuthn relying party berth is at its public URL (`http.host`), when passkeys are on
/// (`auth.berth.passkeys`): `on` refuses to start when the URL cannot name one, `auto` turns
/// passkeys off then.
fn relying_party(config: &Config, berth: &BerthAuth) -> Result<Option<RelyingParty>, String> {
    if berth.passkeys == PasskeysMode::Off {
        return Ok(None);
    }
    let derived = match &config.http.host {
        Some(url) => RelyingParty::new(url.as_str(), &berth.service),
        None => Err("http.host is not set".to_string()),
    };
    match derived {
        Ok(relying_party) => {
            tracing::info!(
                rp_id = relying_party.id(),
                origin = relying_party.origin(),
                "passkeys are on"
            );
            Ok(Some(relying_party))
        }
        Err(why) if berth.passkeys == PasskeysMode::On => Err(format!(
            "auth.berth.passkeys is on, but the WebAuthn relying party cannot be derived from http.host: {why}; set http.host to the registry's public URL (https://<name>, or http://localhost:<port>), or set auth.berth.passkeys to off"
        )),
        Err(why) => {
            tracing::info!(reason = %why, "passkeys are off (auth.berth.passkeys: auto)");
            Ok(None)
        }
    }
}

/// Opens the blob store the configuration names: S3, Google Cloud Storage, Azure or IPFS
/// when configured, else the filesystem. Client reads redirect as `storage.redirect` (or
/// `storage.ipfs.gateway`) asks; berth's own reads of the bytes use
/// [`BlobStore::stream_blob`], which never redirects.
pub fn open_blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, String> {
    let storage = &config.storage;
    let redirect = (!storage.redirect.disable).then_some(storage.redirect.expiry);
    if let Some(s3) = &storage.s3 {
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
            encryption: s3.encrypt.then(|| match &s3.keyid {
                Some(key) => S3Encryption::Kms(Some(key.clone())),
                None => S3Encryption::S3Managed,
            }),
            redirect,
        };
        let store = ObjectBlobStore::s3(&settings).map_err(|e| configuring("S3 storage", e))?;
        return Ok(Arc::new(store));
    }
    if let Some(gcs) = &storage.gcs {
        let settings = berth_storage::GcsSettings {
            bucket: gcs.bucket.clone(),
            keyfile: gcs.keyfile.clone(),
            // Google's client libraries all read application default credentials from here.
            application_credentials: std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
                .filter(|path| !path.is_empty())
                .map(std::path::PathBuf::from),
            endpoint: gcs.endpoint.clone(),
            root: gcs.rootdirectory.clone(),
            part_size: gcs.chunksize,
            redirect,
        };
        let store =
            ObjectBlobStore::gcs(&settings).map_err(|e| configuring("Google Cloud Storage", e))?;
        return Ok(Arc::new(store));
    }
    if let Some(azure) = &storage.azure {
        let settings = berth_storage::AzureSettings {
            account_name: azure.accountname.clone(),
            account_key: azure.accountkey.clone(),
            container: azure.container.clone(),
            endpoint: azure.service_url(),
            root: azure.rootdirectory.clone(),
            part_size: azure.chunksize,
            redirect,
        };
        let store =
            ObjectBlobStore::azure(&settings).map_err(|e| configuring("Azure Blob Storage", e))?;
        return Ok(Arc::new(store));
    }
    if let Some(ipfs) = &storage.ipfs {
        let credentials = match (&ipfs.bearertoken, ipfs.basic_credentials()) {
            (Some(token), _) => Some(berth_storage::IpfsCredentials::Bearer(token.clone())),
            (None, Some((user, password))) => {
                Some(berth_storage::IpfsCredentials::Basic { user, password })
            }
            (None, None) => None,
        };
        let settings = berth_storage::IpfsSettings {
            api: ipfs.api_url(),
            credentials,
            pin: ipfs.pin,
            gateway: ipfs.gateway_url(),
            timeout: ipfs.timeout,
            root: ipfs.rootdirectory.clone(),
        };
        let store =
            berth_storage::IpfsStore::new(&settings).map_err(|e| configuring("IPFS storage", e))?;
        return Ok(Arc::new(store));
    }
    let root = &storage.filesystem.rootdirectory;
    let store = FilesystemStore::open(root)
        .map_err(|e| format!("opening storage at {}: {e}", root.display()))?;
    Ok(Arc::new(store))
}

/// A store's refusal of its settings, named once (the stores say what failed, not what they
/// were configuring; "storage unavailable" would mislead at start-up).
fn configuring(store: &str, error: berth_storage::StorageError) -> String {
    match error {
        berth_storage::StorageError::Unavailable(message) => {
            format!("configuring {store}: {message}")
        }
        other => format!("configuring {store}: {other}"),
    }
}

/// The storage backend's kind, for metrics labels.
pub fn storage_kind(config: &Config) -> &'static str {
    let storage = &config.storage;
    storage
        .remote_stores()
        .first()
        .copied()
        .unwrap_or("filesystem")
}

/// Where blobs live, for logs and backups.
pub fn describe_storage(config: &Config) -> String {
    let storage = &config.storage;
    if let Some(s3) = &storage.s3 {
        return format!(
            "s3://{}/{}{}",
            s3.bucket,
            s3.rootdirectory,
            s3.endpoint()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(gcs) = &storage.gcs {
        return format!("gs://{}/{}", gcs.bucket, gcs.rootdirectory);
    }
    if let Some(azure) = &storage.azure {
        return format!(
            "azure container {} at {}/{}",
            azure.container,
            azure.service_url(),
            azure.rootdirectory
        );
    }
    if let Some(ipfs) = &storage.ipfs {
        return format!("ipfs node {}", ipfs.api_url());
    }
    storage.filesystem.rootdirectory.display().to_string()
}
