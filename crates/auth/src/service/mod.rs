//! The access service: turns credentials into a caller and answers "may this caller do this
//! here?", issues registry tokens, and records every decision in the audit log.
//!
//! This is the part of the crate that does I/O, through the [`IdentityStore`] trait.
//! Decisions on the hot path stay cheap: a registry token that covers the request is checked
//! with no database access (its signature check is cached); password checks (argon2, tens of
//! milliseconds by design) are cached after they succeed; policy rules and a user's teams
//! are cached; audit events are written in batches, identical ones counted rather than
//! repeated. Every cache is emptied by any identity change, on every instance, within
//! [`CHANGE_POLL`] (see `cache`).
//!
//! * `caller`: who is asking, refusals and decisions;
//! * `authenticate`: credentials to a caller;
//! * `authorize`: policy and grants to a decision;
//! * `tokens`: registry and refresh tokens;
//! * `sessions`: sign-in sessions;
//! * `second_factor`: who must give a second factor, the step between password and session,
//!   authenticator and recovery codes;
//! * `passkeys`: passwordless sign-in with a passkey, a passkey as the second factor, and
//!   the ceremonies' server-side state.
//! * `external`: sign-ins an LDAP directory or an OpenID provider vouches for.

use std::sync::Arc;
use std::time::Duration;

use berth_meta::identity::{AuditEvent, IdentityStore};
use berth_meta::now_millis;

use crate::password::Htpasswd;
use crate::registry_token::RegistryTokens;
use crate::throttle::{LoginThrottle, StartLimit};

mod authenticate;
mod authorize;
mod cache;
mod caller;
mod external;
mod passkeys;
mod second_factor;
mod sessions;
mod tokens;

pub use cache::CHANGE_POLL;
pub use caller::{AuthFailure, Caller, Decision};
pub use passkeys::{BegunCeremony, PasskeyFailure};
pub use second_factor::{
    CHALLENGE_LIFETIME, FirstFactor, MfaRequirement, NextStep, PendingSignIn, SecondFactor,
    SecondFactorPolicy,
};
pub use sessions::{NewSession, SESSION_LIFETIME, SessionCaller, SignInMethod};
pub use tokens::TokenResponse;

/// The authentication mode, from the configuration.
pub enum Mode {
    /// No authentication: everyone may do everything.
    None,
    /// registry:2's htpasswd: Basic auth; every authenticated user may do everything.
    Htpasswd { realm: String, file: Htpasswd },
    /// berth's identity store and token service.
    Berth(Box<TokenService>),
}

pub struct TokenService {
    pub tokens: RegistryTokens,
    /// The token endpoint URL for challenges, when configured (else each request's own).
    pub realm: Option<String>,
    pub refresh_lifetime: Duration,
}

pub struct AccessService {
    mode: Mode,
    store: Arc<dyn IdentityStore>,
    throttle: LoginThrottle,
    /// Passwordless sign-ins begun per address (each stores a challenge).
    passwordless_starts: StartLimit,
    audit: crate::audit::AuditSink,
    /// Password checks (argon2) that may run at once.
    password_checks: tokio::sync::Semaphore,
    caches: Arc<cache::Caches>,
    second_factors: second_factor::SecondFactorPolicy,
    /// The WebAuthn relying party, when passkeys are on.
    passkeys: Option<Arc<crate::passkey::RelyingParty>>,
    /// The LDAP directory whose users sign in with their directory password.
    directory: Option<Arc<crate::ldap::LdapDirectory>>,
    /// The OpenID providers offered on the sign-in page, in configuration order.
    oidc: Vec<Arc<crate::oidc::OidcProvider>>,
}

impl AccessService {
    /// Starts the service on the current tokio runtime: its audit writer and, in berth's
    /// own mode, the task that follows identity changes made elsewhere.
    pub fn new(mode: Mode, store: Arc<dyn IdentityStore>) -> AccessService {
        let caches = Arc::new(cache::Caches::new());
        if matches!(mode, Mode::Berth(_)) {
            tokio::spawn(cache::follow_changes(
                Arc::downgrade(&caches),
                Arc::clone(&store),
            ));
        }
        AccessService {
            mode,
            audit: crate::audit::AuditSink::start(Arc::clone(&store)),
            store,
            throttle: LoginThrottle::default(),
            passwordless_starts: StartLimit::default(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            ),
            caches,
            second_factors: second_factor::SecondFactorPolicy::default(),
            passkeys: None,
            directory: None,
            oidc: Vec::new(),
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    /// Records an event in the audit log (batched).
    pub fn audit(&self, caller: &Caller, action: &str, target: &str, outcome: &str, detail: &str) {
        self.audit.record(AuditEvent {
            at: now_millis(),
            actor: caller.actor(),
            action: action.into(),
            target: target.into(),
            client: caller.client_text(),
            outcome: outcome.into(),
            detail: detail.into(),
            count: 1,
        });
    }

    /// Writes out the audit events still waiting (for shutdown and tests).
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// Forgets cached rules, identities, password checks and verified registry tokens at
    /// once (after a change made through this instance; other instances' changes arrive
    /// through the change counter).
    pub fn invalidate(&self) {
        self.caches.invalidate();
    }
}
