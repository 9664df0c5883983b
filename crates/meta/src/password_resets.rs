//! Password reset links (sent by email): single-use tokens, stored as their SHA-256, that
//! expire. Part of the identity store: [`crate::IdentityStore`] requires it.

use async_trait::async_trait;

use crate::Result;

/// A reset link's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub user: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[async_trait]
pub trait PasswordResetStore: Send + Sync {
    /// `id` is the hash of the link's token. Creating one for a user that does not exist is
    /// `MetaError::Conflict`. Expired ones are deleted on the way.
    async fn create_password_reset(
        &self,
        id: &str,
        user: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()>;
    async fn password_reset(&self, id: &str) -> Result<Option<PasswordReset>>;
    /// Uses a link up: the user it is for, if it was unused and unexpired at `now`; the
    /// user's other links stop working too.
    async fn use_password_reset(&self, id: &str, now: i64) -> Result<Option<String>>;
}
