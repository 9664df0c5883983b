//! Sign-ins that a directory or an OpenID provider vouches for.
//!
//! The OpenID providers' flow lives in the dashboard (`berth_web::single_sign_on`); it ends
//! in [`AccessService::external_sign_in`] like a directory sign-in.
//!
//! With `auth.berth.ldap`, a password is the directory's to check unless the name is a local
//! user's (local users, and every access token, never wait for the directory, so a directory
//! that is down locks out nobody else). A right directory password creates or refreshes the
//! berth user through [`Administration::provision`], the one function OpenID sign-ins use
//! too; a directory that no longer has the user disables it. Directory checks are not
//! remembered: removing a user or a group membership in the directory takes effect at the
//! next sign-in.

use std::net::IpAddr;
use std::sync::Arc;

use berth_meta::MetaError;

use super::authenticate::key_of;
use super::{AccessService, AuthFailure, Caller};
use crate::admin::{AdminError, Administration, valid_name};
use crate::external::{ExternalUser, GroupMapping};
use crate::ldap::{self, DirectoryAnswer, LdapDirectory};
use crate::oidc::OidcProvider;

/// What a sign-in with a name the directory cannot hold is refused with.
pub(super) const INVALID_DIRECTORY_NAME: &str =
    "invalid user name: use letters, digits and . _ - @, starting with a letter or digit";

impl AccessService {
    /// Users of `directory` sign in with their directory password.
    pub fn with_directory(mut self, directory: LdapDirectory) -> AccessService {
        self.directory = Some(Arc::new(directory));
        self
    }

    /// Users of these providers sign in to the dashboard through them.
    pub fn with_oidc_providers(mut self, providers: Vec<OidcProvider>) -> AccessService {
        self.oidc = providers.into_iter().map(Arc::new).collect();
        self
    }

    pub fn oidc_providers(&self) -> &[Arc<OidcProvider>] {
        &self.oidc
    }

    pub fn oidc_provider(&self, name: &str) -> Option<&Arc<OidcProvider>> {
        self.oidc.iter().find(|p| p.name() == name)
    }

    /// Whether the directory checks `user`'s password: one is configured and `user` is not a
    /// local user (whose remembered or stored password berth checks itself).
    pub(super) async fn directory_checks(
        &self,
        user: &str,
        password: &str,
    ) -> Result<bool, MetaError> {
        if self.directory.is_none() {
            return Ok(false);
        }
        let epoch = self.caches.epoch();
        if self
            .caches
            .passwords
            .get(&key_of(&[user, password]), epoch)
            .is_some()
        {
            return Ok(false);
        }
        Ok(match self.store.user(user).await? {
            None => true,
            Some(_) => self
                .store
                .external_identity(user)
                .await?
                .is_some_and(|identity| identity.source == ldap::SOURCE),
        })
    }

    /// Checks a password against the directory: the caller, provisioned; `None` for a wrong
    /// password or an unknown user (a known one is disabled).
    pub(super) async fn directory_password(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<Caller>, AuthFailure> {
        let Some(directory) = &self.directory else {
            return Ok(None);
        };
        let anonymous = Caller::anonymous(client).named(user);
        // Only names berth could hold reach the directory (escaped even so).
        if valid_name("user", user).is_err() {
            self.audit(&anonymous, "login", "", "failed", INVALID_DIRECTORY_NAME);
            return Err(AuthFailure::Invalid(INVALID_DIRECTORY_NAME));
        }
        let answer = match directory.sign_in(user, password).await {
            Ok(answer) => answer,
            Err(down) => {
                tracing::warn!(error = %down, "the LDAP directory cannot be reached");
                self.audit(
                    &anonymous,
                    "login",
                    "",
                    "failed",
                    "LDAP directory unavailable",
                );
                return Err(AuthFailure::SourceUnavailable("the LDAP directory"));
            }
        };
        match answer {
            DirectoryAnswer::User(external) => self
                .external_sign_in(&external, directory.mapping(), client)
                .await
                .map(Some),
            DirectoryAnswer::WrongPassword => Ok(None),
            DirectoryAnswer::Unknown => {
                if let Some(name) = self.store.user_of_external(ldap::SOURCE, user).await? {
                    let admin = Administration::new(Arc::clone(&self.store));
                    match admin.disable_gone_user(ldap::SOURCE, &name).await {
                        Ok(()) => self.invalidate(),
                        Err(e) => {
                            tracing::warn!(user = %name, error = %e, "a user gone from the LDAP directory could not be disabled")
                        }
                    }
                }
                Ok(None)
            }
        }
    }

    /// A sign-in that `external`'s source vouched for: the berth user is created or
    /// refreshed (teams, administrator flag) and returned as the caller. Refused, and
    /// audited, when the name is a local user's or another source's, or the user is
    /// disabled in berth.
    pub async fn external_sign_in(
        &self,
        external: &ExternalUser,
        mapping: &GroupMapping,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        let anonymous = Caller::anonymous(client).named(&external.login);
        let admin = Administration::new(Arc::clone(&self.store));
        let provisioned = match admin.provision(external, mapping).await {
            Ok(provisioned) => provisioned,
            Err(AdminError::Store(e)) => return Err(AuthFailure::Unavailable(e)),
            Err(e) => {
                self.audit(
                    &anonymous,
                    "login",
                    "",
                    "failed",
                    &format!("{}: {e}", external.source),
                );
                return Err(AuthFailure::Invalid(
                    "this name belongs to a user who signs in another way; ask an administrator",
                ));
            }
        };
        if provisioned.changed {
            self.invalidate();
        }
        let Some(principal) = self.user_principal(&provisioned.user).await? else {
            self.audit(
                &anonymous,
                "login",
                "",
                "failed",
                &format!("{}: the account is disabled", external.source),
            );
            return Err(AuthFailure::Invalid("the account is disabled"));
        };
        Ok(Caller::of(principal, client))
    }
}
