//! Passkeys: a user registers one (the browser's answer to a ceremony the access service
//! began, checked here by `webauthn-rs` and stored with the name the user gives it), lists
//! them with when each was made and last used, and removes one; an administrator's reset of
//! a user's second factors removes them all (`second_factors`). Registrations (also refused
//! ones) and removals are audited.

use berth_meta::now_millis;
use berth_meta::passkeys::{CeremonyPurpose, NewPasskey, StoredPasskey};
use serde::Serialize;

use super::validate::{not_found, valid_text};
use super::{Actor, AdminError, AdminResult, Administration, Change};
use crate::passkey::MAX_NAME_LENGTH;
use crate::service::PasskeyFailure;

/// A passkey as it may be shown.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PasskeyInfo {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Whether the authenticator said it is backed up (a synced passkey).
    pub backed_up: bool,
}

impl From<StoredPasskey> for PasskeyInfo {
    fn from(p: StoredPasskey) -> PasskeyInfo {
        PasskeyInfo {
            id: p.id,
            name: p.name,
            created_at: super::timestamp(p.created_at),
            last_used_at: p.last_used_at.map(super::timestamp),
            backed_up: p.backed_up,
        }
    }
}

fn user_target(name: &str) -> String {
    format!("user:{name}")
}

/// What a failed ceremony is, as a management error.
fn refused(failure: PasskeyFailure) -> AdminError {
    match failure {
        PasskeyFailure::Refused(why) => AdminError::Invalid(why),
        PasskeyFailure::Disabled => AdminError::Conflict(
            "passkeys are not enabled on this registry (auth.berth.passkeys, http.host)".into(),
        ),
        PasskeyFailure::Auth(crate::AuthFailure::Unavailable(e)) => AdminError::Store(e),
        PasskeyFailure::Auth(other) => AdminError::Invalid(format!("{other:?}")),
    }
}

impl Administration {
    /// The user's passkeys, oldest first.
    pub async fn passkeys(&self, name: &str) -> AdminResult<Vec<PasskeyInfo>> {
        self.store
            .user(name)
            .await?
            .ok_or_else(|| not_found("user", name))?;
        Ok(self
            .store
            .passkeys(name)
            .await?
            .into_iter()
            .map(PasskeyInfo::from)
            .collect())
    }

    /// Registers the passkey a browser made in answer to the ceremony its cookie names (begun
    /// by `AccessService::begin_passkey_registration` for the same user), named `passkey`.
    pub async fn register_passkey(
        &self,
        actor: &Actor,
        name: &str,
        passkey: &str,
        cookie: Option<&str>,
        answer: &str,
    ) -> AdminResult<PasskeyInfo> {
        let label = passkey.trim();
        self.change(
            actor,
            Change::new(user_target(name), format!("register passkey {label:?}")).harmless(),
            async {
                let label = valid_text("passkey name", label, MAX_NAME_LENGTH)?;
                if label.is_empty() {
                    return Err(AdminError::Invalid("a passkey needs a name".into()));
                }
                let access = self
                    .access
                    .as_ref()
                    .ok_or_else(|| refused(PasskeyFailure::Disabled))?;
                let relying_party = access
                    .passkeys()
                    .ok_or_else(|| refused(PasskeyFailure::Disabled))?;
                // The ceremony is used up first, whatever the answer: a challenge is answered once.
                let state = access
                    .take_ceremony(cookie, CeremonyPurpose::Register, Some(name))
                    .await
                    .map_err(refused)?;
                let registered = relying_party
                    .finish_registration(answer, &state)
                    .map_err(|why| refused(why.into()))?;
                let id = self
                    .store
                    .add_passkey(
                        name,
                        &NewPasskey {
                            credential_id: registered.credential_id,
                            name: label.to_string(),
                            credential: registered.credential,
                            counter: registered.counter,
                            backed_up: registered.backed_up,
                            created_at: now_millis(),
                        },
                    )
                    .await
                    .map_err(|e| match e {
                        berth_meta::MetaError::Conflict(_) => {
                            AdminError::Conflict("that passkey is registered here already".into())
                        }
                        other => other.into(),
                    })?;
                self.store
                    .passkeys(name)
                    .await?
                    .into_iter()
                    .find(|p| p.id == id)
                    .map(PasskeyInfo::from)
                    .ok_or_else(|| not_found("passkey", label))
            },
        )
        .await
    }

    /// Removes one of the user's passkeys.
    pub async fn remove_passkey(&self, actor: &Actor, name: &str, id: i64) -> AdminResult<()> {
        let label = self
            .store
            .passkeys(name)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .map_or_else(|| format!("#{id}"), |p| format!("{:?}", p.name));
        self.change(
            actor,
            Change::new(user_target(name), format!("remove passkey {label}")).harmless(),
            async {
                if self.store.delete_passkey(name, id).await? {
                    Ok(())
                } else {
                    Err(not_found("passkey", &id.to_string()))
                }
            },
        )
        .await
    }
}
