//! The access service: turns credentials into a caller and answers "may this caller do this
//! here?", issues registry tokens, and records every decision in the audit log.
//!
//! This is the one part of the crate that does I/O, through the [`IdentityStore`] trait.
//! Decisions on the hot path stay cheap: a registry token that covers the request is checked
//! with no database access (its signature check is cached); password checks (argon2, tens of
//! milliseconds by design) are cached briefly after they succeed; policy rules and a user's
//! teams are cached for a few seconds; audit events are written in batches, identical ones
//! counted rather than repeated.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use berth_meta::identity::{
    AccessToken, AuditEvent, IdentityStore, Session, TokenKind, TokenOwner, TokenScope,
};
use berth_meta::{MetaError, now_millis};
use sha2::{Digest, Sha256};

use crate::password::{Htpasswd, verify_stored};
use crate::pattern::Pattern;
use crate::policy::{self, Grant, Principal, Rule, Subject};
use crate::registry_token::{IssuedToken, RegistryTokens, ResourceAccess};
use crate::scope::{Action, ActionSet, Scope};
use crate::secret::{PresentedSecret, SecretKind};
use crate::throttle::LoginThrottle;

/// How long a successful password check is remembered (argon2 is slow on purpose). A
/// changed password can still be used this long on an instance that checked it.
const PASSWORD_CACHE: Duration = Duration::from_secs(60);
/// How long policy rules and team memberships are remembered before they are read again;
/// a change takes at most this long to reach every instance.
const IDENTITY_CACHE: Duration = Duration::from_secs(5);
/// Entries kept in each cache before it is cleared.
const CACHE_LIMIT: usize = 10_000;

/// The authentication mode, from the configuration.
pub enum Mode {
    /// No authentication: everyone may do everything.
    None,
    /// registry:2's htpasswd: Basic auth; every authenticated user may do everything.
    Htpasswd { realm: String, file: Htpasswd },
    /// berth's identity store and token service.
    Berth(Box<TokenService>),
}

pub struct TokenService {
    pub tokens: RegistryTokens,
    /// The token endpoint URL for challenges, when configured (else each request's own).
    pub realm: Option<String>,
    pub refresh_lifetime: Duration,
}

/// Who is asking, and what limits their credentials carry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// An access token's limits: what it may do at most.
    limits: Option<Vec<(Pattern, ActionSet)>>,
    /// A registry token's grants.
    granted: Option<Vec<ResourceAccess>>,
    /// The access or refresh token the credentials came from (its limits are `limits`),
    /// recorded in registry tokens issued to this caller so that the limits follow.
    via: Option<String>,
    pub client: Option<IpAddr>,
}

impl Caller {
    pub fn anonymous(client: Option<IpAddr>) -> Caller {
        Caller {
            principal: Principal::Anonymous,
            limits: None,
            granted: None,
            via: None,
            client,
        }
    }

    /// Whether the caller presented credentials berth accepted (an anonymous registry token
    /// counts: the client went through the token endpoint).
    pub fn presented_credentials(&self) -> bool {
        !self.principal.is_anonymous() || self.granted.is_some()
    }

    /// Whether the caller's credentials narrow what its principal may do (an access token
    /// with scopes, a registry token): such credentials cannot manage berth.
    pub fn is_limited(&self) -> bool {
        self.limits.is_some() || self.granted.is_some()
    }

    fn actor(&self) -> String {
        match &self.principal {
            Principal::Anonymous => "anonymous".into(),
            other => other.subject_name(),
        }
    }

    fn client_text(&self) -> String {
        self.client.map(|c| c.to_string()).unwrap_or_default()
    }

    fn within_limits(&self, repository: &str, actions: ActionSet) -> ActionSet {
        match &self.limits {
            None => actions,
            Some(limits) => limits
                .iter()
                .filter(|(pattern, _)| pattern.matches(repository))
                .fold(ActionSet::NONE, |set, (_, allowed)| set.union(*allowed))
                .intersect(actions),
        }
    }

    fn granted(&self, repository: &str) -> Option<ActionSet> {
        self.granted.as_ref().map(|grants| {
            grants
                .iter()
                .filter(|g| g.kind == "repository" && g.name == repository)
                .fold(ActionSet::NONE, |set, g| {
                    set.union(ActionSet::parse_list(&g.actions.join(",")))
                })
        })
    }
}

