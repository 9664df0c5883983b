//! The configuration model: berth's settings, their defaults, and the rules that a value of
//! the right type can still break.
//!
//! Field names are registry:2's YAML keys (all lower case, no separators) so that serde maps
//! them directly and a registry:2 `config.yml` reads the same way here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::stores::{AzureConfig, GcsConfig, IpfsConfig, ScrubConfig};
use crate::values::{self, ListenAddr, PublicUrl};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub log: LogConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
    /// How clients authenticate; berth's own token service unless told otherwise.
    pub auth: AuthConfig,
}

impl Config {
    /// The metadata database to open: the configured URL, else a SQLite file beside the data
    /// so that one directory holds everything the registry stores.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.storage
                    .filesystem
                    .rootdirectory
                    .join("berth.db")
                    .display()
            ),
        }
    }

    /// [`Config::database_url`] with any password replaced by `***`
    /// (`postgres://user:***@host:5432/db`): safe to log.
    pub fn redacted_database_url(&self) -> String {
        values::redact_url(&self.database_url())
    }

    /// Settings that are valid but have no effect, as `(key path, message)` pairs.
    pub(crate) fn warnings(&self) -> Vec<(String, String)> {
        let mut warnings = Vec::new();
        if self.auth == AuthConfig::None {
            warnings.push((
                "auth".to_owned(),
                "none: anyone who can reach berth can push, pull and delete".to_owned(),
            ));
        }
        let storage = &self.storage;
        if !storage.redirect.disable
            && storage.s3.is_none()
            && storage.gcs.is_none()
            && storage.azure.is_none()
        {
            warnings.push((
                "storage.redirect.disable".to_owned(),
                "false has no effect without storage.s3, gcs or azure: berth serves these blobs itself (IPFS redirects with storage.ipfs.gateway)"
                    .to_owned(),
            ));
        }
        warnings
    }

    /// Rules beyond what the types enforce, as `(key path, message)` pairs.
    pub(crate) fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| problems.push((path.to_owned(), message));

        if let Some(tls) = &self.http.tls {
            // File existence is checked when the server starts: the files may be mounted
            // after the configuration is checked.
            if tls.certificate.as_os_str().is_empty() {
                problem(
                    "http.tls.certificate",
                    "required when http.tls is set".into(),
                );
            }
            if tls.key.as_os_str().is_empty() {
                problem("http.tls.key", "required when http.tls is set".into());
            }
        }

        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, values) in &self.http.headers {
            let path = format!("http.headers.{name}");
            if let Err(why) = check_header(name, values) {
                problem(&path, why);
            } else if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
                problem(
                    &path,
                    format!("duplicate of header {first}; header names ignore case"),
                );
            }
        }

        let purging = &self.storage.maintenance.uploadpurging;
        let purging_path = "storage.maintenance.uploadpurging";
        if purging.age.is_zero() {
            problem(
                &format!("{purging_path}.age"),
                "must be greater than 0 (it is how old an abandoned upload must be to be purged)"
                    .into(),
            );
        }
        if purging.enabled && purging.interval.is_zero() {
            problem(
                &format!("{purging_path}.interval"),
                "must be greater than 0 when upload purging is enabled".into(),
            );
        }

        if self.storage.filesystem.rootdirectory.as_os_str().is_empty() {
            problem(
                "storage.filesystem.rootdirectory",
                "must not be empty".into(),
            );
        }

        if let Some(s3) = &self.storage.s3 {
            s3.validate(&mut problem);
        }
        if let Some(gcs) = &self.storage.gcs {
            gcs.validate(&mut problem);
        }
        if let Some(azure) = &self.storage.azure {
            azure.validate(&mut problem);
        }
        if let Some(ipfs) = &self.storage.ipfs {
            ipfs.validate(&mut problem);
        }
        let stores = self.storage.remote_stores();
        if stores.len() > 1 {
            problem(
                &format!("storage.{}", stores[1]),
                format!(
                    "only one blob store can be configured, and storage.{} is too",
                    stores[0]
                ),
            );
        }
        self.storage.scrub.validate(&mut problem);
        let expiry = self.storage.redirect.expiry;
        if expiry.is_zero() {
            problem(
                "storage.redirect.expiry",
                "must be greater than 0 (it is how long a presigned URL stays valid)".into(),
            );
        } else if expiry > MAX_PRESIGNED_EXPIRY {
            problem(
                "storage.redirect.expiry",
                format!(
                    "{} is too long: presigned URLs are valid for at most 168h (7 days)",
                    values::format_duration(expiry)
                ),
            );
        }

        let database = &self.database;
        if let Some(url) = &database.url
            && let Err(why) = check_database_url(url)
        {
            problem("database.url", why);
        }
        if database.maxconnections == 0 {
            problem(
                "database.maxconnections",
                "must be at least 1 (it is the PostgreSQL connection pool's size)".into(),
            );
        }
        if database.connecttimeout.is_zero() {
            problem(
                "database.connecttimeout",
                "must be greater than 0 (it is how long a request waits for a database connection)"
                    .into(),
            );
        }

        match &self.auth {
            AuthConfig::None => {}
            AuthConfig::Htpasswd(htpasswd) => htpasswd.validate(&mut problem),
            AuthConfig::Berth(berth) => berth.validate(&mut problem),
        }

        problems
    }
}

