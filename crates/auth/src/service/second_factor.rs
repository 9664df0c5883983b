//! Second factors at sign-in: who must give one (`auth.berth.requiremfa`), the step between
//! a right password and a session (a "challenge": a row keyed by the SHA-256 of a random
//! cookie, living five minutes), and checking an authenticator code (each time step once,
//! one step of skew) or a one-time recovery code, throttled like passwords.
//!
//! Clients that cannot give a second factor (podman, docker, skopeo, scripts on `/v2/`,
//! `/token` and the admin API) use personal access tokens: for a user whom the requirement
//! covers, [`AccessService::login`] refuses the password and says so.

use std::net::IpAddr;
use std::time::Duration;

use berth_meta::MetaError;
use berth_meta::now_millis;
use berth_meta::second_factors::{ChallengePurpose, SignInChallenge};

use super::{AccessService, AuthFailure, Caller, Mode, SignInMethod};
use crate::policy::Principal;
use crate::totp;

/// Who must sign in to the dashboard with a second factor (`auth.berth.requiremfa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MfaRequirement {
    /// Nobody (users may still enrol).
    #[default]
    None,
    /// Administrators.
    Admins,
    /// Every user.
    All,
}

impl MfaRequirement {
    /// Whether the requirement covers `principal` (service accounts use tokens anyway).
    pub fn covers(self, principal: &Principal) -> bool {
        match (self, principal) {
            (MfaRequirement::None, _) => false,
            (MfaRequirement::Admins, principal) => principal.is_admin(),
            (MfaRequirement::All, Principal::User { .. }) => true,
            (MfaRequirement::All, _) => false,
        }
    }
}

/// How second factors are set up.
#[derive(Debug, Clone)]
pub struct SecondFactorPolicy {
    pub required: MfaRequirement,
    /// The name authenticator apps show for berth's accounts.
    pub issuer: String,
}

impl Default for SecondFactorPolicy {
    fn default() -> Self {
        SecondFactorPolicy {
            required: MfaRequirement::None,
            issuer: "berth".into(),
        }
    }
}

/// What the password was refused for, on `/v2/`, `/token` and the admin API.
pub(super) const PASSWORD_NEEDS_SECOND_FACTOR: &str = "this account must sign in with a second factor: \
     use a personal access token (create one on your profile page in the dashboard) instead of the password";

/// How long a sign-in may wait between the password and the second factor (or enrolment).
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How the first factor of a sign-in was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFactor {
    Password,
    AccessToken,
    /// A password the LDAP directory checked.
    DirectoryPassword,
    /// An OpenID provider's sign-in.
    SingleSignOn,
}

impl FirstFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstFactor::Password => "password",
            FirstFactor::AccessToken => "access token",
            FirstFactor::DirectoryPassword => "LDAP password",
            FirstFactor::SingleSignOn => "single sign-on",
        }
    }
}

/// What follows a right first factor at the dashboard's sign-in.
#[derive(Debug)]
pub enum NextStep {
    /// Nothing: begin the session.
    Session,
    /// Ask for a code; the value is the challenge's cookie.
    Code(String),
    /// The user must enrol an authenticator first; the value is the challenge's cookie.
    Enrol(String),
}

/// A sign-in halfway, as its cookie shows it.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    pub user: String,
    pub purpose: ChallengePurpose,
    /// How the first factor was given.
    pub method: String,
}

/// Which second factor was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    AuthenticatorCode,
    RecoveryCode,
    Passkey,
}

impl SecondFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactor::AuthenticatorCode => "authenticator code",
            SecondFactor::RecoveryCode => "recovery code",
            SecondFactor::Passkey => "passkey",
        }
    }
}

/// The throttle's name for second-factor attempts of `user`: apart from the password's, so
/// that a right password does not forgive wrong codes. (`#` is in no user name.)
pub(super) fn throttle_name(user: &str) -> String {
    format!("{user}#second-factor")
}

impl AccessService {
    /// Sets who must use a second factor and the authenticator apps' issuer name.
    pub fn with_second_factor_policy(mut self, policy: SecondFactorPolicy) -> AccessService {
        self.second_factors = policy;
        self
    }

    pub fn second_factor_policy(&self) -> &SecondFactorPolicy {
        &self.second_factors
    }

