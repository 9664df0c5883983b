//! The cache's failures, and the one place they become OCI errors for the client.

use berth_oci::{ErrorCode, RegistryError};

use crate::upstream::UpstreamError;

/// Why a remote could not produce what was asked. `Clone`: one failed download is the
/// answer of every request that waited on it.
#[derive(Debug, Clone)]
pub enum CacheFailure {
    Upstream(UpstreamError),
    /// Writing what the upstream sent into berth's store failed (storage, database,
    /// read-only mode): the error the store gave, as the client should see it.
    Store {
        code: ErrorCode,
        status: u16,
        message: String,
    },
}

impl From<UpstreamError> for CacheFailure {
    fn from(e: UpstreamError) -> Self {
        CacheFailure::Upstream(e)
    }
}

impl CacheFailure {
    /// A failure of berth itself: logged with its cause, shown to clients as a 500.
    pub fn internal(cause: String) -> CacheFailure {
        tracing::error!(%cause, "pull-through cache failure");
        CacheFailure::Store {
            code: ErrorCode::Unknown,
            status: 500,
            message: "internal server error".into(),
        }
    }

    /// A store error; content the upstream sent that berth refuses (a digest mismatch, an
    /// invalid manifest) is the upstream's fault, not the client's.
    pub fn from_store(upstream: &str, error: RegistryError) -> CacheFailure {
        match error.code {
            ErrorCode::DigestInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::ManifestInvalid
            | ErrorCode::BlobUploadInvalid => CacheFailure::Upstream(UpstreamError::Invalid {
                upstream: upstream.to_string(),
                why: error.message,
            }),
            _ => {
                if let Some(cause) = &error.cause {
                    tracing::error!(%cause, "storing cached content failed");
                }
                CacheFailure::Store {
                    code: error.code,
                    status: error.status,
                    message: error.message,
                }
            }
        }
    }

    /// The error the client gets. An upstream that cannot be asked is `503 UNAVAILABLE`
    /// naming it; one that sent something wrong is `502`; neither is the client's fault.
    pub fn to_registry_error(&self) -> RegistryError {
        match self {
            CacheFailure::Upstream(
                e @ UpstreamError::Throttled {
                    upstream,
                    retry_after,
                    ..
                },
            ) => RegistryError::new(ErrorCode::TooManyRequests, e.to_string())
                .with_detail(serde_json::json!({ "upstream": upstream }))
                .with_header("retry-after", retry_after.to_string()),
            CacheFailure::Upstream(e) => {
                let (status, upstream) = match e {
                    UpstreamError::Unreachable { upstream, .. } => (503, upstream),
                    UpstreamError::Status { upstream, .. } => (503, upstream),
                    UpstreamError::BackingOff { upstream, .. } => (503, upstream),
                    UpstreamError::Invalid { upstream, .. } => (502, upstream),
                    UpstreamError::Throttled { upstream, .. } => (429, upstream),
                };
                let error = RegistryError::new(
                    ErrorCode::Unavailable,
                    format!("the upstream registry could not provide this content: {e}"),
                )
                .with_status(status)
                .with_detail(serde_json::json!({ "upstream": upstream }));
                match e {
                    UpstreamError::BackingOff { retry_after, .. } => {
                        error.with_header("retry-after", retry_after.to_string())
                    }
                    _ => error,
                }
            }
            CacheFailure::Store {
                code,
                status,
                message,
            } => RegistryError::new(*code, message.clone()).with_status(*status),
        }
    }
}

impl From<CacheFailure> for RegistryError {
    fn from(failure: CacheFailure) -> Self {
        failure.to_registry_error()
    }
}

/// Whether a read failed only because the content is not there (not cached, not in this
/// member), rather than for a reason worth telling (a quarantined blob says why).
pub(crate) fn is_unknown(error: &RegistryError) -> bool {
    matches!(
        error.code,
        ErrorCode::ManifestUnknown | ErrorCode::NameUnknown | ErrorCode::BlobUnknown
    ) && error
        .detail
        .as_ref()
        .is_none_or(|d| d.get("reason").is_none())
}
