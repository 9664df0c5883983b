//! Every failure of a page as an error page, mapped in this one place from the domain errors
//! of the registry ([`RegistryError`]), administration ([`AdminError`]) and sign-in
//! ([`AuthFailure`]). Causes go to the log; a page never shows a stack trace or a database
//! message.

use std::time::Duration;

use axum::response::{IntoResponse, Redirect, Response};
use berth_auth::AuthFailure;
use berth_auth::admin::AdminError;
use berth_meta::MetaError;
use berth_oci::{ErrorCode, RegistryError};
use http::{HeaderValue, StatusCode, header};
use maud::html;

use crate::layout;

#[derive(Debug)]
pub enum WebError {
    /// Unknown, or not visible to the viewer: the same page either way.
    NotFound,
    /// Malformed input: a name, digest, page number or search that cannot be.
    BadRequest(String),
    /// Visible, but the viewer may not do this (or the form's CSRF token is wrong).
    Forbidden(String),
    /// The registry refuses the change as configured (deletion disabled, read-only).
    Refused(String),
    MethodNotAllowed,
    /// Too many failed sign-ins: try again after this long.
    TooManyRequests(Duration),
    /// The database or storage cannot be reached.
    Unavailable,
    /// The directory or provider that checks a sign-in cannot be reached (`the LDAP
    /// directory`).
    SignInUnavailable(&'static str),
    /// A page that needs a signed-in viewer; goes to the sign-in page and back.
    SignInRequired(String),
    /// Anything else; the cause is logged.
    Internal,
}

impl WebError {
    pub fn bad_request(why: impl Into<String>) -> WebError {
        WebError::BadRequest(why.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Refused(_) => StatusCode::CONFLICT,
            WebError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Unavailable | WebError::SignInUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WebError::SignInRequired(_) => StatusCode::SEE_OTHER,
            WebError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn explain(&self) -> (&'static str, String) {
        match self {
            WebError::NotFound => (
                "Not found",
                "There is nothing here, or you may not see it. Signing in may help.".into(),
            ),
            WebError::BadRequest(why) => ("Bad request", why.clone()),
            WebError::Forbidden(why) => ("Not allowed", why.clone()),
            WebError::Refused(why) => ("Refused", why.clone()),
            WebError::MethodNotAllowed => (
                "Method not allowed",
                "This page does not take that kind of request.".into(),
            ),
            WebError::TooManyRequests(wait) => (
                "Too many attempts",
                format!(
                    "Too many failed sign-ins. Try again in {} seconds.",
                    wait.as_secs().max(1)
                ),
            ),
            WebError::SignInUnavailable(what) => (
                "Sign-in unavailable",
                format!(
                    "{} cannot be reached right now, so berth cannot check this sign-in. Try again shortly; local accounts and access tokens still work.",
                    capitalized(what)
                ),
            ),
            WebError::Unavailable => (
                "Unavailable",
                "The registry's database or storage cannot be reached right now. Try again shortly."
                    .into(),
            ),
            WebError::SignInRequired(_) => ("Sign in", "Sign in to see this page.".into()),
            WebError::Internal => (
                "Something went wrong",
                "The registry failed to show this page; the cause is in its log.".into(),
            ),
        }
    }
}

impl WebError {
    /// The error as JSON, for the passkey script's requests: `{"error": "..."}`.
    pub fn into_json(self) -> Response {
        let status = match self {
            WebError::SignInRequired(_) => StatusCode::UNAUTHORIZED,
            _ => self.status(),
        };
        let (_, message) = self.explain();
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": message }).to_string(),
        )
            .into_response()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::SignInRequired(back) = &self {
            let target = format!(
                "/sign-in?next={}",
                form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        let status = self.status();
        let (title, message) = self.explain();
        let body = html! {
            section.error {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Back to the repositories" } }
            }
        };
        let mut response = (status, layout::bare(title, body)).into_response();
        if let WebError::TooManyRequests(wait) = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
        }
        response
    }
}

/// Unknown paths.
pub async fn not_found_page() -> Response {
    WebError::NotFound.into_response()
}

impl From<RegistryError> for WebError {
    fn from(err: RegistryError) -> Self {
        match err.code {
            ErrorCode::NameUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown => WebError::NotFound,
            ErrorCode::NameInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::TagInvalid
            | ErrorCode::ManifestInvalid
            | ErrorCode::PaginationNumberInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::RangeInvalid => WebError::BadRequest(err.message),
            ErrorCode::Unsupported => WebError::Refused(err.message),
            ErrorCode::Denied | ErrorCode::Unauthorized => WebError::Forbidden(err.message),
            ErrorCode::TooManyRequests => WebError::TooManyRequests(Duration::from_secs(1)),
            ErrorCode::Unavailable => {
                tracing::warn!(error = %err.message, cause = ?err.cause, "dashboard: unavailable");
                WebError::Unavailable
            }
            _ => {
                tracing::error!(code = ?err.code, error = %err.message, cause = ?err.cause, "dashboard: registry failure");
                WebError::Internal
            }
        }
    }
}

impl From<MetaError> for WebError {
    fn from(err: MetaError) -> Self {
        match err {
            MetaError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dashboard: the database is unavailable");
                WebError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "dashboard: database failure");
                WebError::Internal
            }
        }
    }
}

impl From<AdminError> for WebError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(why) => WebError::BadRequest(why),
            AdminError::Denied(why) => WebError::Forbidden(why),
            AdminError::NotFound(_) => WebError::NotFound,
            AdminError::Conflict(why) => WebError::Refused(why),
            AdminError::Store(e) => e.into(),
        }
    }
}

impl From<berth_lifecycle::LifecycleError> for WebError {
    fn from(err: berth_lifecycle::LifecycleError) -> Self {
        use berth_lifecycle::LifecycleError;
        match err {
            LifecycleError::Invalid(why) => WebError::BadRequest(why),
            LifecycleError::NotFound(_) => WebError::NotFound,
            LifecycleError::Conflict(why) => WebError::Refused(why),
            LifecycleError::GcFailed { message, .. } => {
                tracing::warn!(error = %message, "dashboard: garbage collection failed");
                WebError::Unavailable
            }
            LifecycleError::Store(e) => e.into(),
        }
    }
}

impl From<AuthFailure> for WebError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Invalid(why) => WebError::Forbidden(why.to_string()),
            AuthFailure::Throttled(wait) => WebError::TooManyRequests(wait),
            AuthFailure::Unavailable(e) => e.into(),
            AuthFailure::SourceUnavailable(what) => WebError::SignInUnavailable(what),
        }
    }
}

impl From<berth_auth::service::PasskeyFailure> for WebError {
    fn from(failure: berth_auth::service::PasskeyFailure) -> Self {
        use berth_auth::service::PasskeyFailure;
        match failure {
            PasskeyFailure::Refused(why) => WebError::Forbidden(why),
            PasskeyFailure::Disabled => WebError::Refused(
                "Passkeys are not enabled on this registry (auth.berth.passkeys needs http.host)."
                    .into(),
            ),
            PasskeyFailure::Auth(failure) => failure.into(),
        }
    }
}

/// A refusal's reason as a sentence: "Wrong user name, password or token."
pub(crate) fn sentence(why: &str) -> String {
    format!("{}.", capitalized(why))
}

/// "the LDAP directory" as a sentence begins.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub type PageResult = Result<Response, WebError>;
