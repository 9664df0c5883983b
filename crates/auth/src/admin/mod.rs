//! Managing identities and access: users, teams, service accounts, access tokens, policy
//! rules, htpasswd imports and the audit log.
//!
//! This is the one write path for management: the command line (`berth user add ...`), the
//! admin API (`/api/v1/...`), the dashboard and background jobs all call [`Administration`].
//! Every change takes the [`Actor`] making it, and `Administration` itself
//!
//! * validates it (a name, a password, a rule, a token's scopes) the same way whoever asks;
//! * records it in the audit log (who, what, from where, done or why not), written before
//!   the call returns;
//! * empties the access caches: this instance's at once, and every other instance's
//!   through the database's identity change counter, which triggers bump in the same
//!   transaction as the change (migration 0600) and every access service polls
//!   (`service::CHANGE_POLL`). A change at the command line reaches running servers the
//!   same way.
//!
//! The doors only authenticate, parse their input and print or serialise what comes back.
//!
//! Safety rails a registry operator expects: the last enabled administrator cannot be
//! deleted, disabled or demoted (nobody could manage berth afterwards); policy rules must
//! name subjects that exist (a typo would silently grant nothing), and go with them when
//! they are deleted; token secrets are returned once, at creation, and never again.

use std::net::IpAddr;
use std::sync::Arc;

use berth_meta::identity::{AuditEvent, IdentityStore};
use berth_meta::{MetaError, now_millis};

use crate::service::{AccessService, Caller};

mod passkeys;
mod password_resets;
mod provision;
mod rules;
mod second_factors;
mod service_accounts;
mod teams;
mod tokens;
mod upkeep;
mod users;
mod validate;
mod views;

pub use passkeys::PasskeyInfo;
pub use password_resets::{RESET_LINK_LIFETIME, ResetLink};
pub use provision::Provisioned;
pub use second_factors::SecondFactorInfo;
pub use tokens::NewToken;
pub use users::NewUser;
pub use validate::{MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, parse_owner, valid_name};
pub use views::{
    AuditEntry, CreatedToken, HtpasswdImport, RuleInfo, ServiceAccountInfo, SessionInfo, TeamInfo,
    TokenInfo, UserInfo, timestamp,
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong: a bad name, a weak password, an unknown action.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// It exists already, or the change would break a rule (the last administrator).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not manage berth.
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Store(MetaError),
}

