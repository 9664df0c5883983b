//! Password reset links: a single-use token (64 hex digits, stored as its SHA-256) that
//! expires in 30 minutes, made for a user with an email address (asked for by the user, who
//! gives a name or an address, or sent by an administrator), and used to set a new password,
//! which ends the user's sessions and their other links. Making and using one are audited.

use std::net::IpAddr;
use std::time::Duration;

use berth_meta::now_millis;

use super::validate::{not_found, valid_password};
use super::{Actor, AdminError, AdminResult, Administration, Change};
use crate::password::hash_password;

/// How long a reset link works.
pub const RESET_LINK_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A reset link just made: the token goes in the link, mailed to `email`.
#[derive(Debug, Clone)]
pub struct ResetLink {
    pub user: String,
    pub email: String,
    pub token: String,
}

/// Whether a token has the shape of one (so that anything else is refused unread).
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Administration {
    /// A reset link for the enabled user whom `who` names (a user name, or an email address
    /// in any case), if they have an email address; `None` otherwise. The door answers the
    /// same either way, so that nobody learns which accounts exist.
    pub async fn password_reset_for(
        &self,
        actor: &Actor,
        who: &str,
    ) -> AdminResult<Option<ResetLink>> {
        let who = who.trim();
        if who.is_empty() || who.len() > 256 {
            return Ok(None);
        }
        let user = match self.store.user(who).await? {
            Some(user) => Some(user),
            None if who.contains('@') => self.store.list_users().await?.into_iter().find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|email| email.eq_ignore_ascii_case(who))
            }),
            None => None,
        };
        match user {
            Some(user) if !user.disabled && user.email.is_some() => {
                Ok(Some(self.make_reset_link(actor, &user.name).await?))
            }
            _ => Ok(None),
        }
    }

    /// A reset link for `name`, made by an administrator (who sends it from the user's row).
    pub async fn password_reset_of(&self, actor: &Actor, name: &str) -> AdminResult<ResetLink> {
        let user = self
            .store
            .user(name)
            .await?
            .ok_or_else(|| not_found("user", name))?;
        if user.email.is_none() {
            return Err(AdminError::Conflict(format!(
                "{name} has no email address to send a link to"
            )));
        }
        self.make_reset_link(actor, name).await
    }

    async fn make_reset_link(&self, actor: &Actor, name: &str) -> AdminResult<ResetLink> {
        self.change(
            actor,
            Change::new(format!("user:{name}"), "send password reset link").harmless(),
            async {
                let user = self
                    .store
                    .user(name)
                    .await?
                    .ok_or_else(|| not_found("user", name))?;
                let token = crate::secret::random_token(32);
                let now = now_millis();
                self.store
                    .create_password_reset(
                        &crate::secret::hash(&token),
                        name,
                        now,
                        now + RESET_LINK_LIFETIME.as_millis() as i64,
                    )
                    .await?;
                Ok(ResetLink {
                    user: user.name,
                    email: user.email.unwrap_or_default(),
                    token,
                })
            },
        )
        .await
    }

    /// The user a reset link is for, while it works (unused, unexpired).
    pub async fn reset_link_user(&self, token: &str) -> AdminResult<Option<String>> {
        if !well_formed(token) {
            return Ok(None);
        }
        Ok(self
            .store
            .password_reset(&crate::secret::hash(token))
            .await?
            .filter(|r| r.used_at.is_none() && r.expires_at > now_millis())
            .map(|r| r.user))
    }

    /// Sets a new password through a reset link, which is used up (as are the user's other
    /// links); the user's sessions end. Returns the user's name.
    pub async fn reset_password_with(
        &self,
        token: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> AdminResult<String> {
        let expired = || {
            AdminError::Conflict(
                "this link has expired or was used already: ask for a new one".into(),
            )
        };
        // The password is checked first, so that a weak one does not use the link up.
        let hash = hash_password(valid_password(password)?);
        let Some(user) = self.reset_link_user(token).await? else {
            return Err(expired());
        };
        let actor = Actor::Principal {
            subject: format!("user:{user}"),
            client,
        };
        self.change(
            &actor,
            Change::new(format!("user:{user}"), "set password through a reset link"),
            async {
                let used = self
                    .store
                    .use_password_reset(&crate::secret::hash(token), now_millis())
                    .await?
                    .ok_or_else(expired)?;
                if !self.store.set_password(&used, &hash).await? {
                    return Err(not_found("user", &used));
                }
                self.store.delete_user_sessions(&used).await?;
                Ok(used)
            },
        )
        .await
    }
}
