//! Registry errors as the distribution specification defines them.
//!
//! Every failure on `/v2/` is answered with `{"errors":[{"code","message","detail"}]}`. The
//! code decides the default HTTP status; a few situations need another status (a manifest
//! that is too large is a 413) or extra headers (`Range` on an out-of-order chunk), which the
//! error carries so that the HTTP layer only has to render it.

use std::fmt;

use serde_json::Value;

/// The error codes of the OCI distribution specification, plus the few extra ones the
/// official registry (CNCF distribution) defines and clients know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    // Defined by CNCF distribution rather than the OCI specification.
    RangeInvalid,
    TagInvalid,
    PaginationNumberInvalid,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The HTTP status this code is answered with unless the error says otherwise.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::TagInvalid
            | ErrorCode::PaginationNumberInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Unknown => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure to report to a registry client.
///
/// `message` and `detail` are shown to the client. `cause` is for the operator only: it is
/// logged, never sent, because it may reveal paths or database internals.
#[derive(Debug)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub status: u16,
    pub message: String,
    pub detail: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
    pub cause: Option<Cause>,
}

impl RegistryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<Value>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// A failure of the server itself (storage, database). The client learns only that it
    /// happened; the cause goes to the log.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        RegistryError::new(ErrorCode::Unknown, "internal server error").with_cause(cause)
    }

    /// A dependency (database, object store) cannot be reached right now; retrying later may
    /// succeed.
    pub fn unavailable(what: &str, cause: impl Into<Cause>) -> Self {
        RegistryError::new(
            ErrorCode::Unavailable,
            format!("{what} is unavailable, retry later"),
        )
        .with_cause(cause)
    }

    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }

    /// The JSON body of the response, `{"errors":[...]}`.
    pub fn body(&self) -> Value {
        let mut entry = serde_json::Map::new();
        entry.insert("code".into(), Value::from(self.code.as_str()));
        entry.insert("message".into(), Value::from(self.message.clone()));
        entry.insert("detail".into(), self.detail.clone().unwrap_or(Value::Null));
        serde_json::json!({ "errors": [Value::Object(entry)] })
    }

    // Constructors for the errors that are raised in many places; each names the code once.

    pub fn blob_unknown(digest: &impl fmt::Display) -> Self {
        RegistryError::new(ErrorCode::BlobUnknown, "blob unknown to registry")
            .with_detail(serde_json::json!({ "digest": digest.to_string() }))
    }

    pub fn manifest_unknown(reference: &impl fmt::Display) -> Self {
        RegistryError::new(ErrorCode::ManifestUnknown, "manifest unknown")
            .with_detail(serde_json::json!({ "reference": reference.to_string() }))
    }

    pub fn name_unknown(name: &impl fmt::Display) -> Self {
        RegistryError::new(
            ErrorCode::NameUnknown,
            "repository name not known to registry",
        )
        .with_detail(serde_json::json!({ "name": name.to_string() }))
    }

    pub fn upload_unknown() -> Self {
        RegistryError::new(
            ErrorCode::BlobUploadUnknown,
            "blob upload unknown to registry",
        )
    }

    pub fn manifest_invalid(why: impl Into<String>) -> Self {
        RegistryError::new(ErrorCode::ManifestInvalid, "manifest invalid")
            .with_detail(Value::from(why.into()))
    }

    pub fn unsupported(why: impl Into<String>) -> Self {
        RegistryError::new(ErrorCode::Unsupported, why)
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_spec_shape() {
        let err = RegistryError::blob_unknown(&"sha256:abc");
        assert_eq!(err.status, 404);
        assert_eq!(
            err.body(),
            serde_json::json!({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":{"digest":"sha256:abc"}}]})
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = RegistryError::internal("disk /srv/secret/path failed");
        assert_eq!(err.status, 500);
        assert!(!err.body().to_string().contains("/srv/secret"));
        assert!(err.to_string().contains("/srv/secret"));
    }

    #[test]
    fn status_can_be_overridden() {
        let err = RegistryError::manifest_invalid("too large").with_status(413);
        assert_eq!(err.status, 413);
        assert_eq!(err.code, ErrorCode::ManifestInvalid);
    }
}