/// Response headers the server itself must control: a fixed value would corrupt framing.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn check_header(name: &str, values: &[String]) -> Result<(), String> {
    // Checked with the http crate so that whatever passes here converts without error
    // when the server builds its responses.
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(format!(
            "{name} is set by the server and cannot be configured"
        ));
    }
    if values.is_empty() {
        return Err("needs at least one value".into());
    }
    for value in values {
        http::HeaderValue::from_str(value).map_err(|_| {
            format!(
                "invalid header value {value:?}: only visible ASCII, spaces and tabs are allowed"
            )
        })?;
    }
    Ok(())
}

/// A URL berth can open. Messages show it redacted: it may hold a password.
fn check_database_url(url: &str) -> Result<(), String> {
    let shown = values::redact_url(url);
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(()),
        Some("postgres" | "postgresql") => {
            let invalid = |why: &str| {
                format!(
                    "invalid PostgreSQL URL {shown:?}: {why}; expected e.g. \"postgres://berth:PASSWORD@db.example.com:5432/berth\""
                )
            };
            // Parsed as the driver will parse it; url's own messages quote nothing.
            let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
            if parsed.cannot_be_a_base() {
                return Err(invalid("missing \"//\" after the scheme"));
            }
            if parsed.fragment().is_some() {
                return Err(invalid("must not have a fragment (#)"));
            }
            Ok(())
        }
        _ => Err(format!(
            "invalid database URL {shown:?}: expected a sqlite: or postgres:// URL, e.g. \"sqlite:///var/lib/berth/berth.db\" or \"postgres://berth:PASSWORD@db.example.com:5432/berth\""
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: LogLevel,
    pub formatter: LogFormat,
    pub accesslog: AccessLogConfig,
    /// Static fields added to every log line (registry:2's `log.fields`).
    #[serde(deserialize_with = "values::string_map")]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    /// Case-insensitive, and "warning" is accepted, as registry:2 (logrus) does.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "invalid log level {s:?}: expected error, warn, info, debug or trace"
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        values::parsed(d, "a log level")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            "logstash" => Err("the logstash formatter is not supported; use json".into()),
            _ => Err(format!(
                "invalid log formatter {s:?}: expected text or json"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        values::parsed(d, "a log formatter")
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogConfig {
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: ListenAddr,
    pub host: Option<PublicUrl>,
    pub relativeurls: bool,
    pub tls: Option<TlsConfig>,
    /// How long a graceful shutdown waits for requests in flight.
    #[serde(deserialize_with = "values::duration")]
    pub draintimeout: Duration,
    /// Peers whose X-Forwarded-Proto and X-Forwarded-Host are believed (berth's own key).
    #[serde(deserialize_with = "values::trusted_proxies")]
    pub trustedproxies: Vec<IpNet>,
    /// Extra headers on every response, as registry:2's `http.headers`.
    #[serde(deserialize_with = "values::headers")]
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: ListenAddr::default(),
            host: None,
            relativeurls: false,
            tls: None,
            draintimeout: Duration::from_secs(30),
            trustedproxies: Vec::new(),
            headers: BTreeMap::new(),
        }
    }
}

/// Serve HTTPS. Both paths are required; an empty path means "not given" and is rejected
/// by validation, which names the missing key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub certificate: PathBuf,
    #[serde(default)]
    pub key: PathBuf,
    #[serde(default)]
    pub minimumtls: Option<TlsVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        }
    }
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tls1.2" => Ok(TlsVersion::Tls12),
            "tls1.3" => Ok(TlsVersion::Tls13),
            "tls1.0" | "tls1.1" => Err(format!(
                "{s} is not supported: berth accepts TLS 1.2 and 1.3 only; use tls1.2 or tls1.3"
            )),
            _ => Err(format!(
                "invalid TLS version {s:?}: expected tls1.2 or tls1.3"
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        values::parsed(d, "a TLS version")
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub filesystem: FilesystemConfig,
    pub delete: DeleteConfig,
    pub maintenance: MaintenanceConfig,
    /// registry:2's `storage.s3`: blobs in an S3-compatible bucket; `None` when absent,
    /// which keeps them under `filesystem.rootdirectory`.
    pub s3: Option<S3Config>,
    /// registry:2's `storage.gcs`: blobs in Google Cloud Storage.
    pub gcs: Option<GcsConfig>,
    /// registry:2's `storage.azure`: blobs in Azure Blob Storage.
    pub azure: Option<AzureConfig>,
    /// berth's `storage.ipfs`: blobs in IPFS through a node's RPC API.
    pub ipfs: Option<IpfsConfig>,
    /// registry:2's `storage.redirect`.
    pub redirect: RedirectConfig,
    /// berth's `storage.scrub`: background verification of stored blobs.
    pub scrub: ScrubConfig,
}

impl StorageConfig {
    /// The names of the blob stores configured besides the filesystem.
    fn remote_stores(&self) -> Vec<&'static str> {
        [
            ("s3", self.s3.is_some()),
            ("gcs", self.gcs.is_some()),
            ("azure", self.azure.is_some()),
            ("ipfs", self.ipfs.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// Blob storage in an S3-compatible bucket (registry:2's `storage.s3`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Required; validation rejects an empty name.
    pub bucket: String,
    pub region: String,
    /// A custom endpoint, as registry:2 writes it: `http://127.0.0.1:3900`, or
    /// `minio.example.com:9000` with the scheme chosen by `secure`. See [`S3Config::endpoint`].
    /// An empty value means unset, as in registry:2.
    #[serde(deserialize_with = "values::non_empty")]
    pub regionendpoint: Option<String>,
    /// Both `accesskey` and `secretkey`, or neither (then AWS's usual credential sources:
    /// environment, shared files, instance profile). An empty value means unset.
    #[serde(deserialize_with = "values::non_empty")]
    pub accesskey: Option<String>,
    /// A secret: not shown by `explain`, `Debug` or any error message.
    #[serde(deserialize_with = "values::non_empty")]
    pub secretkey: Option<String>,
    /// A temporary (STS) session token for the keys (berth's own key); a secret too.
    #[serde(deserialize_with = "values::non_empty")]
    pub sessiontoken: Option<String>,
    /// The prefix inside the bucket, without leading or trailing '/'; empty for none.
    #[serde(deserialize_with = "values::object_prefix")]
    pub rootdirectory: String,
    pub forcepathstyle: bool,
    /// Whether a `regionendpoint` without a scheme is reached over https.
    pub secure: bool,
    /// The multipart upload part size in bytes.
    #[serde(deserialize_with = "values::byte_count")]
    pub chunksize: u64,
    /// Server-side encryption: SSE-S3, or SSE-KMS with `keyid`.
    pub encrypt: bool,
    /// The KMS key of SSE-KMS; an empty value means unset.
    #[serde(deserialize_with = "values::non_empty")]
    pub keyid: Option<String>,
}

/// S3's smallest part (every part but the last must be at least this big).
const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
const MAX_CHUNK_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The longest validity SigV4 allows a presigned URL.
const MAX_PRESIGNED_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

impl S3Config {
    /// The endpoint as a URL: `regionendpoint` with its scheme (in lower case), or with
    /// `https://` (when `secure`) or `http://` prepended when it has none; `None` when there
    /// is no `regionendpoint` (AWS's endpoint for the region).
    pub fn endpoint(&self) -> Option<String> {
        let endpoint = self.regionendpoint.as_deref()?;
        Some(match endpoint.split_once("://") {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None if self.secure => format!("https://{endpoint}"),
            None => format!("http://{endpoint}"),
        })
    }

    fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        let path = |key: &str| format!("storage.s3.{key}");
        if self.bucket.is_empty() {
            problem(
                &path("bucket"),
                "required when storage.s3 is set: the name of the bucket to store blobs in".into(),
            );
        } else if self.bucket.contains('/') {
            problem(
                &path("bucket"),
                format!(
                    "invalid bucket name {:?}: a bucket name has no '/'; put a prefix inside the bucket in storage.s3.rootdirectory",
                    self.bucket
                ),
            );
        } else if self
            .bucket
            .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            problem(
                &path("bucket"),
                format!(
                    "invalid bucket name {:?}: must not contain spaces",
                    self.bucket
                ),
            );
        }
        if self.region.is_empty() {
            problem(
                &path("region"),
                "must not be empty; S3-compatible stores that ignore regions accept us-east-1"
                    .into(),
            );
        }
        if let Some(endpoint) = self.endpoint()
            && let Err(why) = check_endpoint(&endpoint)
        {
            problem(&path("regionendpoint"), why);
        }
        match (&self.accesskey, &self.secretkey) {
            (Some(_), None) => problem(
                &path("secretkey"),
                "required when storage.s3.accesskey is set".into(),
            ),
            (None, Some(_)) => problem(
                &path("accesskey"),
                "required when storage.s3.secretkey is set".into(),
            ),
            _ => {}
        }
        if self.sessiontoken.is_some() && self.accesskey.is_none() && self.secretkey.is_none() {
            problem(
                &path("sessiontoken"),
                "a session token needs storage.s3.accesskey and storage.s3.secretkey".into(),
            );
        }
        if self.keyid.is_some() && !self.encrypt {
            problem(
                &path("keyid"),
                "a KMS key needs storage.s3.encrypt: true".into(),
            );
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunksize) {
            problem(
                &path("chunksize"),
                format!(
                    "{} is out of range: S3 parts are from {MIN_CHUNK_SIZE} (5 MiB) to {MAX_CHUNK_SIZE} (5 GiB) bytes",
                    self.chunksize
                ),
            );
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            region: "us-east-1".to_owned(),
            regionendpoint: None,
            accesskey: None,
            secretkey: None,
            sessiontoken: None,
            rootdirectory: String::new(),
            forcepathstyle: false,
            secure: true,
            chunksize: 10 * 1024 * 1024,
            encrypt: false,
            keyid: None,
        }
    }
}

/// Shows whether the secrets are set, never their values.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |value: &Option<String>| if value.is_some() { "(set)" } else { "(unset)" };
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("regionendpoint", &self.regionendpoint)
            .field("accesskey", &self.accesskey)
            .field("secretkey", &secret(&self.secretkey))
            .field("sessiontoken", &secret(&self.sessiontoken))
            .field("rootdirectory", &self.rootdirectory)
            .field("forcepathstyle", &self.forcepathstyle)
            .field("secure", &self.secure)
            .field("chunksize", &self.chunksize)
            .field("encrypt", &self.encrypt)
            .field("keyid", &self.keyid)
            .finish()
    }
}

