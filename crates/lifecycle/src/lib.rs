//! Lifecycle management: garbage collection runs, tag immutability and retention rules, and
//! quotas.
//!
//! [`Lifecycle`] is the one write path for them, as `berth_auth::admin::Administration` is
//! for identities: the command line (`berth gc ...`), the admin API, the dashboard and the
//! background jobs all call it. Every change takes the [`Actor`] making it, is validated
//! the same way whoever asks, and is recorded in the audit log before the call returns.
//! The doors only parse their input and print or serialise what comes back.

use std::sync::Arc;

use berth_auth::admin::Actor;
use berth_meta::identity::{AuditEvent, IdentityStore};
use berth_meta::webhooks::Leases;
use berth_meta::{MetaError, MetadataStore, now_millis};
use berth_registry::Registry;
use berth_registry::gc::{GcReport, GcSettings};

mod gc;
mod immutability;
mod quotas;
mod retention;
mod tag_history;

pub use gc::{GcRunView, GcStatus};
pub use immutability::{ImmutableTagRuleView, NewImmutableTagRule};
pub use quotas::{NamespaceUsage, NewQuota, QuotaView, UsageReport, namespace_of, quota_pattern};
pub use retention::{
    NewRetentionRule, RemovedTag, RepositoryRetention, RetentionReport, RetentionRuleView,
};
pub use tag_history::{RestoreTag, RestoredTag, TagHistoryView};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The request itself is wrong (a bad rule, a negative count); the text names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done now: another instance is collecting garbage, the name exists.
    #[error("{0}")]
    Conflict(String),
    /// A garbage collection stopped on a database or storage error; nothing is lost, and the
    /// report says how far it got.
    #[error("{message}")]
    GcFailed {
        message: String,
        report: Box<GcReport>,
    },
    #[error(transparent)]
    Store(#[from] MetaError),
}

pub type LifecycleResult<T> = Result<T, LifecycleError>;

/// Where lifecycle management works.
pub struct Lifecycle {
    registry: Arc<Registry>,
    meta: Arc<dyn MetadataStore>,
    leases: Arc<dyn Leases>,
    audit: Arc<dyn IdentityStore>,
    gc: GcSettings,
    /// This instance, as leases and run records name it.
    holder: String,
    requests: gc::Requests,
    /// Held by this instance's collection under way: the lease is the instance's, so it
    /// keeps other instances out but not this one's other jobs (see `collect_garbage`).
    collecting: tokio::sync::Mutex<()>,
    /// Retention rules from the configuration file (negative ids: `retention.rules[0]` is
    /// -1), applied alongside the database's.
    configured_retention: Vec<berth_meta::RetentionRule>,
}

impl Lifecycle {
    pub fn new(
        registry: Arc<Registry>,
        meta: Arc<dyn MetadataStore>,
        leases: Arc<dyn Leases>,
        audit: Arc<dyn IdentityStore>,
        gc: GcSettings,
        holder: String,
    ) -> Lifecycle {
        Lifecycle {
            registry,
            meta,
            leases,
            audit,
            gc,
            holder,
            requests: gc::Requests::default(),
            collecting: tokio::sync::Mutex::new(()),
            configured_retention: Vec::new(),
        }
    }

    /// Applies `rules` (from the configuration file) alongside the database's retention
    /// rules. Their ids are negative: `retention.rules[0]` is -1.
    pub fn with_configured_retention(mut self, rules: Vec<berth_meta::RetentionRule>) -> Self {
        self.configured_retention = rules;
        self
    }

    pub fn gc_settings(&self) -> &GcSettings {
        &self.gc
    }

    /// Writes one management event to the audit log now (changes are rare and the command
    /// line exits right after).
    async fn record(&self, actor: &Actor, target: &str, outcome: &str, detail: &str) {
        let client = actor.client();
        let event = AuditEvent {
            at: now_millis(),
            actor: actor.name(),
            action: "admin".into(),
            target: target.to_string(),
            client,
            outcome: outcome.into(),
            detail: detail.chars().take(1024).collect(),
            count: 1,
        };
        if let Err(e) = self.audit.record_audit(&[event]).await {
            tracing::error!(error = %e, actor = %actor.name(), target, outcome, "a lifecycle change could not be recorded in the audit log");
        }
    }
}