impl From<MetaError> for AdminError {
    fn from(err: MetaError) -> Self {
        match err {
            MetaError::Conflict(why) => AdminError::Conflict(why),
            other => AdminError::Store(other),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// Who makes a change, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An administrator's request (admin API, dashboard): `user:alice` from an address.
    Principal {
        subject: String,
        client: Option<IpAddr>,
    },
    /// An operator at the command line on the server: `cli:<login name>`.
    Cli { login: String },
    /// berth itself: background jobs, the first start.
    System,
    /// A directory or an OpenID provider, provisioning its users at sign-in: `source:ldap`.
    Source(String),
}

impl Actor {
    /// `user:alice`, `cli:root`, `system`.
    pub fn name(&self) -> String {
        match self {
            Actor::Principal { subject, .. } => subject.clone(),
            Actor::Cli { login } => format!("cli:{login}"),
            Actor::System => "system".into(),
            Actor::Source(source) => format!("source:{source}"),
        }
    }

    /// Where the change came from: an address, `local` (the command line), or nothing.
    pub fn client(&self) -> String {
        match self {
            Actor::Principal { client, .. } => client.map(|c| c.to_string()).unwrap_or_default(),
            Actor::Cli { .. } => "local".into(),
            Actor::System | Actor::Source(_) => String::new(),
        }
    }
}

/// A change about to be made: what it touches and how the audit log describes it.
struct Change {
    /// `user:alice`, `team:devs`, `token:<id>`, `policy`, ...
    target: String,
    /// `create user`, `disable user`, `add member alice`, ...
    operation: String,
    /// Whether it can change what someone may do (and so must empty the access caches).
    affects_access: bool,
}

impl Change {
    fn new(target: impl Into<String>, operation: impl Into<String>) -> Change {
        Change {
            target: target.into(),
            operation: operation.into(),
            affects_access: true,
        }
    }

    /// A change that grants or revokes nothing (a new token, pruning).
    fn harmless(mut self) -> Change {
        self.affects_access = false;
        self
    }
}

/// Audit fields are bounded: a target comes from the request and may be long garbage.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

pub struct Administration {
    store: Arc<dyn IdentityStore>,
    /// The access service of this process, whose caches a change empties at once.
    access: Option<Arc<AccessService>>,
}

impl Administration {
    /// Management without an access service of its own (the command line, tests): running
    /// servers learn of its changes through the identity change counter.
    pub fn new(store: Arc<dyn IdentityStore>) -> Administration {
        Administration {
            store,
            access: None,
        }
    }

    /// Management inside a server: changes also empty `access`'s caches at once.
    pub fn serving(access: Arc<AccessService>) -> Administration {
        Administration {
            store: Arc::clone(access.store()),
            access: Some(access),
        }
    }

    /// The actor for a request's caller, if it may manage berth: an administrator whose
    /// credentials are not narrowed by token scopes. A refusal is recorded in the audit log
    /// (`what`: the operation asked for, e.g. `DELETE /api/v1/users/bob`).
    pub async fn authorize(&self, caller: &Caller, what: &str) -> AdminResult<Actor> {
        let why = if !caller.principal.is_admin() {
            "only administrators may manage berth"
        } else if caller.is_limited() {
            "an access token with scopes cannot manage berth; use one without scopes"
        } else {
            return Ok(Actor::Principal {
                subject: caller.actor(),
                client: caller.client,
            });
        };
        let actor = Actor::Principal {
            subject: caller.actor(),
            client: caller.client,
        };
        self.record(&actor, what, "denied", why).await;
        Err(AdminError::Denied(why.into()))
    }

    /// Runs a change: on success empties the access caches (when it affects access); either
    /// way records it in the audit log before returning.
    async fn change<T>(
        &self,
        actor: &Actor,
        change: Change,
        work: impl Future<Output = AdminResult<T>>,
    ) -> AdminResult<T> {
        let result = work.await;
        if result.is_ok()
            && change.affects_access
            && let Some(access) = &self.access
        {
            access.invalidate();
        }
        let (outcome, detail) = match &result {
            Ok(_) => ("allowed", change.operation),
            Err(e) => ("failed", format!("{}: {e}", change.operation)),
        };
        self.record(actor, &change.target, outcome, &detail).await;
        result
    }

    /// Records a change made by another management layer (webhooks, lifecycle rules), so that
    /// every management change lands in the one audit log the same way: `outcome` is
    /// `allowed` or `failed`, `detail` what was done.
    pub async fn record_management(
        &self,
        actor: &Actor,
        target: &str,
        outcome: &str,
        detail: &str,
    ) {
        self.record(actor, target, outcome, detail).await;
    }

    /// Writes one management event to the audit log now (not batched: the command line
    /// exits right after, and a management change is rare and worth a write of its own).
    async fn record(&self, actor: &Actor, target: &str, outcome: &str, detail: &str) {
        let event = AuditEvent {
            at: now_millis(),
            actor: actor.name(),
            action: "admin".into(),
            target: bounded(target.to_string(), 256),
            client: actor.client(),
            outcome: outcome.into(),
            detail: bounded(detail.to_string(), 1024),
            count: 1,
        };
        if let Err(e) = self.store.record_audit(&[event]).await {
            tracing::error!(error = %e, actor = %actor.name(), target, outcome, "a management change could not be recorded in the audit log");
        }
    }
}
