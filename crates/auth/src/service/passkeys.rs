//! Passkeys at sign-in: a passwordless sign-in (a discoverable passkey names its user), and
//! a passkey as the second factor after a password; the registration ceremony's first half.
//!
//! Each ceremony's state is a row (`passkey_challenges`) keyed by the SHA-256 of a random
//! cookie, bound to its purpose and, but for a passwordless sign-in, to its user; it is
//! taken out of the database by the answer, whatever the outcome, so a challenge is answered
//! once, and it lives five minutes. A refused answer (forged, replayed, for another origin or
//! relying party, an unknown passkey) changes nothing but the audit log and the throttle.

use std::net::IpAddr;

use berth_meta::passkeys::{CeremonyPurpose, PasskeyCeremony, StoredPasskey};
use berth_meta::{MetaError, now_millis};
use serde_json::Value;

use super::second_factor::SecondFactor;
use super::{AccessService, AuthFailure, Caller, Mode, SignInMethod};
use crate::passkey::{Assertion, CEREMONY_LIFETIME, PasskeyRefusal, RelyingParty};

/// Why a passkey sign-in or registration did not go through.
#[derive(Debug)]
pub enum PasskeyFailure {
    /// The answer was refused: why, for the user (and the audit log).
    Refused(String),
    /// Passkeys are off (`auth.berth.passkeys`, or no public URL).
    Disabled,
    /// Throttled, or the identity store cannot be reached.
    Auth(AuthFailure),
}

impl From<MetaError> for PasskeyFailure {
    fn from(err: MetaError) -> Self {
        PasskeyFailure::Auth(AuthFailure::Unavailable(err))
    }
}

impl From<PasskeyRefusal> for PasskeyFailure {
    fn from(refusal: PasskeyRefusal) -> Self {
        PasskeyFailure::Refused(refusal.to_string())
    }
}

/// A ceremony begun: the cookie that names it (returned once; only its hash is kept) and
/// the options for the browser's `navigator.credentials` call.
#[derive(Debug)]
pub struct BegunCeremony {
    pub cookie: String,
    pub options: Value,
}

/// What an answer to a ceremony that is gone or not this one's is told.
const CEREMONY_GONE: &str = "the passkey request has expired or was answered already: try again";

impl AccessService {
    /// Turns passkeys on, for the relying party berth is at its public URL.
    pub fn with_passkeys(mut self, relying_party: RelyingParty) -> AccessService {
        self.passkeys = Some(std::sync::Arc::new(relying_party));
        self
    }

    /// The relying party, when passkeys are on (berth's own authentication, and a public URL).
    pub fn passkeys(&self) -> Option<&RelyingParty> {
        match self.mode {
            Mode::Berth(_) => self.passkeys.as_deref(),
            _ => None,
        }
    }

    fn relying_party(&self) -> Result<&RelyingParty, PasskeyFailure> {
        self.passkeys().ok_or(PasskeyFailure::Disabled)
    }

    /// Stores a ceremony's state under a new cookie.
    async fn begin_ceremony(
        &self,
        user: Option<&str>,
        purpose: CeremonyPurpose,
        ceremony: crate::passkey::Ceremony,
    ) -> Result<BegunCeremony, PasskeyFailure> {
        let cookie = crate::secret::random_token(32);
        let now = now_millis();
        self.store
            .create_passkey_ceremony(&PasskeyCeremony {
                id: crate::secret::hash(&cookie),
                user: user.map(str::to_string),
                purpose,
                state: ceremony.state,
                created_at: now,
                expires_at: now + CEREMONY_LIFETIME.as_millis() as i64,
            })
            .await?;
        Ok(BegunCeremony {
            cookie,
            options: ceremony.options,
        })
    }

