//! berth's configuration.
//!
//! A YAML file shaped like the official registry's (CNCF distribution, "registry:2")
//! `config.yml` wherever the concepts match, overridden by `REGISTRY_*` (registry:2's names)
//! and `BERTH_*` (berth's own) environment variables, and validated strictly: every problem
//! names the key path and where the value came from, so an operator can fix all of them in
//! one go. registry:2 keys that mean nothing for berth are accepted with a warning; registry:2
//! features berth does not have yet are errors, because ignoring them would silently change
//! behaviour or security.
//!
//! # How to add a configuration key
//!
//! Each key is described once, as a field of a `section!` in `model/` (one file per top-level
//! section). The field gives the key's name, Rust type, default and one-line meaning; the
//! macro derives from it the struct field, `Default`, reading (unknown keys refused), the key
//! table that the loader, the environment mapping and `berth config check` use, and `Debug`:
//!
//! ```ignore
//! section! {
//!     #[derive(Clone, PartialEq)]
//!     pub struct DatabaseConfig {
//!         maxconnections: u32 = 16, "PostgreSQL connection pool size (ignored for SQLite)";
//!         // A new key: `database.idletimeout`, BERTH_DATABASE_IDLETIMEOUT, explained by
//!         // `berth config check`, "1m" unless set.
//!         idletimeout: Duration = Duration::from_secs(60), "how long an idle connection is kept";
//!     }
//!     validate = DatabaseConfig::validate;
//! }
//! ```
//!
//! - The type says how the value is read from the file, how an environment variable's text
//!   becomes one (`bool` takes true/false/1/0, a list a comma-separated list, anything else
//!   text) and how `explain` shows it, through `schema::ConfigValue`: `bool`, `String`,
//!   `PathBuf`, `u32`, `u64`, `Duration` (Go syntax, "1h30m"), `IpNet`, `berth_oci::Pattern`,
//!   `Option<T>` (unset), `Vec<T>` of values written as text (a YAML list; `[]` or nothing
//!   is empty), the value types in `values/` and the enums in `model/` have it. A new value type
//!   implements `FromStr` (an error that says what is expected) and `Display`, then
//!   `parsed_value!(Type, "a thing")`. A new section is another `section!` used as a field's
//!   type (`Option<Section>` when its presence means something, as `storage.s3`); a choice of
//!   modes is a `choice!` (as `auth`).
//! - Collections of sections: `Vec<Section>` is a list of them (`endpoints:
//!   Vec<NotificationEndpoint>, "..."`, paths `notifications.endpoints[0].url`),
//!   `BTreeMap<String, Section>` a map from names the user chooses to them (`webhooks:
//!   BTreeMap<String, WebhookConfig>, "..."`, paths `webhooks.ci.url`). Each element is walked
//!   against the section's keys (unknown keys reported with the element's path), typed
//!   (errors name the element), explained (one line per key of each element) and checked by
//!   the section's hook with the element's path. Environment variables cannot address
//!   elements: a variable naming such a key is an error that says to use the file. The
//!   elements' names (a map's keys, a list's `name` fields) are checked by the hook of the
//!   section holding the collection (`NotificationsConfig`) or by `Config`'s.
//! - Options after the meaning: `secret` (shown only as set/unset, never quoted in an error),
//!   `read = values::non_empty` (another reader: empty text means unset), `show = |value,
//!   config| ...` and `debug = |value| ...` (other text for `explain` and `Debug`).
//! - Rules that a value of the right type can still break go in the section's `validate`
//!   hook, `fn validate(&self, path: &str, problems: &mut Problems)`: `path` is the section's
//!   own (`storage.redirect`, `notifications.endpoints[1]`), and each problem names its key
//!   below it, `problems.add(join(path, "expiry"), "...")`. Cross-section warnings go in
//!   `Config::warnings`.
//! - registry:2 keys that berth ignores or does not support yet are listed beside the fields
//!   that belong with them: `registry2 = [ignored("key", "why"), unsupported("key", "what
//!   berth does instead"), unsupported_unless("key", &["harmless value"], "why")];`. When
//!   berth gains the feature, the entry becomes a field.
//! - Key names are registry:2's: lower case, no separators (the environment mapping splits
//!   variable names on `_`). Add a test in `load/tests/` for the file, the environment and a
//!   bad value.

mod explain;
mod load;
mod model;
mod schema;
mod values;

use std::fmt;

pub use explain::explain;
pub use load::{Loaded, TextValue, load, value_from_text};
pub use model::{
    AccessLogConfig, AuthConfig, AzureConfig, BerthAuth, Config, DatabaseConfig, DebugConfig,
    DeleteConfig, FilesystemConfig, GcConfig, GcsConfig, HtpasswdAuth, HttpConfig, IpfsConfig,
    LdapConfig, LogConfig, LogFormat, LogLevel, MaintenanceConfig, MetricsConfig,
    NotificationAction, NotificationEndpoint, NotificationEvents, NotificationIgnore,
    NotificationsConfig, OidcProvider, PasskeysMode, PrometheusConfig, ProxyConfig, ReadOnly,
    RedirectConfig, RemoteConfig, RequireMfa, RetentionConfig, RetentionRuleConfig, S3Config,
    ScrubConfig, SmtpConfig, SmtpSecurity, StorageConfig, TimeWindow, TlsConfig, TlsVersion,
    UntaggedPolicy, UploadPurging, VirtualConfig, WebhookConfig, WebhookFormat,
};
pub use values::{EndpointUrl, ListenAddr, PublicUrl, parse_byte_size, percent_decode};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    /// The environment variable's name.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(name) => write!(f, "env {name}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key path, e.g. "http.addr"; empty for the file as a whole.
    pub path: String,
    pub source: Source,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
            match &self.source {
                Source::Default => Ok(()),
                source => write!(f, " (from {source})"),
            }
        }
    }
}

/// Every problem found, so that they can all be fixed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
