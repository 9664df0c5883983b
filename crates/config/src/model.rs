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
use serde::{Deserialize, Deserializer};

use crate::values::{self, ListenAddr, PublicUrl};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub log: LogConfig,
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
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

        if let Some(url) = &self.database.url
            && let Err(why) = check_database_url(url)
        {
            problem("database.url", why);
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

fn check_database_url(url: &str) -> Result<(), String> {
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(()),
        Some("postgres" | "postgresql") => {
            Err("PostgreSQL is not supported yet; use a sqlite: URL".into())
        }
        _ => Err(format!(
            "invalid database URL {url:?}: only SQLite is supported, e.g. \"sqlite:///var/lib/berth/berth.db\""
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

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// berth's own key; unset means a SQLite file in the storage root directory.
    pub url: Option<String>,
}
