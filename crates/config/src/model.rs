//! The configuration model: berth's settings, their defaults, their meaning, and the rules
//! that a value of the right type can still break. Each section is declared once, with
//! `section!` (see the crate's documentation for how to add a key).
//!
//! Field names are registry:2's YAML keys (all lower case, no separators) so that a
//! registry:2 `config.yml` reads the same way here.

mod auth;
mod database;
mod directory;
mod gc;
mod headers;
mod http;
mod log;
mod metrics;
mod notifications;
mod proxy;
mod retention;
mod s3;
mod smtp;
mod storage;
mod stores;
mod virtuals;
mod webhooks;

pub use auth::{AuthConfig, BerthAuth, HtpasswdAuth, PasskeysMode, RequireMfa};
pub use database::DatabaseConfig;
pub use directory::{LdapConfig, OidcProvider};
pub use gc::{GcConfig, TimeWindow, UntaggedPolicy};
pub use http::{DebugConfig, HttpConfig, PrometheusConfig, TlsConfig, TlsVersion};
pub use log::{AccessLogConfig, LogConfig, LogFormat, LogLevel};
pub use metrics::MetricsConfig;
pub use notifications::{
    NotificationAction, NotificationEndpoint, NotificationEvents, NotificationIgnore,
    NotificationsConfig,
};
pub use proxy::{ProxyConfig, RemoteConfig};
pub use retention::{RetentionConfig, RetentionRuleConfig};
pub use s3::S3Config;
pub use smtp::{SmtpConfig, SmtpSecurity};
pub use storage::{
    DeleteConfig, FilesystemConfig, MaintenanceConfig, ReadOnly, RedirectConfig, StorageConfig,
    UploadPurging,
};
pub use stores::{AzureConfig, GcsConfig, IpfsConfig, ScrubConfig};
pub use virtuals::VirtualConfig;
pub use webhooks::{WebhookConfig, WebhookFormat};

use std::collections::BTreeMap;

use crate::schema::{ConfigValue, Problems, ignored, join, section, unsupported};
use crate::values;

section! {
    /// berth's whole configuration.
    #[derive(Clone, PartialEq)]
    pub struct Config {
        log: LogConfig, "what berth logs and how";
        http: HttpConfig, "the HTTP server: address, TLS, public URL, headers";
        /// berth's own token service unless told otherwise.
        auth: AuthConfig,
            "how clients authenticate: berth (the default: berth's own users and tokens), htpasswd or none";
        storage: StorageConfig, "where blobs are stored and how they are looked after";
        database: DatabaseConfig, "the metadata database";
        /// registry:2's `notifications`.
        notifications: NotificationsConfig, "registry:2's event notifications";
        /// berth's own webhooks, by name; the admin API adds more at run time.
        webhooks: BTreeMap<String, WebhookConfig>,
            "berth's webhooks, by name: where events are sent, which ones and how";
        /// registry:2's proxy mode.
        proxy: ProxyConfig, "registry:2's pull-through cache: every repository mirrors one upstream";
        /// berth's pull-through caches, by name.
        remotes: BTreeMap<String, RemoteConfig>,
            "remote repositories, by name: a name prefix whose repositories are a pull-through cache of an upstream registry";
        /// berth's virtual repositories, by name.
        virtuals: BTreeMap<String, VirtualConfig>,
            "virtual repositories, by name: a name prefix read through an ordered list of local prefixes and remotes, written to one of them";
        metrics: MetricsConfig, "Prometheus metrics";
        /// berth's own: online garbage collection.
        gc: GcConfig, "online garbage collection: schedule, grace period, untagged manifests";
        /// berth's own: tag history and retention rules.
        retention: RetentionConfig, "tag history (restores) and retention rules";
        /// berth's own: mail (password reset links). Absent: no mail is sent.
        smtp: Option<SmtpConfig>, "the mail server for password reset links; unset sends no mail (and offers no reset by email)";
    }
    validate = Config::validate_cross_sections;
    registry2 = [
        // In every registry:2 file, and meaningless: a warning would be noise.
        ignored("version", ""),
        ignored(
            "health",
            "berth serves /healthz and /readyz itself; this section configures nothing in berth",
        ),
        unsupported("redis", "berth keeps its state in its metadata database"),
        unsupported("validation", "berth has no manifest validation settings"),
        unsupported("compatibility", "berth has no schema1 compatibility settings"),
        unsupported("middleware", "berth has no storage, registry or repository middleware"),
    ];
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

    fn validate_cross_sections(&self, path: &str, problems: &mut Problems) {
        self.validate_endpoint_names(path, problems);
        if let AuthConfig::Berth(berth) = &self.auth
            && berth.passkeys == PasskeysMode::On
            && self.http.host.is_none()
        {
            problems.add(
                join(path, "auth.berth.passkeys"),
                "passkeys need the registry's public URL: set http.host (https://<name>, or http://localhost:<port>), whose host name becomes the WebAuthn relying party id",
            );
        }
        proxy::check_prefixes(&self.proxy, &self.remotes, &self.virtuals, problems);
        virtuals::check_members(
            &self.virtuals,
            &self.remotes,
            self.proxy.remoteurl.is_some(),
            problems,
        );
    }

    /// Webhooks' names are valid and differ from the notification endpoints' (the two
    /// share one namespace; the endpoints' own names are checked by their section).
    fn validate_endpoint_names(&self, path: &str, problems: &mut Problems) {
        let webhooks = join(path, "webhooks");
        for name in self.webhooks.keys() {
            let endpoint = self
                .notifications
                .endpoints
                .iter()
                .position(|e| e.name == *name);
            if let Err(why) = notifications::check_endpoint_name(name) {
                problems.add(format!("{webhooks}.{name}"), why);
            } else if let Some(i) = endpoint {
                problems.add(
                    format!("{webhooks}.{name}"),
                    format!(
                        "{name:?} is also the name of notifications.endpoints[{i}]; webhooks and notification endpoints need different names"
                    ),
                );
            }
        }
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
        let prometheus = &self.http.debug.prometheus;
        if prometheus.enabled && self.http.debug.addr.is_none() {
            warnings.push((
                "http.debug.prometheus.enabled".to_owned(),
                "true has no effect without http.debug.addr: there is no debug listener".to_owned(),
            ));
        } else if prometheus.enabled && !self.metrics.enabled {
            warnings.push((
                "http.debug.prometheus.enabled".to_owned(),
                "true has no effect while metrics.enabled is false".to_owned(),
            ));
        }
        if self.metrics.open && !self.metrics.enabled {
            warnings.push((
                "metrics.open".to_owned(),
                "true has no effect while metrics.enabled is false".to_owned(),
            ));
        }
        warnings
    }

    /// Rules beyond what the types enforce, as `(key path, message)` pairs: every section's
    /// validation hook (for a configuration changed after loading: remote and virtual
    /// repositories made through the admin API are checked against the file's this way).
    pub fn problems(&self) -> Vec<(String, String)> {
        self.validate()
    }

    /// See [`Config::problems`].
    pub(crate) fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Problems::default();
        self.check("", &mut problems);
        problems.0
    }
}
