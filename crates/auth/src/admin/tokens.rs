//! Access tokens: minted for a user or a service account, optionally narrowed to patterns
//! and actions and given a lifetime; listed without their secrets; revoked.

use std::time::Duration;

use berth_meta::identity::{AccessToken, TokenKind, TokenOwner, TokenScope};
use berth_meta::now_millis;

use super::validate::{MAX_TOKEN_NAME_LENGTH, not_found, valid_actions, valid_pattern, valid_text};
use super::{Actor, AdminError, AdminResult, Administration, Change, CreatedToken, TokenInfo};
use crate::scope::ActionSet;
use crate::secret::{SecretKind, generate};

/// A new access token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub owner: TokenOwner,
    pub name: String,
    /// `(pattern, actions)` limits; empty means whatever the owner may do.
    pub scopes: Vec<(String, String)>,
    /// `None`: until revoked.
    pub expires_in: Option<Duration>,
}

impl Administration {
    /// Creates a token; its secret is in the result and nowhere else, ever.
    pub async fn create_token(&self, actor: &Actor, new: NewToken) -> AdminResult<CreatedToken> {
        // A new token grants nothing its owner may not already do.
        let change =
            Change::new(new.owner.subject(), format!("create token {:?}", new.name)).harmless();
        self.change(actor, change, async {
            match &new.owner {
                TokenOwner::User(name) => {
                    self.user(name).await?;
                }
                TokenOwner::ServiceAccount(name) => {
                    self.service_account(name).await?;
                }
            }
            let name = valid_text("token name", new.name.trim(), MAX_TOKEN_NAME_LENGTH)?;
            if name.is_empty() {
                return Err(AdminError::Invalid("a token needs a name".into()));
            }
            let scopes = new
                .scopes
                .iter()
                .map(|(pattern, actions)| {
                    let actions = ActionSet::parse_list(&valid_actions(actions)?).implied();
                    Ok(TokenScope {
                        pattern: valid_pattern(pattern)?,
                        // `admin` in a token limit means every action (limits only narrow).
                        actions: if actions.is_empty() {
                            ActionSet::ALL.to_list()
                        } else {
                            actions.to_list()
                        },
                    })
                })
                .collect::<AdminResult<Vec<_>>>()?;
            let now = now_millis();
            let expires_at = match new.expires_in {
                Some(lifetime) if lifetime.is_zero() => {
                    return Err(AdminError::Invalid(
                        "a token's lifetime cannot be zero".into(),
                    ));
                }
                Some(lifetime) => {
                    Some(now.saturating_add(lifetime.as_millis().min(i64::MAX as u128) as i64))
                }
                None => None,
            };
            let secret = generate(SecretKind::AccessToken);
            let token = AccessToken {
                id: secret.id,
                kind: TokenKind::Access,
                owner: new.owner.clone(),
                name: name.to_string(),
                secret_hash: secret.hash,
                scopes,
                expires_at,
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            };
            self.store.create_token(&token).await?;
            Ok(CreatedToken {
                info: token.into(),
                secret: secret.text,
            })
        })
        .await
    }

    pub async fn token(&self, id: &str) -> AdminResult<TokenInfo> {
        self.store
            .token(id)
            .await?
            .map(TokenInfo::from)
            .ok_or_else(|| not_found("token", id))
    }

    pub async fn list_tokens(&self, owner: Option<&TokenOwner>) -> AdminResult<Vec<TokenInfo>> {
        Ok(self
            .store
            .list_tokens(owner)
            .await?
            .into_iter()
            .map(TokenInfo::from)
            .collect())
    }

    /// Revokes a token (and so every registry token issued through it).
    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> AdminResult<TokenInfo> {
        self.change(
            actor,
            Change::new(format!("token:{id}"), "revoke token"),
            async {
                let token = self.token(id).await?;
                if token.revoked_at.is_none() {
                    self.store.revoke_token(id, now_millis()).await?;
                }
                self.token(id).await
            },
        )
        .await
    }
}