    /// Whether `principal` must sign in to the dashboard with a second factor (and so may not
    /// use a password where none can be given).
    pub fn second_factor_required(&self, principal: &Principal) -> bool {
        matches!(self.mode, Mode::Berth(_)) && self.second_factors.required.covers(principal)
    }

    /// Whether a user has a second factor: a confirmed authenticator, or a passkey (while
    /// passkeys are on: a user whose only factor is a passkey signs in with the password
    /// alone when they are off, rather than being locked out).
    pub async fn has_second_factor(&self, user: &str) -> Result<bool, MetaError> {
        Ok(self.has_authenticator(user).await?
            || (self.passkeys().is_some() && self.has_passkey(user).await?))
    }

    /// Whether a user has a confirmed authenticator (TOTP).
    pub async fn has_authenticator(&self, user: &str) -> Result<bool, MetaError> {
        Ok(self
            .store
            .totp_factor(user)
            .await?
            .is_some_and(|f| f.secret.is_some()))
    }

    /// After a right first factor at the dashboard: begin the session, ask for a code (the
    /// user has an authenticator), or send the user to enrol one (the requirement covers
    /// them and they have none). A challenge's cookie is returned once; only its hash is kept.
    pub async fn next_sign_in_step(
        &self,
        caller: &Caller,
        method: FirstFactor,
    ) -> Result<NextStep, AuthFailure> {
        let Principal::User { name, .. } = &caller.principal else {
            return Ok(NextStep::Session);
        };
        if !matches!(self.mode, Mode::Berth(_)) {
            return Ok(NextStep::Session);
        }
        let purpose = if self.has_second_factor(name).await? {
            ChallengePurpose::Code
        } else if self.second_factor_required(&caller.principal) {
            ChallengePurpose::Enrol
        } else {
            return Ok(NextStep::Session);
        };
        let cookie = crate::secret::random_token(32);
        let now = now_millis();
        self.store
            .create_challenge(&SignInChallenge {
                id: crate::secret::hash(&cookie),
                user: name.clone(),
                purpose,
                method: method.as_str().into(),
                client: caller.client_text(),
                created_at: now,
                expires_at: now + CHALLENGE_LIFETIME.as_millis() as i64,
            })
            .await?;
        Ok(match purpose {
            ChallengePurpose::Code => NextStep::Code(cookie),
            ChallengePurpose::Enrol => NextStep::Enrol(cookie),
        })
    }

