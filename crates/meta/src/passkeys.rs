//! Passkeys (WebAuthn credentials) of users and the ceremonies in progress (registering one,
//! signing in with one). Part of the identity store: [`crate::IdentityStore`] requires it.
//! What a credential holds is webauthn-rs's business (`berth_auth::passkey`): the store
//! keeps its serialised form as text, with what people read beside it.

use async_trait::async_trait;

use crate::Result;

/// A user's passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    pub id: i64,
    pub user: String,
    /// The authenticator's id of the credential, base64url.
    pub credential_id: String,
    /// The name its owner gave it.
    pub name: String,
    /// The verified credential, serialised by webauthn-rs.
    pub credential: String,
    /// The signature counter the last use reported.
    pub counter: i64,
    /// Whether the last use said the credential is backed up (synced passkeys).
    pub backed_up: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A new passkey of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPasskey {
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub counter: i64,
    pub backed_up: bool,
    pub created_at: i64,
}

/// What a ceremony in progress is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// A signed-in user (or one enrolling at sign-in) registers a passkey.
    Register,
    /// A user who gave a password signs in with a passkey as the second factor.
    Authenticate,
    /// Anyone signs in with a passkey alone (it names its user).
    Discover,
}

impl CeremonyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Register => "register",
            CeremonyPurpose::Authenticate => "authenticate",
            CeremonyPurpose::Discover => "discover",
        }
    }

    pub fn parse(text: &str) -> Option<CeremonyPurpose> {
        match text {
            "register" => Some(CeremonyPurpose::Register),
            "authenticate" => Some(CeremonyPurpose::Authenticate),
            "discover" => Some(CeremonyPurpose::Discover),
            _ => None,
        }
    }
}

/// A ceremony in progress: the challenge's server side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCeremony {
    /// The SHA-256 of the secret in the browser's cookie.
    pub id: String,
    /// Whose it is; `None` for a passwordless sign-in.
    pub user: Option<String>,
    pub purpose: CeremonyPurpose,
    /// webauthn-rs's state of the ceremony (the challenge and what the answer must match).
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The user's WebAuthn user handle, `new_handle` stored first if they have none; `None`
    /// when there is no such user.
    async fn passkey_handle(&self, user: &str, new_handle: &str) -> Result<Option<String>>;
    /// The user a handle belongs to.
    async fn user_of_passkey_handle(&self, handle: &str) -> Result<Option<String>>;
    /// Adds a passkey: its id. A credential id registered already (by anyone) is
    /// `MetaError::Conflict`, and so is a user that does not exist.
    async fn add_passkey(&self, user: &str, passkey: &NewPasskey) -> Result<i64>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user: &str) -> Result<Vec<StoredPasskey>>;
    async fn passkey_by_credential_id(&self, credential_id: &str) -> Result<Option<StoredPasskey>>;
    /// Records a use: the credential as updated (counter, backup state) and when.
    async fn use_passkey(
        &self,
        id: i64,
        credential: &str,
        counter: i64,
        backed_up: bool,
        at: i64,
    ) -> Result<bool>;
    /// Removes one passkey of the user; `false` when the user has no such passkey.
    async fn delete_passkey(&self, user: &str, id: i64) -> Result<bool>;
    /// Removes every passkey of the user and their ceremonies in progress; whether there
    /// were passkeys.
    async fn delete_passkeys(&self, user: &str) -> Result<bool>;

    /// Starts a ceremony. One for a user that does not exist is `MetaError::Conflict`.
    /// Expired ones are deleted on the way.
    async fn create_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> Result<()>;
    /// Takes a ceremony out (each is used once, whatever its outcome): it, if it existed
    /// and had not expired at `now`.
    async fn take_passkey_ceremony(&self, id: &str, now: i64) -> Result<Option<PasskeyCeremony>>;
}
