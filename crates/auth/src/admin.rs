//! Managing identities and access: users, teams, service accounts, access tokens, policy
//! rules, htpasswd imports and the audit log.
//!
//! This is the one layer both doors call: the command line (`berth user add ...`) and the
//! admin API (`/api/v1/...`). A name is validated, a password hashed, a rule checked and a
//! token minted the same way whichever door a change comes through; the doors only parse
//! their input and print or serialise what comes back.
//!
//! Safety rails a registry operator expects: the last enabled administrator cannot be
//! deleted, disabled or demoted (nobody could manage berth afterwards); policy rules must
//! name subjects that exist (a typo would silently grant nothing); token secrets are returned
//! once, at creation, and never again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_meta::identity::{
    AccessToken, AuditEvent, IdentityStore, PolicyRule, ServiceAccount, TokenKind, TokenOwner,
    TokenScope, User,
};
use berth_meta::{MetaError, now_millis};
use serde::Serialize;

use crate::password::{Htpasswd, hash_password};
use crate::pattern::Pattern;
use crate::policy::{Grant, Subject};
use crate::scope::ActionSet;
use crate::secret::{SecretKind, generate};

/// Passwords shorter than this are refused: berth is often reachable from a whole network.
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Longer passwords are refused (argon2 would hash megabytes happily; nobody types them).
pub const MAX_PASSWORD_LENGTH: usize = 1024;
const MAX_NAME_LENGTH: usize = 64;
const MAX_DESCRIPTION_LENGTH: usize = 1024;
const MAX_TOKEN_NAME_LENGTH: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong: a bad name, a weak password, an unknown action.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// It exists already, or the change would break a rule (the last administrator).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(MetaError),
}

impl From<MetaError> for AdminError {
    fn from(err: MetaError) -> Self {
        match err {
            MetaError::Conflict(why) => AdminError::Conflict(why),
            other => AdminError::Store(other),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

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
    fn new(user: User, teams: Vec<String>) -> UserInfo {
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
    fn new(id: i64, event: AuditEvent) -> AuditEntry {
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

/// A new user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    /// `None`: the user logs in with access tokens only (until a password is set).
    pub password: Option<String>,
    pub email: Option<String>,
    pub admin: bool,
}

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

/// Parses `user:<name>` or `service-account:<name>`.
pub fn parse_owner(text: &str) -> AdminResult<TokenOwner> {
    match text.split_once(':') {
        Some(("user", name)) => Ok(TokenOwner::User(valid_name("user", name)?.to_string())),
        Some(("service-account", name)) => Ok(TokenOwner::ServiceAccount(
            valid_name("service account", name)?.to_string(),
        )),
        _ => Err(AdminError::Invalid(format!(
            "invalid token owner {text:?}: expected user:<name> or service-account:<name>"
        ))),
    }
}

/// Names of users, teams and service accounts: what fits in a Basic credential, a policy
/// subject, a JWT `sub` and a log line without quoting: letters, digits and `._-@`, starting
/// with a letter or digit, at most 64 characters. (`:` would break Basic auth and subjects.)
pub fn valid_name<'a>(what: &str, name: &'a str) -> AdminResult<&'a str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name)
    } else {
        Err(AdminError::Invalid(format!(
            "invalid {what} name {name:?}: use 1 to {MAX_NAME_LENGTH} letters, digits and . _ - @, starting with a letter or digit"
        )))
    }
}

fn valid_password(password: &str) -> AdminResult<&str> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LENGTH {
        return Err(AdminError::Invalid(format!(
            "the password is too short: at least {MIN_PASSWORD_LENGTH} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LENGTH {
        return Err(AdminError::Invalid(format!(
            "the password is too long: at most {MAX_PASSWORD_LENGTH} bytes"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "the password contains control characters".into(),
        ));
    }
    Ok(password)
}

fn valid_email(email: &str) -> AdminResult<&str> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if ok {
        Ok(email)
    } else {
        Err(AdminError::Invalid(format!(
            "invalid email address {email:?}"
        )))
    }
}

fn valid_text<'a>(what: &str, text: &'a str, max: usize) -> AdminResult<&'a str> {
    if text.len() > max || text.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "invalid {what}: at most {max} bytes, no control characters"
        )));
    }
    Ok(text)
}

/// Checks an action list (`pull,push`, `delete`, `admin`, `*`) and returns it normalised.
fn valid_actions(list: &str) -> AdminResult<String> {
    Grant::parse(list)
        .map(|grant| grant.to_string())
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "invalid actions {list:?}: a comma-separated list of pull, push, delete, or admin"
            ))
        })
}

fn valid_pattern(pattern: &str) -> AdminResult<String> {
    Pattern::parse(pattern)
        .map(|p| p.to_string())
        .map_err(|e| AdminError::Invalid(format!("invalid repository pattern {pattern:?}: {e}")))
}

