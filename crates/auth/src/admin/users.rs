//! Users: created with a validated name and an argon2 password (or none), enabled and
//! disabled, promoted and demoted, deleted; never leaving berth without an administrator.

use berth_meta::MetaError;
use berth_meta::identity::User;

use super::validate::{found, not_found, valid_email, valid_name, valid_password};
use super::{Actor, AdminError, AdminResult, Administration, Change, SessionInfo, UserInfo};
use crate::password::hash_password;

/// A new user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    /// `None`: the user logs in with access tokens only (until a password is set).
    pub password: Option<String>,
    pub email: Option<String>,
    pub admin: bool,
}

fn user_target(name: &str) -> String {
    format!("user:{name}")
}

impl Administration {
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> AdminResult<UserInfo> {
        let operation = if new.admin {
            "create administrator"
        } else {
            "create user"
        };
        self.change(
            actor,
            Change::new(user_target(&new.name), operation),
            async {
                let name = valid_name("user", &new.name)?;
                let hash = match &new.password {
                    Some(password) => Some(hash_password(valid_password(password)?)),
                    None => None,
                };
                let email = new.email.as_deref().map(valid_email).transpose()?;
                self.store
                    .create_user(name, hash.as_deref(), email, new.admin)
                    .await
                    .map_err(|e| match e {
                        MetaError::Conflict(_) => {
                            AdminError::Conflict(format!("user {name:?} exists"))
                        }
                        other => other.into(),
                    })?;
                self.user(name).await
            },
        )
        .await
    }

    pub async fn user(&self, name: &str) -> AdminResult<UserInfo> {
        let user = self
            .store
            .user(name)
            .await?
            .ok_or_else(|| not_found("user", name))?;
        let teams = self.store.user_teams(name).await?;
        Ok(UserInfo::new(user, teams))
    }

    pub async fn list_users(&self) -> AdminResult<Vec<UserInfo>> {
        let teams = self.store.list_teams().await?;
        Ok(self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|user| {
                let member_of = teams
                    .iter()
                    .filter(|team| team.members.contains(&user.name))
                    .map(|team| team.name.clone())
                    .collect();
                UserInfo::new(user, member_of)
            })
            .collect())
    }

    /// Sets a password; whoever was signed in with the old one is signed out.
    pub async fn set_password(&self, actor: &Actor, name: &str, password: &str) -> AdminResult<()> {
        self.change(
            actor,
            Change::new(user_target(name), "set password"),
            async {
                let hash = hash_password(valid_password(password)?);
                found(self.store.set_password(name, &hash).await?, "user", name)?;
                self.store.delete_user_sessions(name).await?;
                Ok(())
            },
        )
        .await
    }

    /// A user's live sign-in sessions, most recently begun first.
    pub async fn sessions(&self, name: &str) -> AdminResult<Vec<SessionInfo>> {
        self.user(name).await?;
        Ok(self
            .store
            .user_sessions(name, berth_meta::now_millis())
            .await?
            .into_iter()
            .map(SessionInfo::from)
            .collect())
    }

    /// Ends one of a user's sessions (signing that browser out). A session of another user
    /// is not found.
    pub async fn end_session(&self, actor: &Actor, name: &str, id: &str) -> AdminResult<()> {
        self.change(
            actor,
            Change::new(user_target(name), "end session"),
            async {
                let owned = self
                    .store
                    .session(id)
                    .await?
                    .is_some_and(|session| session.user == name);
                if !owned || !self.store.delete_session(id).await? {
                    return Err(AdminError::NotFound(format!(
                        "user {name:?} has no session {id:?}"
                    )));
                }
                Ok(())
            },
        )
        .await
    }

    /// Signs a user out of every dashboard session; returns how many ended.
    pub async fn end_sessions(&self, actor: &Actor, name: &str) -> AdminResult<u64> {
        self.change(
            actor,
            Change::new(user_target(name), "end sessions"),
            async { Ok(self.store.delete_user_sessions(name).await?) },
        )
        .await
    }

    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        name: &str,
        disabled: bool,
    ) -> AdminResult<UserInfo> {
        let operation = if disabled {
            "disable user"
        } else {
            "enable user"
        };
        self.change(actor, Change::new(user_target(name), operation), async {
            if disabled {
                self.refuse_if_last_admin(name, "disable").await?;
            }
            found(
                self.store.set_user_disabled(name, disabled).await?,
                "user",
                name,
            )?;
            self.user(name).await
        })
        .await
    }

    pub async fn set_user_admin(
        &self,
        actor: &Actor,
        name: &str,
        admin: bool,
    ) -> AdminResult<UserInfo> {
        let operation = if admin { "promote user" } else { "demote user" };
        self.change(actor, Change::new(user_target(name), operation), async {
            if !admin {
                self.refuse_if_last_admin(name, "demote").await?;
            }
            found(self.store.set_user_admin(name, admin).await?, "user", name)?;
            self.user(name).await
        })
        .await
    }

    /// Deletes a user with their memberships, tokens, sessions and the rules naming them.
    pub async fn delete_user(&self, actor: &Actor, name: &str) -> AdminResult<()> {
        self.change(
            actor,
            Change::new(user_target(name), "delete user"),
            async {
                self.refuse_if_last_admin(name, "delete").await?;
                found(self.store.delete_user(name).await?, "user", name)
            },
        )
        .await
    }

    /// Two operators removing the two last administrators at the same moment could both
    /// pass this check; `berth user add --admin` on the server repairs that.
    pub(super) async fn refuse_if_last_admin(&self, name: &str, verb: &str) -> AdminResult<()> {
        let users = self.store.list_users().await?;
        let is_active_admin = |u: &User| u.admin && !u.disabled;
        let target_is_one = users.iter().any(|u| u.name == name && is_active_admin(u));
        let active_admins = users.iter().filter(|u| is_active_admin(u)).count();
        if target_is_one && active_admins == 1 {
            return Err(AdminError::Conflict(format!(
                "cannot {verb} {name:?}: it is the last enabled administrator"
            )));
        }
        Ok(())
    }
}