/// Why credentials were not accepted.
#[derive(Debug)]
pub enum AuthFailure {
    /// Wrong user, password or token; or a malformed `Authorization` header.
    Invalid(&'static str),
    /// Too many failures: try again after this long.
    Throttled(Duration),
    /// The identity store cannot be reached.
    Unavailable(MetaError),
}

impl From<MetaError> for AuthFailure {
    fn from(err: MetaError) -> Self {
        AuthFailure::Unavailable(err)
    }
}

/// The answer to "may the caller do this?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Anonymous and not allowed: logging in might help (401 with a challenge).
    LoginRequired,
    /// The presented registry token does not cover this, but its holder may get one that
    /// does (401 with a challenge naming the scope).
    ScopeMissing,
    /// Authenticated and not allowed (403).
    Forbidden,
}

/// How long a sign-in session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A session just begun: the cookie value and the CSRF token, shown once.
pub struct NewSession {
    pub cookie: String,
    /// State-changing requests made with the cookie must echo this in a header.
    pub csrf_token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// What a session cookie stands for.
pub struct SessionCaller {
    pub caller: Caller,
    /// Whether the request carried the session's CSRF token.
    pub csrf_ok: bool,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// What a token request returns.
pub struct TokenResponse {
    pub token: IssuedToken,
    /// A refresh token, when one was asked for (`docker login` keeps it).
    pub refresh_token: Option<String>,
}

struct Cached<T> {
    value: T,
    at: Instant,
}

/// A verified registry token: who it stands for, what it grants, when it expires (Unix s).
#[derive(Clone)]
struct VerifiedToken {
    principal: Principal,
    granted: Vec<ResourceAccess>,
    /// The limits of the access or refresh token it was issued through.
    limits: Option<Vec<(Pattern, ActionSet)>>,
    via: Option<String>,
    expires: u64,
}

pub struct AccessService {
    mode: Mode,
    store: Arc<dyn IdentityStore>,
    throttle: LoginThrottle,
    audit: crate::audit::AuditSink,
    passwords: Mutex<HashMap<[u8; 32], Cached<()>>>,
    /// Password checks (argon2) that may run at once.
    password_checks: tokio::sync::Semaphore,
    registry_tokens: Mutex<HashMap<[u8; 32], VerifiedToken>>,
    rules: RwLock<Option<Cached<Arc<Vec<Rule>>>>>,
    principals: Mutex<HashMap<String, Cached<Option<Principal>>>>,
}

fn key_of(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn fresh<T>(cached: &Cached<T>, lifetime: Duration) -> bool {
    cached.at.elapsed() < lifetime
}

fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= CACHE_LIMIT {
        map.clear();
    }
    map.insert(key, value);
}

impl AccessService {
    pub fn new(mode: Mode, store: Arc<dyn IdentityStore>) -> AccessService {
        AccessService {
            mode,
            audit: crate::audit::AuditSink::start(Arc::clone(&store)),
            store,
            throttle: LoginThrottle::default(),
            passwords: Mutex::new(HashMap::new()),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            ),
            registry_tokens: Mutex::new(HashMap::new()),
            rules: RwLock::new(None),
            principals: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    /// Records an event in the audit log (batched).
    pub fn audit(&self, caller: &Caller, action: &str, target: &str, outcome: &str, detail: &str) {
        self.audit.record(AuditEvent {
            at: now_millis(),
            actor: caller.actor(),
            action: action.into(),
            target: target.into(),
            client: caller.client_text(),
            outcome: outcome.into(),
            detail: detail.into(),
            count: 1,
        });
    }

    /// Writes out the audit events still waiting (for shutdown and tests).
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// Identifies the caller from an `Authorization` header value.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        let Some(authorization) = authorization else {
            return Ok(Caller::anonymous(client));
        };
        let (scheme, credentials) = authorization
            .trim()
            .split_once(' ')
            .unwrap_or((authorization, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = decode_basic(credentials)
                .ok_or(AuthFailure::Invalid("malformed Basic credentials"))?;
            return self.login(&user, &password, client).await;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.bearer(credentials, client).await;
        }
        Err(AuthFailure::Invalid("unsupported authorization scheme"))
    }