    /// Takes the ceremony a cookie names out of the database, if it is alive and is for
    /// `purpose` (and `user`, when it has one): its state.
    pub(crate) async fn take_ceremony(
        &self,
        cookie: Option<&str>,
        purpose: CeremonyPurpose,
        user: Option<&str>,
    ) -> Result<String, PasskeyFailure> {
        let gone = || PasskeyFailure::Refused(CEREMONY_GONE.into());
        let cookie = cookie.filter(|c| c.len() == 64).ok_or_else(gone)?;
        let ceremony = self
            .store
            .take_passkey_ceremony(&crate::secret::hash(cookie), now_millis())
            .await?
            .ok_or_else(gone)?;
        if ceremony.purpose != purpose || ceremony.user.as_deref() != user {
            return Err(gone());
        }
        Ok(ceremony.state)
    }

    /// The user's WebAuthn handle, made on first use.
    pub(crate) async fn passkey_handle(&self, user: &str) -> Result<String, PasskeyFailure> {
        self.store
            .passkey_handle(user, &RelyingParty::new_user_handle())
            .await?
            .ok_or_else(|| PasskeyFailure::Refused("no such user".into()))
    }

    /// Begins registering a passkey for `user` (signed in, or enrolling at sign-in). The
    /// answer goes to `Administration::register_passkey`, which checks and stores it.
    pub async fn begin_passkey_registration(
        &self,
        user: &str,
    ) -> Result<BegunCeremony, PasskeyFailure> {
        let relying_party = self.relying_party()?;
        let handle = self.passkey_handle(user).await?;
        let existing: Vec<String> = self
            .store
            .passkeys(user)
            .await?
            .into_iter()
            .map(|p| p.credential)
            .collect();
        let ceremony = relying_party.start_registration(&handle, user, &existing)?;
        self.begin_ceremony(Some(user), CeremonyPurpose::Register, ceremony)
            .await
    }

    /// Whether the user has a passkey.
    pub async fn has_passkey(&self, user: &str) -> Result<bool, MetaError> {
        Ok(!self.store.passkeys(user).await?.is_empty())
    }

    /// Begins a passwordless sign-in (the "Sign in with a passkey" button), at most so many
    /// per client address and minute: anyone may ask, and each stores its challenge.
    pub async fn begin_passwordless(
        &self,
        client: Option<IpAddr>,
    ) -> Result<BegunCeremony, PasskeyFailure> {
        let relying_party = self.relying_party()?;
        if let Err(wait) = self.passwordless_starts.begin(client) {
            return Err(PasskeyFailure::Auth(AuthFailure::Throttled(wait)));
        }
        let ceremony = relying_party.start_discoverable()?;
        self.begin_ceremony(None, CeremonyPurpose::Discover, ceremony)
            .await
    }

    /// Finishes a passwordless sign-in: the passkey names its user (by the handle its
    /// authenticator keeps) and proves it (a signature over this challenge, with the user
    /// verified by PIN or biometric, so it is two factors in one). Returns the caller and
    /// how they signed in. Refusals are throttled per address (a passkey cannot be guessed,
    /// and no user name is given) and audited, as the user whose passkey the answer names
    /// when it names a known one.
    pub async fn finish_passwordless(
        &self,
        cookie: Option<&str>,
        answer: &str,
        client: Option<IpAddr>,
    ) -> Result<(Caller, SignInMethod), PasskeyFailure> {
        let relying_party = self.relying_party()?;
        if let Err(wait) = self.throttle.check_address(client) {
            self.audit(
                &Caller::anonymous(client),
                "login",
                "",
                "throttled",
                "passkey",
            );
            return Err(PasskeyFailure::Auth(AuthFailure::Throttled(wait)));
        }
        let mut claimed = None;
        let outcome = async {
            let state = self
                .take_ceremony(cookie, CeremonyPurpose::Discover, None)
                .await?;
            let assertion = RelyingParty::read_assertion(answer)?;
            let stored = self.stored_for(&assertion).await?;
            claimed = Some(stored.user.clone());
            let handle = assertion.user_handle.as_deref().unwrap_or_default();
            if self.store.user_of_passkey_handle(handle).await?.as_deref()
                != Some(stored.user.as_str())
            {
                return Err(PasskeyRefusal::UnknownCredential.into());
            }
            let used = relying_party.finish_discoverable(&assertion, &state, &stored.credential)?;
            self.record_use(&stored, &used).await?;
            Ok(stored)
        }
        .await;
        match outcome {
            Ok(stored) => {
                let principal = self
                    .user_principal(&stored.user)
                    .await?
                    .ok_or_else(|| PasskeyFailure::Refused("the user is disabled".into()))?;
                Ok((
                    Caller::of(principal, client),
                    SignInMethod::two_factors(format!("passkey \"{}\"", stored.name)),
                ))
            }
            Err(failure) => {
                if let PasskeyFailure::Refused(why) = &failure {
                    self.throttle.record_failure("", client);
                    let caller = match &claimed {
                        Some(user) => Caller::anonymous(client).named(user),
                        None => Caller::anonymous(client),
                    };
                    self.audit(&caller, "login", "", "failed", &format!("passkey: {why}"));
                }
                Err(failure)
            }
        }
    }

