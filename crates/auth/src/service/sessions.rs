//! Sign-in sessions (a cookie) for the admin API and the dashboard.

use std::net::IpAddr;
use std::time::Duration;

use berth_meta::identity::Session;
use berth_meta::{MetaError, now_millis};

use super::{AccessService, AuthFailure, Caller};
use crate::policy::Principal;
use crate::secret::{PresentedSecret, SecretKind};

/// How long a sign-in session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How stale a session's "last seen" time may get before a request records it again (so
/// that page views are not each a database write).
pub const LAST_SEEN_RESOLUTION: Duration = Duration::from_secs(60);
/// The longest `User-Agent` kept with a session.
const MAX_USER_AGENT: usize = 300;

/// How a user signed in, as their session records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInMethod {
    /// What the audit log says (`password`, `password + authenticator code`, ...).
    pub description: String,
    /// Whether it included a second factor (an authenticator or recovery code, a passkey): a
    /// requirement made later (`auth.berth.requiremfa` raised, a user promoted to
    /// administrator) ends the sessions begun without one.
    pub second_factor: bool,
}

impl SignInMethod {
    pub fn one_factor(description: impl Into<String>) -> SignInMethod {
        SignInMethod {
            description: description.into(),
            second_factor: false,
        }
    }

    pub fn two_factors(description: impl Into<String>) -> SignInMethod {
        SignInMethod {
            description: description.into(),
            second_factor: true,
        }
    }
}

/// A session just begun: the cookie value and the CSRF token, shown once.
pub struct NewSession {
    pub cookie: String,
    /// State-changing requests made with the cookie must echo this in a header.
    pub csrf_token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// What a session cookie stands for.
pub struct SessionCaller {
    pub caller: Caller,
    /// The session's id (not a secret: the cookie's secret part proves it).
    pub id: String,
    /// Whether the request carried the session's CSRF token.
    pub csrf_ok: bool,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// Whether its sign-in included a second factor.
    pub second_factor: bool,
}

/// Why a live session no longer signs its user in.
const SECOND_FACTOR_NOW_REQUIRED: &str =
    "this account must now sign in with a second factor; sign in again";

impl AccessService {
    /// Begins a session for a user who just logged in (people only: not service accounts,
    /// not credentials narrowed by token scopes).
    pub async fn begin_session(&self, caller: &Caller) -> Result<NewSession, AuthFailure> {
        self.begin_session_with(caller, &SignInMethod::one_factor("password"), None)
            .await
    }

    /// Begins a session, recording how the user signed in in the audit log and with the
    /// session, and the browser's `User-Agent` (shortened, control characters dropped) for
    /// the user's list of their sessions.
    pub async fn begin_session_with(
        &self,
        caller: &Caller,
        method: &SignInMethod,
        user_agent: Option<&str>,
    ) -> Result<NewSession, AuthFailure> {
        let Principal::User { name, .. } = &caller.principal else {
            return Err(AuthFailure::Invalid("sessions are for users"));
        };
        if caller.is_limited() {
            return Err(AuthFailure::Invalid(
                "a session needs a password, not a limited access token",
            ));
        }
        let secret = crate::secret::generate(SecretKind::Session);
        let csrf_token = crate::secret::random_token(32);
        let now = now_millis();
        let expires_at = now + SESSION_LIFETIME.as_millis() as i64;
        self.store
            .create_session(&Session {
                id: secret.id,
                user: name.clone(),
                secret_hash: secret.hash,
                csrf_hash: crate::secret::hash(&csrf_token),
                client: caller.client_text(),
                created_at: now,
                expires_at,
                last_seen_at: Some(now),
                user_agent: user_agent
                    .map(|agent| {
                        agent
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(MAX_USER_AGENT)
                            .collect::<String>()
                    })
                    .filter(|agent| !agent.is_empty()),
                second_factor: method.second_factor,
            })
            .await?;
        self.audit(
            caller,
            "login",
            "",
            "allowed",
            &format!("session: {}", method.description),
        );
        Ok(NewSession {
            cookie: secret.text,
            csrf_token,
            expires_at,
        })
    }

    /// The caller a session cookie stands for, if the session is live, its user still
    /// enabled and, when `auth.berth.requiremfa` covers the user now, it began with a second
    /// factor; and whether `csrf_token` is the session's.
    pub async fn session(
        &self,
        cookie: &str,
        csrf_token: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<SessionCaller, AuthFailure> {
        let invalid = AuthFailure::Invalid("the session has ended; sign in again");
        let secret = PresentedSecret::parse(cookie)
            .filter(|s| s.kind == SecretKind::Session)
            .ok_or(AuthFailure::Invalid("malformed session cookie"))?;
        let session = self
            .store
            .session(&secret.id)
            .await?
            .filter(|session| secret.matches(&session.secret_hash))
            .filter(|session| session.expires_at > now_millis())
            .ok_or(invalid)?;
        let principal = self
            .user_principal(&session.user)
            .await?
            .ok_or(AuthFailure::Invalid(
                "the session's user is gone or disabled",
            ))?;
        if !session.second_factor && self.second_factor_required(&principal) {
            return Err(AuthFailure::Invalid(SECOND_FACTOR_NOW_REQUIRED));
        }
        let csrf_ok =
            csrf_token.is_some_and(|token| crate::secret::hash_matches(token, &session.csrf_hash));
        let now = now_millis();
        if session
            .last_seen_at
            .is_none_or(|seen| now - seen >= LAST_SEEN_RESOLUTION.as_millis() as i64)
        {
            // Only what the sessions list shows: a failure to record it fails no request.
            if let Err(e) = self.store.touch_session(&session.id, now).await {
                tracing::warn!(error = %e, "could not record when a session was last used");
            }
        }
        Ok(SessionCaller {
            id: session.id,
            caller: Caller::of(principal, client),
            csrf_ok,
            expires_at: session.expires_at,
            second_factor: session.second_factor,
        })
    }

    /// Ends the session a cookie names (signing out).
    pub async fn end_session(&self, cookie: &str) -> Result<(), MetaError> {
        if let Some(secret) =
            PresentedSecret::parse(cookie).filter(|s| s.kind == SecretKind::Session)
        {
            self.store.delete_session(&secret.id).await?;
        }
        Ok(())
    }
}