    /// Identifies the caller of the admin API: Basic (a password or an access token) or
    /// `Bearer <access token>`. Registry tokens are for `/v2/` only and are refused here.
    pub async fn authenticate_api(
        &self,
        authorization: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        let Some(text) = authorization else {
            return Ok(Caller::anonymous(client));
        };
        let (scheme, credentials) = text.trim().split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return self.authenticate(authorization, client).await;
        }
        let invalid = AuthFailure::Invalid("invalid, expired or revoked access token");
        let secret = PresentedSecret::parse(credentials.trim())
            .filter(|s| s.kind == SecretKind::AccessToken)
            .ok_or(AuthFailure::Invalid(
                "expected an access token (berth_...) as the bearer token",
            ))?;
        // Throttled like a login, under the token's public id.
        let throttle_key = format!("token:{}", secret.id);
        if let Err(wait) = self.throttle.check(&throttle_key, client) {
            return Err(AuthFailure::Throttled(wait));
        }
        match self.check_access_token(None, &secret).await? {
            Some(caller) => {
                self.throttle.record_success(&throttle_key, client);
                Ok(Caller { client, ..caller })
            }
            None => {
                self.throttle.record_failure(&throttle_key, client);
                self.audit(
                    &Caller::anonymous(client),
                    "login",
                    "",
                    "failed",
                    "invalid access token",
                );
                Err(invalid)
            }
        }
    }

