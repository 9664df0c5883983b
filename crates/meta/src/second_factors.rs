//! Second factors (a TOTP authenticator and one-time recovery codes) and sign-ins halfway
//! (the first factor was right; the second, or an enrolment, is still to come). Part of the
//! identity store: [`crate::IdentityStore`] requires it.

use async_trait::async_trait;

use crate::Result;

/// A user's TOTP authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub user: String,
    /// The confirmed secret (base32); `None` while the first enrolment is pending.
    pub secret: Option<String>,
    /// Unix milliseconds.
    pub confirmed_at: Option<i64>,
    /// The newest time step whose code was accepted.
    pub last_step: i64,
    /// A secret being enrolled, confirmed by a first code from it.
    pub pending_secret: Option<String>,
    pub pending_at: Option<i64>,
}

/// An unused recovery code of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCode {
    pub id: i64,
    /// argon2.
    pub code_hash: String,
}

/// What a sign-in halfway waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// A code from the user's authenticator, or a recovery code.
    Code,
    /// The user must enrol an authenticator before a session begins.
    Enrol,
}

impl ChallengePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::Code => "code",
            ChallengePurpose::Enrol => "enrol",
        }
    }

    pub fn parse(text: &str) -> Option<ChallengePurpose> {
        match text {
            "code" => Some(ChallengePurpose::Code),
            "enrol" => Some(ChallengePurpose::Enrol),
            _ => None,
        }
    }
}

/// A sign-in halfway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInChallenge {
    /// The SHA-256 of the secret in the browser's cookie.
    pub id: String,
    pub user: String,
    pub purpose: ChallengePurpose,
    /// How the first factor was given (`password`, `access token`), for the audit log.
    pub method: String,
    pub client: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait SecondFactorStore: Send + Sync {
    async fn totp_factor(&self, user: &str) -> Result<Option<TotpFactor>>;
    /// Starts (or restarts) an enrolment: `secret` waits for a first code. `false` when
    /// there is no such user.
    async fn set_pending_totp(&self, user: &str, secret: &str, at: i64) -> Result<bool>;
    /// Confirms the pending `secret` (if it is still the pending one) at time step `step`,
    /// replacing the user's recovery codes with `recovery_hashes`, in one transaction.
    async fn confirm_totp(
        &self,
        user: &str,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
        at: i64,
    ) -> Result<bool>;
    /// Records that the code of `step` was used: `false` (nothing changed) when a code of
    /// that step or a later one was accepted already, so that each code works once.
    async fn use_totp_step(&self, user: &str, step: i64) -> Result<bool>;
    /// Removes the user's authenticator, recovery codes and sign-ins halfway; whether there
    /// was anything to remove.
    async fn delete_second_factors(&self, user: &str) -> Result<bool>;
    async fn unused_recovery_codes(&self, user: &str) -> Result<Vec<RecoveryCode>>;
    /// Marks a recovery code used: `false` when it was used already.
    async fn use_recovery_code(&self, id: i64, at: i64) -> Result<bool>;
    /// Replaces the user's recovery codes.
    async fn replace_recovery_codes(&self, user: &str, hashes: &[String], at: i64) -> Result<()>;

    /// Creating one for a user that does not exist is `MetaError::Conflict`. Expired ones
    /// are deleted on the way.
    async fn create_challenge(&self, challenge: &SignInChallenge) -> Result<()>;
    async fn challenge(&self, id: &str) -> Result<Option<SignInChallenge>>;
    async fn delete_challenge(&self, id: &str) -> Result<bool>;
}
