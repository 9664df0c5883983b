//! Rendering registry errors as HTTP responses.

use axum::response::{IntoResponse, Response};
use berth_oci::RegistryError;
use http::{HeaderName, HeaderValue, StatusCode, header};

/// The operator-facing cause of a server error, passed to the access log through the
/// response's extensions so that the request's one log line carries it.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

/// A [`RegistryError`] as a response: the OCI error JSON, its status and extra headers.
pub struct ApiError(pub RegistryError);

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        ApiError(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            err.body().to_string(),
        )
            .into_response();
        for (name, value) in &err.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
        if err.is_server_error() || err.cause.is_some() {
            response
                .extensions_mut()
                .insert(ErrorCause(err.to_string()));
        }
        response
    }
}