fn not_found(what: &str, name: &str) -> AdminError {
    AdminError::NotFound(format!("no {what} named {name:?}"))
}

/// Turns a store's "no such row" (`false`) into a not-found error.
fn found(exists: bool, what: &str, name: &str) -> AdminResult<()> {
    if exists {
        Ok(())
    } else {
        Err(not_found(what, name))
    }
}

pub struct Administration {
    store: Arc<dyn IdentityStore>,
}

impl Administration {
    pub fn new(store: Arc<dyn IdentityStore>) -> Administration {
        Administration { store }
    }

    // Users.

    pub async fn create_user(&self, new: NewUser) -> AdminResult<UserInfo> {
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
                MetaError::Conflict(_) => AdminError::Conflict(format!("user {name:?} exists")),
                other => other.into(),
            })?;
        self.user(name).await
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

    pub async fn set_password(&self, name: &str, password: &str) -> AdminResult<()> {
        let hash = hash_password(valid_password(password)?);
        found(self.store.set_password(name, &hash).await?, "user", name)?;
        // Whoever was signed in with the old password is signed out.
        self.store.delete_user_sessions(name).await?;
        Ok(())
    }

    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> AdminResult<UserInfo> {
        if disabled {
            self.refuse_if_last_admin(name, "disable").await?;
        }
        found(
            self.store.set_user_disabled(name, disabled).await?,
            "user",
            name,
        )?;
        self.user(name).await
    }

    pub async fn set_user_admin(&self, name: &str, admin: bool) -> AdminResult<UserInfo> {
        if !admin {
            self.refuse_if_last_admin(name, "demote").await?;
        }
        found(self.store.set_user_admin(name, admin).await?, "user", name)?;
        self.user(name).await
    }

    pub async fn delete_user(&self, name: &str) -> AdminResult<()> {
        self.refuse_if_last_admin(name, "delete").await?;
        found(self.store.delete_user(name).await?, "user", name)
    }

    /// Two operators removing the two last administrators at the same moment could both
    /// pass this check; `berth user add --admin` on the server repairs that.
    async fn refuse_if_last_admin(&self, name: &str, verb: &str) -> AdminResult<()> {
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

    // Teams.

    pub async fn create_team(&self, name: &str) -> AdminResult<TeamInfo> {
        let name = valid_name("team", name)?;
        self.store.create_team(name).await.map_err(|e| match e {
            MetaError::Conflict(_) => AdminError::Conflict(format!("team {name:?} exists")),
            other => other.into(),
        })?;
        self.team(name).await
    }

    pub async fn team(&self, name: &str) -> AdminResult<TeamInfo> {
        self.list_teams()
            .await?
            .into_iter()
            .find(|team| team.name == name)
            .ok_or_else(|| not_found("team", name))
    }

    pub async fn list_teams(&self) -> AdminResult<Vec<TeamInfo>> {
        Ok(self
            .store
            .list_teams()
            .await?
            .into_iter()
            .map(|team| TeamInfo {
                name: team.name,
                members: team.members,
            })
            .collect())
    }

    pub async fn delete_team(&self, name: &str) -> AdminResult<()> {
        found(self.store.delete_team(name).await?, "team", name)
    }

    pub async fn add_team_member(&self, team: &str, user: &str) -> AdminResult<TeamInfo> {
        self.team(team).await?;
        self.user(user).await?;
        self.store.add_team_member(team, user).await?;
        self.team(team).await
    }

    pub async fn remove_team_member(&self, team: &str, user: &str) -> AdminResult<TeamInfo> {
        let info = self.team(team).await?;
        if !info.members.iter().any(|m| m == user) {
            return Err(AdminError::NotFound(format!(
                "{user:?} is not a member of team {team:?}"
            )));
        }
        self.store.remove_team_member(team, user).await?;
        self.team(team).await
    }

    // Service accounts.

    pub async fn create_service_account(
        &self,
        name: &str,
        description: &str,
    ) -> AdminResult<ServiceAccountInfo> {
        let name = valid_name("service account", name)?;
        let description = valid_text("description", description, MAX_DESCRIPTION_LENGTH)?;
        self.store
            .create_service_account(name, description)
            .await
            .map_err(|e| match e {
                MetaError::Conflict(_) => {
                    AdminError::Conflict(format!("service account {name:?} exists"))
                }
                other => other.into(),
            })?;
        self.service_account(name).await
    }

    pub async fn service_account(&self, name: &str) -> AdminResult<ServiceAccountInfo> {
        self.store
            .service_account(name)
            .await?
            .map(ServiceAccountInfo::from)
            .ok_or_else(|| not_found("service account", name))
    }

    pub async fn list_service_accounts(&self) -> AdminResult<Vec<ServiceAccountInfo>> {
        Ok(self
            .store
            .list_service_accounts()
            .await?
            .into_iter()
            .map(ServiceAccountInfo::from)
            .collect())
    }

    pub async fn set_service_account_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> AdminResult<ServiceAccountInfo> {
        found(
            self.store
                .set_service_account_disabled(name, disabled)
                .await?,
            "service account",
            name,
        )?;
        self.service_account(name).await
    }

    pub async fn delete_service_account(&self, name: &str) -> AdminResult<()> {
        found(
            self.store.delete_service_account(name).await?,
            "service account",
            name,
        )
    }

    // Access tokens.

    pub async fn create_token(&self, new: NewToken) -> AdminResult<CreatedToken> {
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
                let actions = ActionSet::parse_list(&valid_actions(actions)?);
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
            owner: new.owner,
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

    pub async fn revoke_token(&self, id: &str) -> AdminResult<TokenInfo> {
        let token = self.token(id).await?;
        if token.revoked_at.is_none() {
            self.store.revoke_token(id, now_millis()).await?;
        }
        self.token(id).await
    }

    // Policy rules.

    pub async fn add_rule(
        &self,
        subject: &str,
        pattern: &str,
        actions: &str,
    ) -> AdminResult<RuleInfo> {
        let parsed = Subject::parse(subject).ok_or_else(|| {
            AdminError::Invalid(format!(
                "invalid subject {subject:?}: expected user:<name>, team:<name>, service-account:<name>, anonymous or authenticated"
            ))
        })?;
        match &parsed {
            Subject::User(name) => {
                self.user(name).await?;
            }
            Subject::Team(name) => {
                self.team(name).await?;
            }
            Subject::ServiceAccount(name) => {
                self.service_account(name).await?;
            }
            Subject::Anonymous | Subject::Authenticated => {}
        }
        let pattern = valid_pattern(pattern)?;
        let actions = valid_actions(actions)?;
        let id = self
            .store
            .add_rule(&parsed.to_string(), &pattern, &actions)
            .await?;
        self.list_rules()
            .await?
            .into_iter()
            .find(|rule| rule.id == id)
            .ok_or_else(|| not_found("rule", &id.to_string()))
    }

    pub async fn list_rules(&self) -> AdminResult<Vec<RuleInfo>> {
        Ok(self
            .store
            .list_rules()
            .await?
            .into_iter()
            .map(RuleInfo::from)
            .collect())
    }

    pub async fn remove_rule(&self, id: i64) -> AdminResult<()> {
        found(self.store.remove_rule(id).await?, "rule", &id.to_string())
    }

    // htpasswd.

    /// Creates a user for every entry of an htpasswd file (`htpasswd -B`), keeping the bcrypt
    /// hash so that everyone logs in with the password they had. Existing users are skipped,
    /// or get the file's password when `replace_passwords` is set. Nothing is written when the
    /// file itself is malformed.
    pub async fn import_htpasswd(
        &self,
        text: &str,
        replace_passwords: bool,
    ) -> AdminResult<HtpasswdImport> {
        let file = Htpasswd::parse(text).map_err(AdminError::Invalid)?;
        let mut entries: Vec<(&str, &str)> = file.entries().collect();
        entries.sort();
        let mut report = HtpasswdImport::default();
        for (name, hash) in entries {
            if let Err(e) = valid_name("user", name) {
                report.refused.push(e.to_string());
                continue;
            }
            match self.store.create_user(name, Some(hash), None, false).await {
                Ok(()) => report.created.push(name.to_string()),
                Err(MetaError::Conflict(_)) if replace_passwords => {
                    self.store.set_password(name, hash).await?;
                    report.updated.push(name.to_string());
                }
                Err(MetaError::Conflict(_)) => report.skipped.push(name.to_string()),
                Err(other) => return Err(other.into()),
            }
        }
        Ok(report)
    }

    // The audit log.

    /// The newest events first, `limit` of them, older than the event `before` when given.
    pub async fn audit(&self, limit: u32, before: Option<i64>) -> AdminResult<Vec<AuditEntry>> {
        Ok(self
            .store
            .list_audit(limit.clamp(1, 1000), before)
            .await?
            .into_iter()
            .map(|(id, event)| AuditEntry::new(id, event))
            .collect())
    }

    /// Deletes sessions that have expired; returns how many.
    pub async fn prune_sessions(&self) -> AdminResult<u64> {
        Ok(self.store.prune_sessions(now_millis()).await?)
    }

    /// Deletes audit events older than `retention`; returns how many.
    pub async fn prune_audit(&self, retention: Duration) -> AdminResult<u64> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        Ok(self.store.prune_audit(cutoff).await?)
    }
}