    /// Checks a user name and a password (or an access token in its place), with throttling.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        if user.is_empty() || password.is_empty() || user.len() > 256 || password.len() > 4096 {
            return Err(AuthFailure::Invalid("empty or oversized credentials"));
        }
        let anonymous = Caller::anonymous(client);
        if let Err(wait) = self.throttle.check(user, client) {
            self.audit(&named(&anonymous, user), "login", "", "throttled", "");
            return Err(AuthFailure::Throttled(wait));
        }
        match self.check_credentials(user, password).await? {
            Some(caller) => {
                self.throttle.record_success(user, client);
                Ok(Caller { client, ..caller })
            }
            None => {
                self.throttle.record_failure(user, client);
                self.audit(
                    &named(&anonymous, user),
                    "login",
                    "",
                    "failed",
                    "wrong user name, password or token",
                );
                Err(AuthFailure::Invalid("wrong user name, password or token"))
            }
        }
    }

    async fn check_credentials(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Caller>, MetaError> {
        let caller = |principal| Caller {
            principal,
            limits: None,
            granted: None,
            via: None,
            client: None,
        };
        match &self.mode {
            Mode::None => Ok(Some(caller(Principal::Anonymous))),
            Mode::Htpasswd { file, .. } => Ok(file.verify(user, password).then(|| {
                caller(Principal::User {
                    name: user.to_string(),
                    admin: false,
                    teams: Vec::new(),
                })
            })),
            Mode::Berth(_) => match PresentedSecret::parse(password) {
                Some(secret) if secret.kind == SecretKind::AccessToken => {
                    self.check_access_token(Some(user), &secret).await
                }
                Some(_) => Ok(None),
                None => self
                    .check_password(user, password)
                    .await
                    .map(|p| p.map(caller)),
            },
        }
    }

    async fn check_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Principal>, MetaError> {
        let key = key_of(&[user, password]);
        let remembered = || {
            let cache = self.passwords.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&key).is_some_and(|c| fresh(c, PASSWORD_CACHE))
        };
        if !remembered() {
            // A few argon2 checks at a time: each takes about 19 MiB and tens of
            // milliseconds of CPU, and a burst of logins (a CI fleet starting at once) would
            // otherwise take hundreds of MB and every core. Waiting in line, a login of the
            // same user and password finds the first one's success remembered.
            let _slot = self
                .password_checks
                .acquire()
                .await
                .expect("the semaphore is never closed");
            if !remembered() {
                if !self.verify_password_of(user, password).await? {
                    return Ok(None);
                }
                let mut cache = self.passwords.lock().unwrap_or_else(|p| p.into_inner());
                insert_bounded(
                    &mut cache,
                    key,
                    Cached {
                        value: (),
                        at: Instant::now(),
                    },
                );
            }
        }
        // Only the password check is remembered long; whether the user is still enabled,
        // an administrator, in which teams, comes from the short-lived identity cache, so
        // that disabling a user takes effect within seconds on every instance.
        self.user_principal(user).await
    }

    /// Checks a password against the user's stored hash, on a blocking thread (argon2 is slow
    /// on purpose). Unknown users and users without a password take as long as a real check,
    /// so that which names exist cannot be told by timing.
    async fn verify_password_of(&self, user: &str, password: &str) -> Result<bool, MetaError> {
        let (hash, real) = match self.store.user(user).await? {
            Some(record) => match record.password_hash {
                Some(hash) => (hash, true),
                None => (DUMMY_ARGON2.clone(), false),
            },
            None => (DUMMY_ARGON2.clone(), false),
        };
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || verify_stored(&password, &hash))
            .await
            .unwrap_or(false);
        Ok(real && matches)
    }

    /// The caller an access token stands for; `user`, when given with it (Basic), must be
    /// its owner's name.
    async fn check_access_token(
        &self,
        user: Option<&str>,
        secret: &PresentedSecret,
    ) -> Result<Option<Caller>, MetaError> {
        let Some(token) = self.valid_token(secret, TokenKind::Access).await? else {
            return Ok(None);
        };
        let owner_name = match &token.owner {
            TokenOwner::User(name) | TokenOwner::ServiceAccount(name) => name,
        };
        if user.is_some_and(|user| user != owner_name) {
            return Ok(None);
        }
        let Some(principal) = self.owner_principal(&token.owner).await? else {
            return Ok(None);
        };
        Ok(Some(Caller {
            principal,
            limits: limits_of(&token),
            granted: None,
            via: Some(token.id),
            client: None,
        }))
    }

    /// A stored token matching the presented secret, unexpired and not revoked.
    async fn valid_token(
        &self,
        secret: &PresentedSecret,
        kind: TokenKind,
    ) -> Result<Option<AccessToken>, MetaError> {
        let Some(token) = self.store.token(&secret.id).await? else {
            return Ok(None);
        };
        let now = now_millis();
        let valid = token.kind == kind
            && secret.matches(&token.secret_hash)
            && token.revoked_at.is_none()
            && token.expires_at.is_none_or(|expiry| expiry > now);
        if !valid {
            return Ok(None);
        }
        // Last-used times are informative; a minute's precision is plenty and saves writes.
        if token.last_used_at.is_none_or(|at| now - at > 60_000) {
            let _ = self.store.touch_token(&token.id, now).await;
        }
        Ok(Some(token))
    }

    /// The principal behind a token owner, if it still exists and is enabled.
    async fn owner_principal(&self, owner: &TokenOwner) -> Result<Option<Principal>, MetaError> {
        match owner {
            TokenOwner::User(name) => self.user_principal(name).await,
            TokenOwner::ServiceAccount(name) => Ok(self
                .store
                .service_account(name)
                .await?
                .filter(|account| !account.disabled)
                .map(|account| Principal::ServiceAccount { name: account.name })),
        }
    }

    /// A user's principal (admin flag, teams), cached briefly; `None` if gone or disabled.
    async fn user_principal(&self, name: &str) -> Result<Option<Principal>, MetaError> {
        {
            let cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cached) = cache.get(name).filter(|c| fresh(c, IDENTITY_CACHE)) {
                return Ok(cached.value.clone());
            }
        }
        let principal = match self.store.user(name).await? {
            Some(user) if !user.disabled => Some(Principal::User {
                name: user.name,
                admin: user.admin,
                teams: self.store.user_teams(name).await?,
            }),
            _ => None,
        };
        let mut cache = self.principals.lock().unwrap_or_else(|p| p.into_inner());
        insert_bounded(
            &mut cache,
            name.to_string(),
            Cached {
                value: principal.clone(),
                at: Instant::now(),
            },
        );
        Ok(principal)
    }

    async fn principal_from_subject(&self, subject: &str) -> Result<Option<Principal>, MetaError> {
        if subject.is_empty() {
            return Ok(Some(Principal::Anonymous));
        }
        match subject.split_once(':') {
            Some(("user", name)) => self.user_principal(name).await,
            Some(("service-account", name)) => {
                self.owner_principal(&TokenOwner::ServiceAccount(name.to_string()))
                    .await
            }
            _ => Ok(None),
        }
    }

    async fn bearer(&self, token: &str, client: Option<IpAddr>) -> Result<Caller, AuthFailure> {
        let Mode::Berth(service) = &self.mode else {
            return Err(AuthFailure::Invalid(
                "bearer tokens are not accepted in this mode",
            ));
        };
        let key = key_of(&[token]);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cached = {
            let cache = self
                .registry_tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cache.get(&key).filter(|t| t.expires > now).cloned()
        };
        let verified =
            match cached {
                Some(found) => found,
                None => {
                    let claims = service
                        .tokens
                        .verify(token)
                        .map_err(|_| AuthFailure::Invalid("invalid or expired registry token"))?;
                    // The token's subject must still exist and be enabled.
                    let principal = self.principal_from_subject(&claims.sub).await?.ok_or(
                        AuthFailure::Invalid("the token's subject is gone or disabled"),
                    )?;
                    // Issued through an access or refresh token: its limits still apply, and it
                    // must still be valid.
                    let limits = match &claims.berth_via {
                        None => None,
                        Some(id) => {
                            let through = self.store.token(id).await?.filter(|t| {
                                t.revoked_at.is_none()
                                    && t.expires_at.is_none_or(|at| at > now_millis())
                                    && t.owner.subject() == claims.sub
                            });
                            let through = through.ok_or(AuthFailure::Invalid(
                                "the token it was issued through is revoked or expired",
                            ))?;
                            limits_of(&through)
                        }
                    };
                    let verified = VerifiedToken {
                        principal,
                        granted: claims.access,
                        limits,
                        via: claims.berth_via,
                        expires: claims.exp,
                    };
                    let mut cache = self
                        .registry_tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    insert_bounded(&mut cache, key, verified.clone());
                    verified
                }
            };
        Ok(Caller {
            principal: verified.principal,
            limits: verified.limits,
            granted: Some(verified.granted),
            via: verified.via,
            client,
        })
    }

    /// The policy rules, cached for a few seconds.
    async fn rules(&self) -> Result<Arc<Vec<Rule>>, MetaError> {
        if let Some(cached) = self
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && fresh(cached, IDENTITY_CACHE)
        {
            return Ok(Arc::clone(&cached.value));
        }
        let rules: Vec<Rule> = self
            .store
            .list_rules()
            .await?
            .into_iter()
            .filter_map(|rule| {
                Some(Rule {
                    subject: Subject::parse(&rule.subject)?,
                    pattern: Pattern::parse(&rule.pattern).ok()?,
                    grant: Grant::parse(&rule.actions)?,
                })
            })
            .collect();
        let rules = Arc::new(rules);
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            value: Arc::clone(&rules),
            at: Instant::now(),
        });
        Ok(rules)
    }

    /// Forgets cached rules and identities, after a change made through this instance.
    pub fn invalidate(&self) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.principals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.passwords
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.registry_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// What the caller may do on `repository`: policy, narrowed by the access token's limits.
    async fn allowed(&self, caller: &Caller, repository: &str) -> Result<ActionSet, MetaError> {
        let allowed = match &self.mode {
            Mode::None => ActionSet::ALL,
            Mode::Htpasswd { .. } if caller.principal.is_anonymous() => ActionSet::NONE,
            Mode::Htpasswd { .. } => ActionSet::ALL,
            Mode::Berth(_) => policy::allowed(&caller.principal, repository, &self.rules().await?),
        };
        Ok(caller.within_limits(repository, allowed))
    }

    /// What the caller may do on `repository`, without recording a decision (for pages
    /// that show or hide actions; taking one still goes through [`AccessService::authorize`]).
    pub async fn permissions(
        &self,
        caller: &Caller,
        repository: &str,
    ) -> Result<ActionSet, MetaError> {
        match caller.granted(repository) {
            Some(granted) => Ok(granted.intersect(self.allowed(caller, repository).await?)),
            None => self.allowed(caller, repository).await,
        }
    }

    /// May the caller take `action` on `repository`? Every answer goes to the audit log.
    pub async fn authorize(
        &self,
        caller: &Caller,
        repository: &str,
        action: Action,
    ) -> Result<Decision, MetaError> {
        if matches!(self.mode, Mode::None) {
            return Ok(Decision::Allowed);
        }
        let decision = match caller.granted(repository) {
            // A registry token decides by itself when it covers the request.
            Some(granted) if granted.contains(action) => Decision::Allowed,
            Some(_) if self.allowed(caller, repository).await?.contains(action) => {
                Decision::ScopeMissing
            }
            _ if caller.granted.is_none()
                && self.allowed(caller, repository).await?.contains(action) =>
            {
                Decision::Allowed
            }
            _ if caller.principal.is_anonymous() => Decision::LoginRequired,
            _ => Decision::Forbidden,
        };
        let outcome = if decision == Decision::Allowed {
            "allowed"
        } else {
            "denied"
        };
        self.audit(caller, action.as_str(), repository, outcome, "");
        Ok(decision)
    }

    /// A predicate telling which repositories the caller may pull, for listings and for
    /// finding a blob to mount.
    pub async fn pull_filter(
        &self,
        caller: &Caller,
    ) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, MetaError> {
        let everything = match &self.mode {
            Mode::None => true,
            Mode::Htpasswd { .. } => !caller.principal.is_anonymous(),
            Mode::Berth(_) => false,
        };
        let rules = match self.mode {
            Mode::Berth(_) => self.rules().await?,
            _ => Arc::new(Vec::new()),
        };
        let caller = caller.clone();
        Ok(move |repository: &str| {
            everything
                || caller
                    .within_limits(
                        repository,
                        policy::allowed(&caller.principal, repository, &rules),
                    )
                    .contains(Action::Pull)
        })
    }

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
                // Listing everything is for administrators (berth's own catalog filters
                // instead; this is for a registry:2 that trusts berth's tokens).
                Scope::Catalog if caller.principal.is_admin() => access.push(ResourceAccess {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }),
                Scope::Catalog => {}
            }
        }
        let token = service.tokens.issue(
            &caller.principal.subject_name(),
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

    /// Begins a session for a user who just logged in (people only: not service accounts,
    /// not credentials narrowed by token scopes).
    pub async fn begin_session(&self, caller: &Caller) -> Result<NewSession, AuthFailure> {
        let Principal::User { name, .. } = &caller.principal else {
            return Err(AuthFailure::Invalid("sessions are for users"));
        };
        if caller.is_limited() {
            return Err(AuthFailure::Invalid(
                "a session needs a password, not a limited access token",
            ));
        }
        let secret = crate::secret::generate(SecretKind::Session);
        let csrf_token = crate::secret::random_token(32);
        let now = now_millis();
        let expires_at = now + SESSION_LIFETIME.as_millis() as i64;
        self.store
            .create_session(&Session {
                id: secret.id,
                user: name.clone(),
                secret_hash: secret.hash,
                csrf_hash: crate::secret::hash(&csrf_token),
                client: caller.client_text(),
                created_at: now,
                expires_at,
            })
            .await?;
        self.audit(caller, "login", "", "allowed", "session");
        Ok(NewSession {
            cookie: secret.text,
            csrf_token,
            expires_at,
        })
    }

    /// The caller a session cookie stands for, if the session is live and its user still
    /// enabled; and whether `csrf_token` is the session's.
    pub async fn session(
        &self,
        cookie: &str,
        csrf_token: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<SessionCaller, AuthFailure> {
        let invalid = AuthFailure::Invalid("the session has ended; sign in again");
        let secret = PresentedSecret::parse(cookie)
            .filter(|s| s.kind == SecretKind::Session)
            .ok_or(AuthFailure::Invalid("malformed session cookie"))?;
        let session = self
            .store
            .session(&secret.id)
            .await?
            .filter(|session| secret.matches(&session.secret_hash))
            .filter(|session| session.expires_at > now_millis())
            .ok_or(invalid)?;
        let principal = self
            .user_principal(&session.user)
            .await?
            .ok_or(AuthFailure::Invalid(
                "the session's user is gone or disabled",
            ))?;
        let csrf_ok =
            csrf_token.is_some_and(|token| crate::secret::hash_matches(token, &session.csrf_hash));
        Ok(SessionCaller {
            caller: Caller {
                principal,
                limits: None,
                granted: None,
                via: None,
                client,
            },
            csrf_ok,
            expires_at: session.expires_at,
        })
    }

    /// Ends the session a cookie names (signing out).
    pub async fn end_session(&self, cookie: &str) -> Result<(), MetaError> {
        if let Some(secret) =
            PresentedSecret::parse(cookie).filter(|s| s.kind == SecretKind::Session)
        {
            self.store.delete_session(&secret.id).await?;
        }
        Ok(())
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
            principal,
            limits: limits_of(&token),
            granted: None,
            via: Some(token.id),
            client,
        })
    }
}

/// The limits an access or refresh token places on its owner; `None` when it has no scopes.
fn limits_of(token: &AccessToken) -> Option<Vec<(Pattern, ActionSet)>> {
    (!token.scopes.is_empty()).then(|| {
        token
            .scopes
            .iter()
            .filter_map(|s| {
                Some((
                    Pattern::parse(&s.pattern).ok()?,
                    ActionSet::parse_list(&s.actions),
                ))
            })
            .collect()
    })
}

/// A caller that is still anonymous but tried to be `user` (for audit lines of failures).
fn named(caller: &Caller, user: &str) -> Caller {
    Caller {
        principal: Principal::User {
            name: user.to_string(),
            admin: false,
            teams: Vec::new(),
        },
        ..caller.clone()
    }
}

/// A valid argon2 hash to check unknown user names against.
static DUMMY_ARGON2: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::password::hash_password("no such user"));

fn decode_basic(credentials: &str) -> Option<(String, String)> {
    let decoded = data_encoding::BASE64.decode(credentials.as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
