//! Users whose identity comes from elsewhere (an LDAP directory, an OpenID provider): which
//! source and subject a berth user stands for, and which team memberships that source gave.
//! Part of the identity store: [`crate::IdentityStore`] requires it.

use async_trait::async_trait;

use crate::Result;

/// Who a berth user is at its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// `ldap` or `oidc:<provider>`.
    pub source: String,
    /// The source's identifier of the user (the directory's login, the provider's `sub`).
    pub subject: String,
    pub display_name: Option<String>,
    /// When the source last vouched for the user (Unix ms).
    pub synced_at: i64,
}

/// An OpenID Connect sign-in under way, between the redirect to the provider and its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoRequest {
    /// The SHA-256 of the browser's cookie.
    pub id: String,
    pub provider: String,
    pub state: String,
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where to go after signing in (a path on this site).
    pub next: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait ExternalIdentityStore: Send + Sync {
    /// The source a user comes from; `None` for local users (and unknown ones).
    async fn external_identity(&self, user: &str) -> Result<Option<ExternalIdentity>>;
    /// The berth user standing for `subject` at `source`.
    async fn user_of_external(&self, source: &str, subject: &str) -> Result<Option<String>>;
    /// Records (or refreshes) who `user` is at its source. `false` when there is no such
    /// user; `MetaError::Conflict` when another user stands for that subject.
    async fn link_external_identity(&self, user: &str, identity: &ExternalIdentity)
    -> Result<bool>;
    /// Sets a user's email address; `false` when there is no such user.
    async fn set_user_email(&self, user: &str, email: Option<&str>) -> Result<bool>;
    /// The teams whose membership `source` gave `user`, sorted.
    async fn synced_teams(&self, user: &str, source: &str) -> Result<Vec<String>>;
    /// Makes `user` a member of `team` as given by `source` (a membership an administrator
    /// gave stays theirs). `false` when the team or the user does not exist.
    async fn add_synced_member(&self, team: &str, user: &str, source: &str) -> Result<bool>;
    /// Removes a membership that `source` gave; `false` if it gave none.
    async fn remove_synced_member(&self, team: &str, user: &str, source: &str) -> Result<bool>;

    /// Records a sign-in under way (expired ones are deleted on the way).
    async fn create_sso_request(&self, request: &SsoRequest) -> Result<()>;
    /// Takes a sign-in under way, once: the request, if it exists and is unexpired at `now`.
    async fn take_sso_request(&self, id: &str, now: i64) -> Result<Option<SsoRequest>>;
}