    /// A sign-in in one request (the admin API's `POST /api/v1/session`): the first factor,
    /// then `code` if the user has an authenticator. A user who must enrol one does so in the
    /// dashboard first. Returns the caller and how they signed in, for the audit log.
    pub async fn sign_in_at_once(
        &self,
        user: &str,
        password: &str,
        code: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<(Caller, SignInMethod), AuthFailure> {
        let (caller, method) = self.first_factor(user, password, client).await?;
        let Principal::User { name, .. } = &caller.principal else {
            return Ok((caller, SignInMethod::one_factor(method.as_str())));
        };
        if !matches!(self.mode, Mode::Berth(_)) {
            return Ok((caller, SignInMethod::one_factor(method.as_str())));
        }
        if !self.has_authenticator(name).await? && self.has_second_factor(name).await? {
            self.audit(
                &caller,
                "login",
                "",
                "failed",
                "second factor is a passkey, which the API cannot take",
            );
            return Err(AuthFailure::Invalid(
                "this account's second factor is a passkey: sign in to the dashboard, or use an access token",
            ));
        }
        if self.has_second_factor(name).await? {
            let Some(code) = code else {
                return Err(AuthFailure::Invalid(
                    "this account has a second factor: give a code from the authenticator (or a recovery code) as \"code\"",
                ));
            };
            let factor = self.verify_second_factor(name, code, client).await?;
            let how = format!("{} + {}", method.as_str(), factor.as_str());
            return Ok((caller, SignInMethod::two_factors(how)));
        }
        if self.second_factor_required(&caller.principal) {
            self.audit(
                &caller,
                "login",
                "",
                "failed",
                "second factor required, none enrolled",
            );
            return Err(AuthFailure::Invalid(
                "this account must enrol a second factor: sign in to the dashboard first",
            ));
        }
        Ok((caller, SignInMethod::one_factor(method.as_str())))
    }

    /// The sign-in halfway a challenge cookie stands for, while it lives.
    pub async fn pending_sign_in(&self, cookie: &str) -> Result<Option<PendingSignIn>, MetaError> {
        if cookie.len() != 64 {
            return Ok(None);
        }
        Ok(self
            .store
            .challenge(&crate::secret::hash(cookie))
            .await?
            .filter(|c| c.expires_at > now_millis())
            .map(|c| PendingSignIn {
                user: c.user,
                purpose: c.purpose,
                method: c.method,
            }))
    }

    /// Ends a sign-in halfway (its second step is done, or it is abandoned) and returns the
    /// caller it was for, if its user is still enabled. A challenge is used once.
    pub async fn finish_sign_in(
        &self,
        cookie: &str,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        let gone = AuthFailure::Invalid("the sign-in has expired; sign in again");
        let pending = self.pending_sign_in(cookie).await?.ok_or(gone)?;
        if !self
            .store
            .delete_challenge(&crate::secret::hash(cookie))
            .await?
        {
            return Err(AuthFailure::Invalid(
                "the sign-in has expired; sign in again",
            ));
        }
        let principal = self
            .user_principal(&pending.user)
            .await?
            .ok_or(AuthFailure::Invalid("the user is gone or disabled"))?;
        Ok(Caller::of(principal, client))
    }

    /// Checks a second factor of `user`: a code of their authenticator (each time step is
    /// accepted once; one step of clock skew) or one of their unused recovery codes (used up
    /// by this). Wrong codes are throttled like passwords and audited.
    pub async fn verify_second_factor(
        &self,
        user: &str,
        code: &str,
        client: Option<IpAddr>,
    ) -> Result<SecondFactor, AuthFailure> {
        let anonymous = Caller::anonymous(client).named(user);
        let key = throttle_name(user);
        match self.throttle.check(&key, client) {
            Err(wait) => {
                self.audit(&anonymous, "login", "", "throttled", "second factor");
                return Err(AuthFailure::Throttled(wait));
            }
            Ok(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Ok(_) => {}
        }
        let refusal = if code.len() > 64 {
            "wrong code"
        } else if totp::is_totp_code(code) {
            match self.check_authenticator_code(user, code).await? {
                Ok(()) => {
                    self.throttle.record_success(&key, client);
                    return Ok(SecondFactor::AuthenticatorCode);
                }
                Err(why) => why,
            }
        } else if self.use_recovery_code(user, code).await? {
            self.throttle.record_success(&key, client);
            return Ok(SecondFactor::RecoveryCode);
        } else {
            "wrong or used recovery code"
        };
        self.throttle.record_failure(&key, client);
        self.audit(
            &anonymous,
            "login",
            "",
            "failed",
            &format!("second factor: {refusal}"),
        );
        Err(AuthFailure::Invalid(refusal))
    }

    async fn check_authenticator_code(
        &self,
        user: &str,
        code: &str,
    ) -> Result<Result<(), &'static str>, MetaError> {
        let Some(secret) = self.store.totp_factor(user).await?.and_then(|f| f.secret) else {
            return Ok(Err("wrong code"));
        };
        let now = u64::try_from(now_millis() / 1000).unwrap_or_default();
        let Some(step) = totp::check(&secret, code, now) else {
            return Ok(Err("wrong code"));
        };
        if self.store.use_totp_step(user, step).await? {
            Ok(Ok(()))
        } else {
            Ok(Err(
                "that code was used already: wait for the next one (each code works once)",
            ))
        }
    }

    /// Uses up one of the user's recovery codes if `code` is one (argon2, a few at a time).
    async fn use_recovery_code(&self, user: &str, code: &str) -> Result<bool, MetaError> {
        let typed = totp::normalize_recovery_code(code);
        if typed.len() != 10 {
            return Ok(false);
        }
        let codes = self.store.unused_recovery_codes(user).await?;
        let _slot = self
            .password_checks
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let hashes: Vec<String> = codes.iter().map(|c| c.code_hash.clone()).collect();
        let found = tokio::task::spawn_blocking(move || {
            hashes
                .iter()
                .position(|hash| crate::password::verify_password(&typed, hash))
        })
        .await
        .ok()
        .flatten();
        match found {
            Some(index) => {
                self.store
                    .use_recovery_code(codes[index].id, now_millis())
                    .await
            }
            None => Ok(false),
        }
    }
}
