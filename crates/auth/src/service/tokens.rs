//! Issuing registry tokens (the Docker token protocol) and the refresh tokens `docker login`
//! keeps instead of a password.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use berth_meta::identity::{AccessToken, TokenKind, TokenOwner, TokenScope};
use berth_meta::{MetaError, now_millis};

use super::caller::limits_of;
use super::{AccessService, AuthFailure, Caller, Mode};
use crate::policy::Principal;
use crate::registry_token::{IssuedToken, ResourceAccess};
use crate::scope::Scope;
use crate::secret::{PresentedSecret, SecretKind};

/// What a token request returns.
pub struct TokenResponse {
    pub token: IssuedToken,
    /// A refresh token, when one was asked for (`docker login` keeps it).
    pub refresh_token: Option<String>,
}

impl AccessService {
    /// Issues a registry token for the caller: for each scope, what was asked and is allowed
    /// (asking for more is not an error; the token just grants less).
    pub async fn issue_token(
        &self,
        caller: &Caller,
        scopes: &[Scope],
        offline: bool,
    ) -> Result<TokenResponse, AuthFailure> {
        let Mode::Berth(service) = &self.mode else {
            return Err(AuthFailure::Invalid("this registry does not issue tokens"));
        };
        let mut access = Vec::new();
        for scope in scopes {
            match scope {
                Scope::Repository { name, actions } => {
                    let granted = self.allowed(caller, name).await?.intersect(*actions);
                    self.audit(
                        caller,
                        "token",
                        name,
                        if granted.is_empty() {
                            "denied"
                        } else {
                            "allowed"
                        },
                        &granted.to_list(),
                    );
                    if !granted.is_empty() {
                        access.push(ResourceAccess {
                            kind: "repository".into(),
                            name: name.clone(),
                            actions: granted.actions().map(|a| a.as_str().to_string()).collect(),
                        });
                    }
                }
                // The catalog: administrators list everything (`*`, which a registry:2 that
                // trusts berth's tokens also honours); everyone else gets `list`, which
                // berth's own catalog takes as "list what you may pull" and registry:2 does
                // not know (so it lists them nothing).
                Scope::Catalog => access.push(ResourceAccess {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec![
                        if caller.principal.is_admin() {
                            "*"
                        } else {
                            "list"
                        }
                        .into(),
                    ],
                }),
            }
        }
        let subject = caller.principal.subject_name();
        let created = match caller.principal {
            Principal::Anonymous => None,
            _ => self
                .subject_since(&subject)
                .await?
                .map(|(_, created)| created),
        };
        let token = service.tokens.issue(
            &subject,
            created,
            access,
            caller.via.as_deref(),
            SystemTime::now(),
        );
        let refresh_token = if offline && !caller.principal.is_anonymous() {
            Some(
                self.create_refresh_token(caller, service.refresh_lifetime)
                    .await?,
            )
        } else {
            None
        };
        Ok(TokenResponse {
            token,
            refresh_token,
        })
    }

    async fn create_refresh_token(
        &self,
        caller: &Caller,
        lifetime: Duration,
    ) -> Result<String, MetaError> {
        let owner = match &caller.principal {
            Principal::User { name, .. } => TokenOwner::User(name.clone()),
            Principal::ServiceAccount { name } => TokenOwner::ServiceAccount(name.clone()),
            Principal::Anonymous => unreachable!("anonymous callers get no refresh token"),
        };
        let secret = crate::secret::generate(SecretKind::RefreshToken);
        let now = now_millis();
        self.store
            .create_token(&AccessToken {
                id: secret.id,
                kind: TokenKind::Refresh,
                owner,
                name: "docker login".into(),
                secret_hash: secret.hash,
                scopes: caller
                    .limits
                    .iter()
                    .flatten()
                    .map(|(pattern, actions)| TokenScope {
                        pattern: pattern.to_string(),
                        actions: actions.to_list(),
                    })
                    .collect(),
                expires_at: Some(now + lifetime.as_millis() as i64),
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(secret.text)
    }

    /// The caller a refresh token stands for.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        let invalid = AuthFailure::Invalid("invalid, expired or revoked refresh token");
        let secret =
            PresentedSecret::parse(refresh_token).filter(|s| s.kind == SecretKind::RefreshToken);
        let Some(secret) = secret else {
            return Err(invalid);
        };
        let Some(token) = self.valid_token(&secret, TokenKind::Refresh).await? else {
            return Err(invalid);
        };
        let principal = self.owner_principal(&token.owner).await?.ok_or(invalid)?;
        Ok(Caller {
            limits: limits_of(&token),
            via: Some(token.id),
            ..Caller::of(principal, client)
        })
    }
}