/// An endpoint URL that object_store can use: http or https, a host, nothing else but a
/// port and a path.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let parsed = url::Url::parse(endpoint);
    if let Ok(url) = &parsed
        && (!url.username().is_empty() || url.password().is_some())
    {
        // Not quoted: the part before '@' may be a password.
        return Err(
            "must not contain a user name or password; set storage.s3.accesskey and storage.s3.secretkey"
                .into(),
        );
    }
    let shown = values::redact_url(endpoint);
    let invalid = |why: &str| {
        format!(
            "invalid endpoint {shown:?}: {why}; expected e.g. \"http://127.0.0.1:3900\" or \"minio.example.com:9000\""
        )
    };
    let url = parsed.map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(())
}

/// registry:2's `storage.redirect`: whether blob downloads are redirected to the object
/// store. Unlike registry:2, berth streams them itself unless told otherwise.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedirectConfig {
    /// registry:2's key, defaulting to true here: blob GETs stream through berth. false
    /// redirects clients to presigned URLs of `storage.s3` (no effect without it).
    pub disable: bool,
    /// How long a presigned URL stays valid (berth's own key; registry:2 fixes 20 minutes).
    #[serde(deserialize_with = "values::duration")]
    pub expiry: Duration,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            disable: true,
            expiry: Duration::from_secs(20 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesystemConfig {
    pub rootdirectory: PathBuf,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            rootdirectory: Path::new("./data").to_owned(),
        }
    }
}

