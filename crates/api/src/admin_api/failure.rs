//! The admin API's errors, mapped once: `{"errors":[{"code","message","detail"}]}` as on
//! `/v2/`, with the status each kind of refusal deserves.

use axum::response::{IntoResponse, Response};
use berth_auth::AuthFailure;
use berth_auth::admin::AdminError;
use http::{StatusCode, header};

/// An admin API error: status, code and message, rendered like the registry's errors.
#[derive(Debug)]
pub(super) struct ApiFailure {
    pub(super) status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiFailure {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiFailure {
        ApiFailure {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn invalid(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::BAD_REQUEST, "INVALID", message)
    }

    pub(super) fn unauthorized(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub(super) fn denied(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::FORBIDDEN, "DENIED", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
}

impl From<AdminError> for ApiFailure {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(why) => ApiFailure::invalid(why),
            AdminError::NotFound(why) => ApiFailure::not_found(why),
            AdminError::Conflict(why) => ApiFailure::new(StatusCode::CONFLICT, "CONFLICT", why),
            AdminError::Denied(why) => ApiFailure::denied(why),
            AdminError::Store(e) => unavailable(e),
        }
    }
}

impl From<AuthFailure> for ApiFailure {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Invalid(why) => ApiFailure::unauthorized(why),
            AuthFailure::Throttled(wait) => ApiFailure {
                retry_after: Some(wait.as_secs().max(1)),
                ..ApiFailure::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    "too many failed logins; try again later",
                )
            },
            AuthFailure::Unavailable(e) => unavailable(e),
            AuthFailure::SourceUnavailable(what) => ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("{what} cannot be reached; try again later (access tokens still work)"),
            ),
        }
    }
}

pub(super) fn unavailable(err: impl std::fmt::Display) -> ApiFailure {
    tracing::warn!(error = %err, "admin API: the identity store failed");
    ApiFailure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the identity store is unavailable; try again",
    )
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": null }]
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"berth admin API\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

pub(super) type ApiResult = Result<Response, ApiFailure>;

pub(super) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_string(value).map_err(|e| {
        ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("rendering the response: {e}"),
        )
    })?;
    Ok((
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

pub(super) fn ok<T: serde::Serialize>(value: &T) -> ApiResult {
    json(StatusCode::OK, value)
}

pub(super) fn created<T: serde::Serialize>(value: &T) -> ApiResult {
    json(StatusCode::CREATED, value)
}

pub(super) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}
