//! Turning credentials into a [`Caller`]: Basic (a password or an access token), registry
//! tokens (JWTs), access tokens as bearer tokens of the admin API; with throttling of
//! failures and caches that follow changes (see `cache`).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use berth_meta::identity::{AccessToken, TokenKind, TokenOwner};
use berth_meta::{MetaError, now_millis};
use sha2::{Digest, Sha256};

use super::caller::limits_of;
use super::second_factor::{FirstFactor, PASSWORD_NEEDS_SECOND_FACTOR};
use super::{AccessService, AuthFailure, Caller, Mode};
use crate::password::verify_stored;
use crate::pattern::Pattern;
use crate::policy::Principal;
use crate::registry_token::ResourceAccess;
use crate::scope::ActionSet;
use crate::secret::{PresentedSecret, SecretKind};

/// A verified registry token: who it stands for, what it grants, when it expires (Unix s).
#[derive(Clone)]
pub(super) struct VerifiedToken {
    principal: Principal,
    granted: Vec<ResourceAccess>,
    /// The limits of the access or refresh token it was issued through.
    limits: Option<Vec<(Pattern, ActionSet)>>,
    via: Option<String>,
    expires: u64,
}

pub(super) fn key_of(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn decode_basic(credentials: &str) -> Option<(String, String)> {
    let decoded = data_encoding::BASE64.decode(credentials.as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A valid argon2 hash to check unknown user names against.
static DUMMY_ARGON2: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::password::hash_password("no such user"));

impl AccessService {
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
        // Tokens cannot be guessed: only the address's failures count.
        if let Err(wait) = self.throttle.check_address(client) {
            return Err(AuthFailure::Throttled(wait));
        }
        match self.check_access_token(None, &secret).await? {
            Some(caller) => Ok(Caller { client, ..caller }),
            None => {
                self.throttle.record_failure("", client);
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

    /// Checks a user name and a password (or an access token in its place), with throttling,
    /// for clients that cannot give a second factor (`/v2/`, `/token`, the admin API): a user
    /// whom `auth.berth.requiremfa` covers must use an access token, not the password.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Caller, AuthFailure> {
        let (caller, method) = self.first_factor(user, password, client).await?;
        if method != FirstFactor::AccessToken && self.second_factor_required(&caller.principal) {
            self.audit(&caller, "login", "", "failed", PASSWORD_NEEDS_SECOND_FACTOR);
            return Err(AuthFailure::Invalid(PASSWORD_NEEDS_SECOND_FACTOR));
        }
        Ok(caller)
    }

    /// Checks the first factor of a sign-in (a password, or an access token in its place),
    /// with throttling; a second factor may follow (see `second_factor`).
    pub async fn first_factor(
        &self,
        user: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(Caller, FirstFactor), AuthFailure> {
        if user.is_empty() || password.is_empty() || user.len() > 256 || password.len() > 4096 {
            return Err(AuthFailure::Invalid("empty or oversized credentials"));
        }
        let anonymous = Caller::anonymous(client);
        // An access token in place of the password cannot be guessed: it is held to the
        // address's failures only, so that guesses at the user's password elsewhere never
        // stop it.
        let token = matches!(self.mode, Mode::Berth(_))
            && PresentedSecret::parse(password).is_some_and(|s| s.kind == SecretKind::AccessToken);
        let verdict = if token {
            self.throttle.check_address(client).map(|()| Duration::ZERO)
        } else {
            self.throttle.check(user, client)
        };
        match verdict {
            Err(wait) => {
                self.audit(&anonymous.named(user), "login", "", "throttled", "");
                return Err(AuthFailure::Throttled(wait));
            }
            // The name is being guessed from many addresses: slow down, never refuse.
            Ok(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Ok(_) => {}
        }
        let directory = !token && self.directory_checks(user, password).await?;
        let checked = if directory {
            self.directory_password(user, password, client).await?
        } else {
            self.check_credentials(user, password).await?
        };
        match checked {
            Some(caller) => {
                if !token {
                    self.throttle.record_success(user, client);
                }
                let method = match (token, directory) {
                    (true, _) => FirstFactor::AccessToken,
                    (false, true) => FirstFactor::DirectoryPassword,
                    (false, false) => FirstFactor::Password,
                };
                Ok((Caller { client, ..caller }, method))
            }
            None => {
                self.throttle
                    .record_failure(if token { "" } else { user }, client);
                self.audit(
                    &anonymous.named(user),
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
        match &self.mode {
            Mode::None => Ok(Some(Caller::anonymous(None))),
            Mode::Htpasswd { file, .. } => Ok(file.verify(user, password).then(|| {
                Caller::of(
                    Principal::User {
                        name: user.to_string(),
                        admin: false,
                        teams: Vec::new(),
                    },
                    None,
                )
            })),
            Mode::Berth(_) => match PresentedSecret::parse(password) {
                Some(secret) if secret.kind == SecretKind::AccessToken => {
                    self.check_access_token(Some(user), &secret).await
                }
                Some(_) => Ok(None),
                None => Ok(self
                    .check_password(user, password)
                    .await?
                    .map(|principal| Caller::of(principal, None))),
            },
        }
    }

    async fn check_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<Principal>, MetaError> {
        let key = key_of(&[user, password]);
        let epoch = self.caches.epoch();
        let remembered = || self.caches.passwords.get(&key, epoch).is_some();
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
                self.caches.passwords.insert(key, (), epoch);
            }
        }
        // Only the password check is remembered long; whether the user is still enabled,
        // an administrator, in which teams, comes from the identity cache, which every
        // change empties.
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
    pub(super) async fn check_access_token(
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
            limits: limits_of(&token),
            via: Some(token.id),
            ..Caller::of(principal, None)
        }))
    }

    /// A stored token matching the presented secret, unexpired and not revoked.
    pub(super) async fn valid_token(
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
    pub(super) async fn owner_principal(
        &self,
        owner: &TokenOwner,
    ) -> Result<Option<Principal>, MetaError> {
        Ok(self
            .owner_since(owner)
            .await?
            .map(|(principal, _)| principal))
    }

    /// The principal behind a token owner, and when it was created (Unix ms), if it still
    /// exists and is enabled.
    async fn owner_since(&self, owner: &TokenOwner) -> Result<Option<(Principal, i64)>, MetaError> {
        match owner {
            TokenOwner::User(name) => self.user_since(name).await,
            TokenOwner::ServiceAccount(name) => Ok(self
                .store
                .service_account(name)
                .await?
                .filter(|account| !account.disabled)
                .map(|account| {
                    (
                        Principal::ServiceAccount { name: account.name },
                        account.created_at,
                    )
                })),
        }
    }

    /// A user's principal (admin flag, teams), cached; `None` if gone or disabled.
    pub(super) async fn user_principal(&self, name: &str) -> Result<Option<Principal>, MetaError> {
        Ok(self.user_since(name).await?.map(|(principal, _)| principal))
    }

    async fn user_since(&self, name: &str) -> Result<Option<(Principal, i64)>, MetaError> {
        let epoch = self.caches.epoch();
        if let Some(cached) = self.caches.principals.get(&name.to_string(), epoch) {
            return Ok(cached);
        }
        let principal = match self.store.user(name).await? {
            Some(user) if !user.disabled => Some((
                Principal::User {
                    name: user.name,
                    admin: user.admin,
                    teams: self.store.user_teams(name).await?,
                },
                user.created_at,
            )),
            _ => None,
        };
        self.caches
            .principals
            .insert(name.to_string(), principal.clone(), epoch);
        Ok(principal)
    }

    /// The principal a registry token's `sub` names, and when it was created.
    pub(super) async fn subject_since(
        &self,
        subject: &str,
    ) -> Result<Option<(Principal, i64)>, MetaError> {
        if subject.is_empty() {
            return Ok(Some((Principal::Anonymous, 0)));
        }
        match subject.split_once(':') {
            Some(("user", name)) => self.user_since(name).await,
            Some(("service-account", name)) => {
                self.owner_since(&TokenOwner::ServiceAccount(name.to_string()))
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
        let epoch = self.caches.epoch();
        let cached = self
            .caches
            .registry_tokens
            .get(&key, epoch)
            .filter(|t| t.expires > now);
        let verified = match cached {
            Some(found) => found,
            None => {
                let claims = service
                    .tokens
                    .verify(token)
                    .map_err(|_| AuthFailure::Invalid("invalid or expired registry token"))?;
                // The token's subject must still exist and be enabled.
                let (principal, created) =
                    self.subject_since(&claims.sub)
                        .await?
                        .ok_or(AuthFailure::Invalid(
                            "the token's subject is gone or disabled",
                        ))?;
                // Issued to an earlier identity of that name: berth's tokens say when their
                // subject was created; others must at least be younger than it.
                let earlier = match claims.berth_created {
                    Some(at) => at != created,
                    None => {
                        claims.iat.saturating_mul(1000).saturating_add(999) < created.max(0) as u64
                    }
                };
                if earlier {
                    return Err(AuthFailure::Invalid(
                        "the token was issued to an earlier identity of that name",
                    ));
                }
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
                // What the token grants, as far as the rules and limits still allow it now
                // (a rule removed since it was issued takes its grant with it).
                let holder = Caller {
                    limits: limits.clone(),
                    ..Caller::of(principal.clone(), None)
                };
                let mut granted = Vec::with_capacity(claims.access.len());
                for mut grant in claims.access {
                    if grant.kind == "repository" {
                        let asked = ActionSet::parse_list(&grant.actions.join(","));
                        let still = self.allowed(&holder, &grant.name).await?.intersect(asked);
                        if still.is_empty() {
                            continue;
                        }
                        grant.actions = still.actions().map(|a| a.as_str().to_string()).collect();
                    }
                    granted.push(grant);
                }
                let verified = VerifiedToken {
                    principal,
                    granted,
                    limits,
                    via: claims.berth_via,
                    expires: claims.exp,
                };
                self.caches
                    .registry_tokens
                    .insert(key, verified.clone(), epoch);
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
}
