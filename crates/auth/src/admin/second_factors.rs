//! Second factors: a user enrols an authenticator (a pending secret, confirmed by a first
//! code from it, which also makes ten recovery codes, shown once and stored as argon2
//! hashes), makes new recovery codes, removes their authenticator; an administrator resets a
//! user's second factors (a lost phone), passkeys included. Enrolments, removals and resets are audited.

use berth_meta::now_millis;
use serde::Serialize;

use super::validate::{found, not_found};
use super::{Actor, AdminError, AdminResult, Administration, Change};
use crate::password::hash_password;
use crate::totp;

/// A user's second factors, as they may be shown (never a secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecondFactorInfo {
    /// Whether the user has a confirmed authenticator.
    pub authenticator: bool,
    pub enrolled_at: Option<String>,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Registered passkeys.
    pub passkeys: usize,
}

fn user_target(name: &str) -> String {
    format!("user:{name}")
}

/// Hashes new recovery codes (argon2, on a blocking thread: ten of them take a moment).
async fn hash_codes(codes: &[String]) -> AdminResult<Vec<String>> {
    let typed: Vec<String> = codes
        .iter()
        .map(|c| totp::normalize_recovery_code(c))
        .collect();
    tokio::task::spawn_blocking(move || typed.iter().map(|c| hash_password(c)).collect())
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing recovery codes failed: {e}")))
}

impl Administration {
    pub async fn second_factors(&self, name: &str) -> AdminResult<SecondFactorInfo> {
        self.store
            .user(name)
            .await?
            .ok_or_else(|| not_found("user", name))?;
        let factor = self.store.totp_factor(name).await?;
        let confirmed = factor.as_ref().and_then(|f| f.confirmed_at);
        let left = if confirmed.is_some() {
            self.store.unused_recovery_codes(name).await?.len()
        } else {
            0
        };
        Ok(SecondFactorInfo {
            authenticator: factor.as_ref().is_some_and(|f| f.secret.is_some()),
            enrolled_at: confirmed.map(super::timestamp),
            recovery_codes_left: left,
            passkeys: self.store.passkeys(name).await?.len(),
        })
    }

    /// The secret of the user's enrolment in progress, begun now if none is (or if `restart`).
    /// Nothing changes for signing in until a code confirms it.
    pub async fn pending_authenticator(&self, name: &str, restart: bool) -> AdminResult<String> {
        let pending = self
            .store
            .totp_factor(name)
            .await?
            .and_then(|f| f.pending_secret);
        if let (Some(secret), false) = (pending, restart) {
            return Ok(secret);
        }
        let secret = totp::new_secret();
        found(
            self.store
                .set_pending_totp(name, &secret, now_millis())
                .await?,
            "user",
            name,
        )?;
        Ok(secret)
    }

    /// Confirms the enrolment in progress with a first code from the authenticator; returns
    /// the ten recovery codes, shown once (any earlier ones stop working).
    pub async fn confirm_authenticator(
        &self,
        actor: &Actor,
        name: &str,
        code: &str,
    ) -> AdminResult<Vec<String>> {
        self.change(
            actor,
            Change::new(user_target(name), "enrol authenticator").harmless(),
            async {
                let secret = self
                    .store
                    .totp_factor(name)
                    .await?
                    .and_then(|f| f.pending_secret)
                    .ok_or_else(|| {
                        AdminError::Conflict(
                            "no enrolment is in progress: start again from the profile page".into(),
                        )
                    })?;
                let now = now_millis();
                let step = totp::check(&secret, code, (now / 1000).max(0) as u64).ok_or_else(
                    || {
                        AdminError::Invalid(
                        "that is not the authenticator's current code: check the device's clock and try the next code"
                            .into(),
                    )
                    },
                )?;
                let codes = totp::new_recovery_codes();
                let hashes = hash_codes(&codes).await?;
                if !self
                    .store
                    .confirm_totp(name, &secret, step, &hashes, now)
                    .await?
                {
                    return Err(AdminError::Conflict(
                        "the enrolment changed meanwhile: start again from the profile page"
                            .into(),
                    ));
                }
                Ok(codes)
            },
        )
        .await
    }

    /// New recovery codes for a user with an authenticator (the old ones stop working).
    pub async fn new_recovery_codes(&self, actor: &Actor, name: &str) -> AdminResult<Vec<String>> {
        self.change(
            actor,
            Change::new(user_target(name), "new recovery codes").harmless(),
            async {
                if !self.second_factors(name).await?.authenticator {
                    return Err(AdminError::Conflict(
                        "recovery codes go with an authenticator: enrol one first".into(),
                    ));
                }
                let codes = totp::new_recovery_codes();
                let hashes = hash_codes(&codes).await?;
                self.store
                    .replace_recovery_codes(name, &hashes, now_millis())
                    .await?;
                Ok(codes)
            },
        )
        .await
    }

    /// A user removes their own authenticator and recovery codes.
    pub async fn remove_second_factors(&self, actor: &Actor, name: &str) -> AdminResult<()> {
        self.change(
            actor,
            Change::new(user_target(name), "remove second factors").harmless(),
            async {
                found(
                    self.store.delete_second_factors(name).await?,
                    "second factor of user",
                    name,
                )
            },
        )
        .await
    }

    /// An administrator resets a user's second factors (a lost authenticator or passkey):
    /// the authenticator, recovery codes and passkeys go; the user signs in with the password
    /// alone, or enrols again if a second factor is required.
    pub async fn reset_second_factors(&self, actor: &Actor, name: &str) -> AdminResult<()> {
        self.change(
            actor,
            Change::new(user_target(name), "reset second factors").harmless(),
            async {
                self.store
                    .user(name)
                    .await?
                    .ok_or_else(|| not_found("user", name))?;
                self.store.delete_second_factors(name).await?;
                self.store.delete_passkeys(name).await?;
                Ok(())
            },
        )
        .await
    }
}