/// Deleting is off by default, as in registry:2: a delete cannot be undone.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeleteConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    pub uploadpurging: UploadPurging,
    pub readonly: ReadOnly,
}

/// Removal of uploads that were started and then abandoned; registry:2's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadPurging {
    pub enabled: bool,
    #[serde(deserialize_with = "values::duration")]
    pub age: Duration,
    #[serde(deserialize_with = "values::duration")]
    pub interval: Duration,
    pub dryrun: bool,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dryrun: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadOnly {
    pub enabled: bool,
}

/// The metadata database (berth's own section).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A `sqlite:` or `postgres://` (`postgresql://`) URL; unset means a SQLite file in the
    /// storage root directory. It may hold a password: log
    /// [`Config::redacted_database_url`] instead.
    pub url: Option<String>,
    /// The PostgreSQL connection pool's size; ignored for SQLite.
    #[serde(deserialize_with = "values::count")]
    pub maxconnections: u32,
    /// How long a request waits for a database connection before it is answered 503.
    #[serde(deserialize_with = "values::duration")]
    pub connecttimeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            maxconnections: 16,
            connecttimeout: Duration::from_secs(5),
        }
    }
}

/// Shows the URL with its password redacted.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(values::redact_url))
            .field("maxconnections", &self.maxconnections)
            .field("connecttimeout", &self.connecttimeout)
            .finish()
    }
}

