//! Directory and single sign-on users: the one function that turns what a source vouches for
//! at a sign-in ([`ExternalUser`]) into a berth user, its teams and its administrator flag.
//! LDAP and every OpenID provider go through it, with the source as the actor, so that each
//! change is validated, audited and empties the access caches like any other.
//!
//! Rules: a source never takes over a local user (or another source's user) of the same
//! name; the berth account follows the source's subject, not its name; a sign-in refreshes
//! email, display name, the teams the source's groups give and (when the source decides it)
//! the administrator flag; memberships an administrator gave are left alone.

use std::collections::BTreeSet;

use berth_meta::external_identities::ExternalIdentity;
use berth_meta::now_millis;

use super::users::NewUser;
use super::validate::{valid_email, valid_name};
use super::{Actor, AdminError, AdminResult, Administration, Change};
use crate::external::{ExternalUser, GroupMapping};

/// The berth user a sign-in stands for, and whether anything about it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub user: String,
    pub changed: bool,
}

impl Administration {
    /// Creates or refreshes the berth user `external` stands for. Refusals (a local user of
    /// that name, an invalid name) are audited and returned as `Conflict` or `Invalid`.
    pub async fn provision(
        &self,
        external: &ExternalUser,
        mapping: &GroupMapping,
    ) -> AdminResult<Provisioned> {
        let actor = Actor::Source(external.source.clone());
        let linked = self
            .store
            .user_of_external(&external.source, &external.subject)
            .await?;
        let mut changed = false;
        let name = match linked {
            Some(name) => name,
            None => {
                let name = external.login.clone();
                self.adopt(&actor, external, mapping, &name).await?;
                changed = true;
                name
            }
        };
        let user = self.user(&name).await?;
        // Who the source says the user is, refreshed at each sign-in (not audited: it grants
        // nothing).
        let identity = ExternalIdentity {
            source: external.source.clone(),
            subject: external.subject.clone(),
            display_name: external.display_name.clone(),
            synced_at: now_millis(),
        };
        self.store.link_external_identity(&name, &identity).await?;
        let email = external
            .email
            .as_deref()
            .and_then(|e| valid_email(e).ok())
            .map(str::to_string);
        if email.is_some() && email != user.email {
            self.change(
                &actor,
                Change::new(format!("user:{name}"), "set email from the source").harmless(),
                async { Ok(self.store.set_user_email(&name, email.as_deref()).await?) },
            )
            .await?;
        }
        changed |= self.sync_teams(&actor, external, mapping, &name).await?;
        if let Some(admin) = mapping.admin(&external.groups)
            && admin != user.admin
        {
            // The last administrator stays one (the refusal is audited); the sign-in goes on.
            changed |= self.set_user_admin(&actor, &name, admin).await.is_ok();
        }
        Ok(Provisioned {
            user: name,
            changed,
        })
    }

    /// First sign-in: creates the user and links it to its source, unless a user of that
    /// name exists (local, or another source's: never taken over).
    async fn adopt(
        &self,
        actor: &Actor,
        external: &ExternalUser,
        mapping: &GroupMapping,
        name: &str,
    ) -> AdminResult<()> {
        if let Err(e) = valid_name("user", name) {
            self.record(
                actor,
                &format!("user:{name}"),
                "failed",
                &format!("sign in: {e}"),
            )
            .await;
            return Err(e);
        }
        if self.store.user(name).await?.is_some() {
            let why = match self.store.external_identity(name).await? {
                None => format!(
                    "a local user named {name:?} exists: {} cannot sign in as it",
                    external.source
                ),
                Some(other) => format!(
                    "user {name:?} signs in through {}, not {}",
                    other.source, external.source
                ),
            };
            self.record(actor, &format!("user:{name}"), "failed", &why)
                .await;
            return Err(AdminError::Conflict(why));
        }
        let email = external
            .email
            .as_deref()
            .and_then(|e| valid_email(e).ok())
            .map(str::to_string);
        self.create_user(
            actor,
            NewUser {
                name: name.to_string(),
                password: None,
                email,
                admin: mapping.admin(&external.groups).unwrap_or(false),
            },
        )
        .await?;
        let identity = ExternalIdentity {
            source: external.source.clone(),
            subject: external.subject.clone(),
            display_name: external.display_name.clone(),
            synced_at: now_millis(),
        };
        self.store.link_external_identity(name, &identity).await?;
        Ok(())
    }

    /// Makes the memberships the source gives exactly those its groups give now; returns
    /// whether any changed.
    async fn sync_teams(
        &self,
        actor: &Actor,
        external: &ExternalUser,
        mapping: &GroupMapping,
        name: &str,
    ) -> AdminResult<bool> {
        let existing: BTreeSet<String> = self
            .store
            .list_teams()
            .await?
            .into_iter()
            .map(|team| team.name)
            .collect();
        let (wanted, missing) = mapping.teams_for(&external.groups, &existing);
        for team in &missing {
            self.create_team(actor, team).await?;
        }
        let had: BTreeSet<String> = self
            .store
            .synced_teams(name, &external.source)
            .await?
            .into_iter()
            .collect();
        let members: BTreeSet<String> = self.store.user_teams(name).await?.into_iter().collect();
        let mut changed = !missing.is_empty();
        for team in wanted.difference(&had) {
            if members.contains(team) {
                continue; // an administrator's membership already
            }
            let change = Change::new(
                format!("team:{team}"),
                format!("add member {name} (group at {})", external.source),
            );
            self.change(actor, change, async {
                Ok(self
                    .store
                    .add_synced_member(team, name, &external.source)
                    .await?)
            })
            .await?;
            changed = true;
        }
        for team in had.difference(&wanted) {
            let change = Change::new(
                format!("team:{team}"),
                format!(
                    "remove member {name} (no longer in the group at {})",
                    external.source
                ),
            );
            self.change(actor, change, async {
                Ok(self
                    .store
                    .remove_synced_member(team, name, &external.source)
                    .await?)
            })
            .await?;
            changed = true;
        }
        Ok(changed)
    }

    /// A directory says the account is gone: the user is disabled (its tokens and sessions
    /// stop working), audited. Enabling it again is an administrator's decision.
    pub async fn disable_gone_user(&self, source: &str, name: &str) -> AdminResult<()> {
        let actor = Actor::Source(source.to_string());
        self.change(
            &actor,
            Change::new(
                format!("user:{name}"),
                format!("disable user: gone from {source}"),
            ),
            async {
                self.refuse_if_last_admin(name, "disable").await?;
                self.store.set_user_disabled(name, true).await?;
                self.store.delete_user_sessions(name).await?;
                Ok(())
            },
        )
        .await
    }
}
