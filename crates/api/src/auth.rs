//! Authentication and authorization of `/v2/` requests.
//!
//! Every request is authenticated first (no credentials is the anonymous caller). Each
//! endpoint and method needs one action on one repository; the access service decides, and
//! a refusal becomes the answer clients of the Docker token protocol expect: `401` with a
//! `WWW-Authenticate` challenge naming the token endpoint and the scope to ask for (so that
//! docker, podman and skopeo fetch a token and retry), or `403 DENIED` when the caller is
//! known and simply not allowed.

use berth_auth::{AccessService, Action, AuthFailure, Caller, Decision, Mode};
use berth_oci::{ErrorCode, RegistryError, RepositoryName};
use http::request::Parts;

use crate::AppState;
use crate::urls::ConnectionInfo;

/// The actions a client should ask for to do `action`: pushing needs pulling too (clients
/// check which blobs exist before uploading them).
fn scope_actions(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull",
        Action::Push => "pull,push",
        Action::Delete => "delete",
    }
}

/// The token endpoint's URL: configured, or this request's public base URL plus `/token`.
pub(crate) fn realm(state: &AppState, parts: &Parts) -> String {
    match state.access.mode() {
        Mode::Berth(service) => service
            .realm
            .clone()
            .unwrap_or_else(|| format!("{}/token", state.urls.absolute_base(parts))),
        Mode::Htpasswd { realm, .. } => realm.clone(),
        Mode::None => String::new(),
    }
}

/// The `WWW-Authenticate` value for a refusal.
fn challenge(
    state: &AppState,
    parts: &Parts,
    scope: Option<String>,
    insufficient: bool,
) -> Option<String> {
    match state.access.mode() {
        Mode::None => None,
        Mode::Htpasswd { realm, .. } => Some(format!("Basic realm=\"{realm}\"")),
        Mode::Berth(service) => {
            let mut value = format!(
                "Bearer realm=\"{}\",service=\"{}\"",
                realm(state, parts),
                service.tokens.service()
            );
            if let Some(scope) = scope {
                value.push_str(&format!(",scope=\"{scope}\""));
            }
            if insufficient {
                value.push_str(",error=\"insufficient_scope\"");
            }
            Some(value)
        }
    }
}

fn unauthorized(
    state: &AppState,
    parts: &Parts,
    message: &str,
    scope: Option<String>,
    insufficient: bool,
) -> RegistryError {
    let mut err = RegistryError::new(ErrorCode::Unauthorized, message.to_string());
    if let Some(value) = challenge(state, parts, scope, insufficient) {
        err = err.with_header("www-authenticate", value);
    }
    err
}

/// The address of the peer that sent the request (for throttling and the audit log).
pub(crate) fn client(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectionInfo>()
        .map(|c| c.peer.ip())
}

/// Who is asking. Bad credentials are a 401 (never a silent downgrade to anonymous).
pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, RegistryError> {
    let authorization = match parts.headers.get(http::header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            unauthorized(state, parts, "malformed Authorization header", None, false)
        })?),
    };
    state
        .access
        .authenticate(authorization, client(parts))
        .await
        .map_err(|failure| failure_error(state, parts, failure))
}

pub(crate) fn failure_error(
    state: &AppState,
    parts: &Parts,
    failure: AuthFailure,
) -> RegistryError {
    match failure {
        AuthFailure::Invalid(why) => unauthorized(state, parts, why, None, false),
        AuthFailure::Throttled(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            RegistryError::new(
                ErrorCode::TooManyRequests,
                "too many failed logins; try again later",
            )
            .with_detail(serde_json::json!({ "retry_after_seconds": seconds }))
            .with_header("retry-after", seconds.to_string())
        }
        AuthFailure::Unavailable(e) => RegistryError::unavailable("the identity store", e),
        AuthFailure::SourceUnavailable(what) => RegistryError::new(
            ErrorCode::Unavailable,
            format!(
                "{what} cannot be reached to check the password; try again later, or use an access token"
            ),
        ),
    }
}

/// The base endpoint and the catalog answer any caller that presented accepted credentials
/// (an anonymous registry token included), and challenge everyone else (naming `scope`):
/// that is how clients find out where to log in.
pub(crate) fn require_login(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
    scope: Option<String>,
) -> Result<(), RegistryError> {
    if matches!(state.access.mode(), Mode::None) || caller.presented_credentials() {
        Ok(())
    } else {
        Err(unauthorized(
            state,
            parts,
            "authentication required",
            scope,
            false,
        ))
    }
}

pub(crate) async fn require(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
    repository: &RepositoryName,
    action: Action,
) -> Result<(), RegistryError> {
    let decision = state
        .access
        .authorize(caller, repository.as_str(), action)
        .await
        .map_err(|e| RegistryError::unavailable("the identity store", e))?;
    let scope = || Some(format!("repository:{repository}:{}", scope_actions(action)));
    match decision {
        Decision::Allowed => Ok(()),
        Decision::LoginRequired => Err(unauthorized(
            state,
            parts,
            "authentication required",
            scope(),
            false,
        )),
        Decision::ScopeMissing => Err(unauthorized(
            state,
            parts,
            "the token presented does not grant this access",
            scope(),
            true,
        )),
        Decision::Forbidden => Err(RegistryError::new(
            ErrorCode::Denied,
            "requested access to the resource is denied",
        )
        .with_detail(
            serde_json::json!({ "repository": repository.as_str(), "action": action.as_str() }),
        )),
    }
}

/// Which repositories the caller sees in the catalog; a 401 naming the catalog scope for a
/// registry token without it.
pub(crate) async fn catalog_filter(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, RegistryError> {
    let filter = state
        .access
        .catalog_filter(caller)
        .await
        .map_err(|e| RegistryError::unavailable("the identity store", e))?;
    filter.ok_or_else(|| {
        unauthorized(
            state,
            parts,
            "the token presented does not grant listing the catalog",
            Some("registry:catalog:*".into()),
            true,
        )
    })
}

/// Which repositories the caller may pull, for mounts.
pub(crate) async fn pull_filter(
    access: &AccessService,
    caller: &Caller,
) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, RegistryError> {
    access
        .pull_filter(caller)
        .await
        .map_err(|e| RegistryError::unavailable("the identity store", e))
}