/// How clients authenticate (registry:2's `auth`, with berth's own `berth` mode).
///
/// Written as registry:2 writes it: a mapping whose only key names the mode and holds its
/// settings (`auth: {htpasswd: {realm: ..., path: ...}}`), or just the mode's name
/// (`auth: none`), which is what `REGISTRY_AUTH=htpasswd` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// No authentication at all. Must be asked for explicitly.
    None,
    /// registry:2's htpasswd mode: Basic auth against an htpasswd file (bcrypt entries);
    /// every authenticated user may do everything.
    Htpasswd(HtpasswdAuth),
    /// berth's own identity store and Docker token service. The default when `auth` is
    /// absent.
    Berth(BerthAuth),
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig::Berth(BerthAuth::default())
    }
}

impl AuthConfig {
    /// The mode's name as written in the file: none, htpasswd or berth.
    pub fn mode(&self) -> &'static str {
        match self {
            AuthConfig::None => "none",
            AuthConfig::Htpasswd(_) => "htpasswd",
            AuthConfig::Berth(_) => "berth",
        }
    }
}

const AUTH_MODES: &str = "none, htpasswd, berth";

/// `auth: {none: {}}`: the mode has no settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Modes;

        impl Modes {
            /// The mode named `name` (ignoring case, as a value) with its default settings.
            fn named<E: de::Error>(name: &str) -> Result<AuthConfig, E> {
                match name.to_ascii_lowercase().as_str() {
                    "none" => Ok(AuthConfig::None),
                    "htpasswd" => Ok(AuthConfig::Htpasswd(HtpasswdAuth::unset())),
                    "berth" => Ok(AuthConfig::Berth(BerthAuth::default())),
                    lower => Err(Modes::not_a_mode(lower)),
                }
            }

            fn not_a_mode<E: de::Error>(name: &str) -> E {
                match name {
                    "token" => E::custom(
                        "not supported yet: berth is its own token server: use auth.berth, or point registry:2 at berth's /token",
                    ),
                    "silly" => {
                        E::custom("not supported yet: a development-only mode; use auth: none")
                    }
                    _ => E::custom(format!(
                        "unknown mode {name:?}; expected one of {AUTH_MODES}"
                    )),
                }
            }
        }

        impl<'de> Visitor<'de> for Modes {
            type Value = AuthConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "an authentication mode ({AUTH_MODES}), or a mapping with one of them as its only key"
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthConfig, E> {
                Modes::named(v)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AuthConfig, A::Error> {
                let Some(mode) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "no mode given; expected exactly one of {AUTH_MODES}"
                    )));
                };
                // Modes are keys, and keys are compared exactly.
                let auth = match mode.as_str() {
                    "none" => {
                        map.next_value::<Option<NoSettings>>()?;
                        AuthConfig::None
                    }
                    "htpasswd" => AuthConfig::Htpasswd(
                        map.next_value::<Option<HtpasswdAuth>>()?
                            .unwrap_or_else(HtpasswdAuth::unset),
                    ),
                    "berth" => AuthConfig::Berth(
                        map.next_value::<Option<BerthAuth>>()?.unwrap_or_default(),
                    ),
                    other => return Err(Modes::not_a_mode(other)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "several modes given; expected exactly one of {AUTH_MODES}"
                    )));
                }
                Ok(auth)
            }
        }

        d.deserialize_any(Modes)
    }
}