    /// Begins the second step of a sign-in with one of `user`'s passkeys.
    pub async fn begin_passkey_second_factor(
        &self,
        user: &str,
    ) -> Result<BegunCeremony, PasskeyFailure> {
        let relying_party = self.relying_party()?;
        let passkeys: Vec<String> = self
            .store
            .passkeys(user)
            .await?
            .into_iter()
            .map(|p| p.credential)
            .collect();
        if passkeys.is_empty() {
            return Err(PasskeyFailure::Refused(
                "this account has no passkey".into(),
            ));
        }
        let ceremony = relying_party.start_authentication(&passkeys)?;
        self.begin_ceremony(Some(user), CeremonyPurpose::Authenticate, ceremony)
            .await
    }

    /// Checks a passkey as `user`'s second factor (after their password), throttled with
    /// their codes and audited like them.
    pub async fn verify_passkey_second_factor(
        &self,
        user: &str,
        cookie: Option<&str>,
        answer: &str,
        client: Option<IpAddr>,
    ) -> Result<SecondFactor, PasskeyFailure> {
        let relying_party = self.relying_party()?;
        let key = super::second_factor::throttle_name(user);
        match self.throttle.check(&key, client) {
            Err(wait) => {
                let caller = Caller::anonymous(client).named(user);
                self.audit(&caller, "login", "", "throttled", "second factor: passkey");
                return Err(PasskeyFailure::Auth(AuthFailure::Throttled(wait)));
            }
            Ok(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Ok(_) => {}
        }
        let outcome = async {
            let state = self
                .take_ceremony(cookie, CeremonyPurpose::Authenticate, Some(user))
                .await?;
            let assertion = RelyingParty::read_assertion(answer)?;
            let stored = self.stored_for(&assertion).await?;
            if stored.user != user {
                return Err(PasskeyRefusal::UnknownCredential.into());
            }
            let used =
                relying_party.finish_authentication(&assertion, &state, &stored.credential)?;
            self.record_use(&stored, &used).await?;
            Ok(stored)
        }
        .await;
        match outcome {
            Ok(_) => {
                self.throttle.record_success(&key, client);
                Ok(SecondFactor::Passkey)
            }
            Err(failure) => {
                if let PasskeyFailure::Refused(why) = &failure {
                    self.throttle.record_failure(&key, client);
                    self.audit(
                        &Caller::anonymous(client).named(user),
                        "login",
                        "",
                        "failed",
                        &format!("second factor: passkey: {why}"),
                    );
                }
                Err(failure)
            }
        }
    }

    /// The stored passkey an answer names.
    async fn stored_for(&self, assertion: &Assertion) -> Result<StoredPasskey, PasskeyFailure> {
        self.store
            .passkey_by_credential_id(&assertion.credential_id)
            .await?
            .ok_or_else(|| PasskeyRefusal::UnknownCredential.into())
    }

    /// Records a passkey's use: its updated counter and backup state, and when.
    async fn record_use(
        &self,
        stored: &StoredPasskey,
        used: &crate::passkey::Used,
    ) -> Result<(), PasskeyFailure> {
        self.store
            .use_passkey(
                stored.id,
                &used.credential,
                used.counter,
                used.backed_up,
                now_millis(),
            )
            .await?;
        Ok(())
    }
}
