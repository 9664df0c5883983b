//! Who is asking (a [`Caller`]), why credentials were refused, and what a decision says.

use std::net::IpAddr;
use std::time::Duration;

use berth_meta::MetaError;
use berth_meta::identity::AccessToken;

use crate::pattern::Pattern;
use crate::policy::Principal;
use crate::registry_token::ResourceAccess;
use crate::scope::ActionSet;

/// Who is asking, and what limits their credentials carry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// An access token's limits: what it may do at most.
    pub(super) limits: Option<Vec<(Pattern, ActionSet)>>,
    /// A registry token's grants.
    pub(super) granted: Option<Vec<ResourceAccess>>,
    /// The access or refresh token the credentials came from (its limits are `limits`),
    /// recorded in registry tokens issued to this caller so that the limits follow.
    pub(super) via: Option<String>,
    pub client: Option<IpAddr>,
}

impl Caller {
    pub fn anonymous(client: Option<IpAddr>) -> Caller {
        Caller::of(Principal::Anonymous, client)
    }

    /// A caller with unnarrowed credentials.
    pub(super) fn of(principal: Principal, client: Option<IpAddr>) -> Caller {
        Caller {
            principal,
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

    /// `user:alice`, `service-account:ci` or `anonymous`, as the audit log names callers.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::Anonymous => "anonymous".into(),
            other => other.subject_name(),
        }
    }

    pub(super) fn client_text(&self) -> String {
        self.client.map(|c| c.to_string()).unwrap_or_default()
    }

    pub(super) fn within_limits(&self, repository: &str, actions: ActionSet) -> ActionSet {
        match &self.limits {
            None => actions,
            Some(limits) => limits
                .iter()
                .filter(|(pattern, _)| pattern.matches(repository))
                .fold(ActionSet::NONE, |set, (_, allowed)| set.union(*allowed))
                .intersect(actions),
        }
    }

    /// What a registry token grants on `repository` (`None`: not a registry token).
    pub(super) fn granted(&self, repository: &str) -> Option<ActionSet> {
        self.granted.as_ref().map(|grants| {
            grants
                .iter()
                .filter(|g| g.kind == "repository" && g.name == repository)
                .fold(ActionSet::NONE, |set, g| {
                    set.union(ActionSet::parse_list(&g.actions.join(",")))
                })
        })
    }

    /// Whether a registry token grants listing the catalog (`None`: not a registry token).
    pub(super) fn catalog_granted(&self) -> Option<bool> {
        self.granted.as_ref().map(|grants| {
            grants
                .iter()
                .any(|g| g.kind == "registry" && g.name == "catalog")
        })
    }

    /// A caller that is still anonymous but tried to be `user` (for audit lines of failures).
    pub(super) fn named(&self, user: &str) -> Caller {
        Caller {
            principal: Principal::User {
                name: user.to_string(),
                admin: false,
                teams: Vec::new(),
            },
            ..self.clone()
        }
    }
}

/// The limits an access or refresh token places on its owner; `None` when it has no scopes.
pub(super) fn limits_of(token: &AccessToken) -> Option<Vec<(Pattern, ActionSet)>> {
    (!token.scopes.is_empty()).then(|| {
        token
            .scopes
            .iter()
            .filter_map(|s| {
                Some((
                    Pattern::parse(&s.pattern).ok()?,
                    // Tokens made before push implied pull in limits, too.
                    ActionSet::parse_list(&s.actions).implied(),
                ))
            })
            .collect()
    })
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
    /// The directory or provider that vouches for the user cannot be reached (`the LDAP
    /// directory`); the cause is logged.
    SourceUnavailable(&'static str),
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

impl Decision {
    /// The audit log's outcome for this decision.
    pub(super) fn outcome(self) -> &'static str {
        if self == Decision::Allowed {
            "allowed"
        } else {
            "denied"
        }
    }
}