/// registry:2's `auth.htpasswd`. Both settings are required; an empty value means "not
/// given" and is rejected by validation, which names the missing key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdAuth {
    /// The realm of the Basic challenge.
    #[serde(default)]
    pub realm: String,
    /// The htpasswd file; whether it exists is checked when the server starts, since it may
    /// be mounted after the configuration is checked.
    #[serde(default)]
    pub path: PathBuf,
}

impl HtpasswdAuth {
    fn unset() -> Self {
        HtpasswdAuth {
            realm: String::new(),
            path: PathBuf::new(),
        }
    }

    fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        if self.realm.is_empty() {
            problem(
                "auth.htpasswd.realm",
                "required with auth: htpasswd: the realm named in Basic authentication challenges"
                    .into(),
            );
        } else if let Err(why) = check_challenge_text(&self.realm) {
            problem(
                "auth.htpasswd.realm",
                format!("invalid realm {:?}: {why}", self.realm),
            );
        }
        if self.path.as_os_str().is_empty() {
            problem(
                "auth.htpasswd.path",
                "required with auth: htpasswd: the htpasswd file of users and password hashes"
                    .into(),
            );
        }
    }
}

/// berth's own identity store and Docker token service (`auth.berth`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BerthAuth {
    /// The token audience, and `service` in challenges.
    pub service: String,
    /// The `iss` of issued tokens.
    pub issuer: String,
    /// The token endpoint URL advertised in `WWW-Authenticate`; `None` means
    /// "<the request's public base URL>/token".
    pub realm: Option<PublicUrl>,
    /// The lifetime of issued registry tokens.
    #[serde(deserialize_with = "values::duration")]
    pub tokenexpiry: Duration,
    /// The lifetime of refresh tokens (docker login's identity tokens).
    #[serde(deserialize_with = "values::duration")]
    pub refreshtokenexpiry: Duration,
    /// The PEM private key (EC P-256 or RSA) that signs tokens, with `certificate`; `None`
    /// means berth generates one and keeps it in its database. An empty value means unset.
    #[serde(deserialize_with = "values::non_empty_path")]
    pub key: Option<PathBuf>,
    /// The PEM certificate of `key`, published for registry:2's `rootcertbundle`. Both or
    /// neither. An empty value means unset.
    #[serde(deserialize_with = "values::non_empty_path")]
    pub certificate: Option<PathBuf>,
    /// How long audit events are kept before berth deletes them; zero keeps them forever.
    #[serde(deserialize_with = "values::duration")]
    pub auditretention: Duration,
}

