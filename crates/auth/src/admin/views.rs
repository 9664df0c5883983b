//! What management operations return: identities, tokens and rules as they may be shown
//! (never a secret, except a token's once, at creation), with times as RFC 3339.

use std::time::{Duration, UNIX_EPOCH};

use berth_meta::identity::{
    AccessToken, AuditEvent, PolicyRule, ServiceAccount, Session, TokenScope, User,
};
use serde::Serialize;

/// A time (Unix milliseconds) as RFC 3339 (UTC, seconds), for people and JSON.
pub fn timestamp(millis: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn optional_timestamp(millis: Option<i64>) -> Option<String> {
    millis.map(timestamp)
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub email: Option<String>,
    pub admin: bool,
    pub disabled: bool,
    /// Whether the user can log in with a password (and not only with tokens).
    pub has_password: bool,
    pub teams: Vec<String>,
    pub created_at: String,
}

impl UserInfo {
    pub(super) fn new(user: User, teams: Vec<String>) -> UserInfo {
        UserInfo {
            has_password: user.password_hash.is_some(),
            name: user.name,
            email: user.email,
            admin: user.admin,
            disabled: user.disabled,
            teams,
            created_at: timestamp(user.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TeamInfo {
    pub name: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub name: String,
    pub description: String,
    pub disabled: bool,
    pub created_at: String,
}

impl From<ServiceAccount> for ServiceAccountInfo {
    fn from(account: ServiceAccount) -> Self {
        ServiceAccountInfo {
            name: account.name,
            description: account.description,
            disabled: account.disabled,
            created_at: timestamp(account.created_at),
        }
    }
}

/// A token as it may be shown: everything but its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    /// `access` (made by an operator) or `refresh` (kept by `docker login`).
    pub kind: &'static str,
    /// `user:<name>` or `service-account:<name>`.
    pub owner: String,
    pub name: String,
    /// Empty: whatever the owner may do.
    pub scopes: Vec<TokenScope>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A sign-in session as its user may see it (never its secrets).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    /// The address it was begun from.
    pub client: String,
    pub user_agent: Option<String>,
    pub created_at: String,
    pub last_seen_at: Option<String>,
    pub expires_at: String,
}

impl From<Session> for SessionInfo {
    fn from(session: Session) -> Self {
        SessionInfo {
            id: session.id,
            client: session.client,
            user_agent: session.user_agent,
            created_at: timestamp(session.created_at),
            last_seen_at: optional_timestamp(session.last_seen_at),
            expires_at: timestamp(session.expires_at),
        }
    }
}

impl From<AccessToken> for TokenInfo {
    fn from(token: AccessToken) -> Self {
        TokenInfo {
            id: token.id,
            kind: token.kind.as_str(),
            owner: token.owner.subject(),
            name: token.name,
            scopes: token.scopes,
            expires_at: optional_timestamp(token.expires_at),
            created_at: timestamp(token.created_at),
            last_used_at: optional_timestamp(token.last_used_at),
            revoked_at: optional_timestamp(token.revoked_at),
        }
    }
}

/// A token just created: the only time its secret is seen.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: i64,
    pub subject: String,
    pub pattern: String,
    pub actions: String,
    pub created_at: String,
}

impl From<PolicyRule> for RuleInfo {
    fn from(rule: PolicyRule) -> Self {
        RuleInfo {
            id: rule.id,
            subject: rule.subject,
            pattern: rule.pattern,
            actions: rule.actions,
            created_at: timestamp(rule.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub client: String,
    pub outcome: String,
    pub detail: String,
    /// Identical events close together are recorded once, counted.
    pub count: i64,
}

impl AuditEntry {
    pub(super) fn new(id: i64, event: AuditEvent) -> AuditEntry {
        AuditEntry {
            id,
            at: timestamp(event.at),
            actor: event.actor,
            action: event.action,
            target: event.target,
            client: event.client,
            outcome: event.outcome,
            detail: event.detail,
            count: event.count,
        }
    }
}

/// What an htpasswd import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HtpasswdImport {
    /// Users created with the file's bcrypt hash (they log in with their old password).
    pub created: Vec<String>,
    /// Existing users whose password was replaced by the file's (only when asked).
    pub updated: Vec<String>,
    /// Existing users left as they were.
    pub skipped: Vec<String>,
    /// Entries refused, with the reason (an invalid name).
    pub refused: Vec<String>,
}
