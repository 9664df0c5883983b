//! The identity store: users, teams, service accounts, tokens, policy rules, the audit log
//! and the token signing key, in the same database as the registry's metadata.

use async_trait::async_trait;

use crate::Result;
use crate::external_identities::ExternalIdentityStore;
use crate::passkeys::PasskeyStore;
use crate::password_resets::PasswordResetStore;
use crate::second_factors::SecondFactorStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub email: Option<String>,
    /// argon2id or bcrypt; `None` when the user cannot log in with a password.
    pub password_hash: Option<String>,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub name: String,
    /// Member user names, sorted.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub name: String,
    pub description: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenOwner {
    User(String),
    ServiceAccount(String),
}

impl TokenOwner {
    /// `user:<name>` or `service-account:<name>`: as policy subjects and registry tokens'
    /// `sub` name it.
    pub fn subject(&self) -> String {
        match self {
            TokenOwner::User(name) => format!("user:{name}"),
            TokenOwner::ServiceAccount(name) => format!("service-account:{name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// For CLIs, CI and scripts: used as a password.
    Access,
    /// What `docker login` keeps; exchanged at the token endpoint for registry tokens.
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// A limit a token places on what its owner may do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenScope {
    pub pattern: String,
    pub actions: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: String,
    pub kind: TokenKind,
    pub owner: TokenOwner,
    pub name: String,
    pub secret_hash: String,
    /// Empty: whatever the owner may do.
    pub scopes: Vec<TokenScope>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A signed-in user's session (a cookie), for the dashboard and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub secret_hash: String,
    /// The hash of the token that state-changing requests must echo in a header.
    pub csrf_hash: String,
    /// The address it was created from.
    pub client: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was last used (recorded at most about once a minute).
    pub last_seen_at: Option<i64>,
    /// The browser's `User-Agent` when it began, if it sent one.
    pub user_agent: Option<String>,
    /// Whether the sign-in that began it included a second factor (an authenticator code, a
    /// recovery code or a passkey), so that a requirement made later can end it.
    pub second_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub id: i64,
    /// `user:<name>`, `team:<name>`, `service-account:<name>`, `anonymous`, `authenticated`.
    pub subject: String,
    pub pattern: String,
    pub actions: String,
    pub created_at: i64,
}

/// One authentication or authorization decision (or several identical ones: `count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    /// `user:alice`, `service-account:ci`, `anonymous`, or the name a failed login tried.
    pub actor: String,
    /// `login`, `token`, `pull`, `push`, `delete`, `admin`...
    pub action: String,
    /// A repository, or what was managed.
    pub target: String,
    pub client: String,
    /// `allowed`, `denied`, `failed` (bad credentials), `throttled`.
    pub outcome: String,
    pub detail: String,
    pub count: i64,
}

#[async_trait]
/// Second factors and sign-ins halfway ([`SecondFactorStore`]) and password reset links
/// ([`PasswordResetStore`]) are part of it, and so are passkeys ([`PasskeyStore`]) and the
/// sources of directory and single sign-on users ([`ExternalIdentityStore`]).
pub trait IdentityStore:
    SecondFactorStore
    + PasswordResetStore
    + PasskeyStore
    + ExternalIdentityStore
    + Send
    + Sync
    + 'static
{
    // Users. Creating a name that exists is `MetaError::Conflict`.
    async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        email: Option<&str>,
        admin: bool,
    ) -> Result<()>;
    async fn user(&self, name: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn count_users(&self) -> Result<u64>;
    /// `false` when there is no such user (for the setters and the delete).
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool>;
    async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool>;
    async fn set_user_admin(&self, name: &str, admin: bool) -> Result<bool>;
    /// Deleting a user removes their memberships, tokens, sessions and the rules naming them
    /// (as deleting a team or a service account removes the rules naming it).
    async fn delete_user(&self, name: &str) -> Result<bool>;
    /// The teams a user belongs to, sorted.
    async fn user_teams(&self, name: &str) -> Result<Vec<String>>;

    // Teams.
    async fn create_team(&self, name: &str) -> Result<()>;
    async fn list_teams(&self) -> Result<Vec<Team>>;
    async fn delete_team(&self, name: &str) -> Result<bool>;
    /// `false` when the team or the user does not exist.
    async fn add_team_member(&self, team: &str, user: &str) -> Result<bool>;
    async fn remove_team_member(&self, team: &str, user: &str) -> Result<bool>;

    // Service accounts.
    async fn create_service_account(&self, name: &str, description: &str) -> Result<()>;
    async fn service_account(&self, name: &str) -> Result<Option<ServiceAccount>>;
    async fn list_service_accounts(&self) -> Result<Vec<ServiceAccount>>;
    async fn set_service_account_disabled(&self, name: &str, disabled: bool) -> Result<bool>;
    async fn delete_service_account(&self, name: &str) -> Result<bool>;

    // Tokens. Creating one for an owner that does not exist is `MetaError::Conflict`.
    async fn create_token(&self, token: &AccessToken) -> Result<()>;
    async fn token(&self, id: &str) -> Result<Option<AccessToken>>;
    /// Tokens of one owner, or every token; newest first.
    async fn list_tokens(&self, owner: Option<&TokenOwner>) -> Result<Vec<AccessToken>>;
    async fn revoke_token(&self, id: &str, at: i64) -> Result<bool>;
    async fn touch_token(&self, id: &str, at: i64) -> Result<()>;

    // Sessions. Creating one for a user that does not exist is `MetaError::Conflict`.
    async fn create_session(&self, session: &Session) -> Result<()>;
    async fn session(&self, id: &str) -> Result<Option<Session>>;
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// A user's live (unexpired at `now`) sessions, most recently begun first.
    async fn user_sessions(&self, user: &str, now: i64) -> Result<Vec<Session>>;
    /// Records that a session was used at `at`.
    async fn touch_session(&self, id: &str, at: i64) -> Result<()>;
    /// Ends every session of a user (after a password change); returns how many.
    async fn delete_user_sessions(&self, user: &str) -> Result<u64>;
    /// Deletes sessions that expired before `before`.
    async fn prune_sessions(&self, before: i64) -> Result<u64>;

    // Policy rules.
    async fn add_rule(&self, subject: &str, pattern: &str, actions: &str) -> Result<i64>;
    async fn list_rules(&self) -> Result<Vec<PolicyRule>>;
    async fn remove_rule(&self, id: i64) -> Result<bool>;

    // The audit log.
    async fn record_audit(&self, events: &[AuditEvent]) -> Result<()>;
    /// The newest events, up to `limit`, with ids below `before` when given.
    async fn list_audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<(i64, AuditEvent)>>;
    async fn prune_audit(&self, before: i64) -> Result<u64>;

    // Changes.
    /// The identity change counter: it moves (in the same transaction) with every change to
    /// users, teams, memberships, service accounts, token revocations and rules, whoever
    /// makes it. Caches of access decisions follow it.
    async fn identity_generation(&self) -> Result<i64>;

    // The token signing key.
    /// Stores a key unless one is stored already, and returns the stored one: instances
    /// starting together agree on one key.
    async fn signing_key_or_insert(
        &self,
        key_pem: &str,
        certificate_pem: &str,
    ) -> Result<(String, String)>;
}