const MIN_TOKEN_EXPIRY: Duration = Duration::from_secs(30);
const MAX_TOKEN_EXPIRY: Duration = Duration::from_secs(24 * 3600);
const MIN_REFRESH_TOKEN_EXPIRY: Duration = Duration::from_secs(3600);
const MAX_REFRESH_TOKEN_EXPIRY: Duration = Duration::from_secs(8760 * 3600);

impl Default for BerthAuth {
    fn default() -> Self {
        BerthAuth {
            service: "berth".to_owned(),
            issuer: "berth".to_owned(),
            realm: None,
            tokenexpiry: Duration::from_secs(5 * 60),
            refreshtokenexpiry: Duration::from_secs(720 * 3600),
            key: None,
            certificate: None,
            auditretention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl BerthAuth {
    fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        let path = |key: &str| format!("auth.berth.{key}");
        for (key, value) in [("service", &self.service), ("issuer", &self.issuer)] {
            if value.is_empty() {
                problem(&path(key), "must not be empty".into());
            } else if let Err(why) = check_challenge_text(value) {
                problem(&path(key), format!("invalid {key} {value:?}: {why}"));
            }
        }
        let bounds = [
            (
                "tokenexpiry",
                self.tokenexpiry,
                MIN_TOKEN_EXPIRY,
                MAX_TOKEN_EXPIRY,
                "registry tokens",
            ),
            (
                "refreshtokenexpiry",
                self.refreshtokenexpiry,
                MIN_REFRESH_TOKEN_EXPIRY,
                MAX_REFRESH_TOKEN_EXPIRY,
                "refresh tokens",
            ),
        ];
        for (key, value, min, max, what) in bounds {
            if !(min..=max).contains(&value) {
                problem(
                    &path(key),
                    format!(
                        "{} is out of range: {what} live from {} to {}",
                        values::format_duration(value),
                        values::format_duration(min),
                        values::format_duration(max)
                    ),
                );
            }
        }
        match (&self.key, &self.certificate) {
            (Some(_), None) => problem(
                &path("certificate"),
                "required when auth.berth.key is set: the PEM certificate of the signing key"
                    .into(),
            ),
            (None, Some(_)) => problem(
                &path("key"),
                "required when auth.berth.certificate is set: the PEM private key of the certificate"
                    .into(),
            ),
            _ => {}
        }
    }
}

/// Text that is quoted in a `WWW-Authenticate` challenge (`realm="..."`, `service="..."`):
/// printable ASCII, so that it is a valid header value, without the quote that would end
/// it or the backslash that would escape the next character.
fn check_challenge_text(value: &str) -> Result<(), String> {
    if value.contains(|c: char| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    if value.contains(['"', '\\']) {
        return Err(
            "must not contain '\"' or '\\' (it is quoted in authentication challenges)".into(),
        );
    }
    if !value.is_ascii() {
        return Err("must be ASCII (it is sent in authentication challenges)".into());
    }
    Ok(())
}
