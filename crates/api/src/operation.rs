//! Every `/v2/` operation, named once.
//!
//! A request's method and path are parsed into one [`Operation`] before anything else
//! happens. It is the only place the method is matched: authorization asks it which action
//! on which repository it needs, the access log, metrics and tracing take its [`name`], and
//! the dispatcher in `v2` matches on it. A method an endpoint does not have is a 405 naming
//! the ones it has.
//!
//! [`name`]: Operation::name

use berth_auth::Action;
use berth_oci::{Digest, Reference, RegistryError, RepositoryName, Tag, UploadId};
use http::Method;

use crate::endpoint::Endpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `GET /v2/`: the API version check (and where clients learn to log in).
    Base,
    Catalog,
    ListTags(RepositoryName),
    /// GET (`with_body`) or HEAD of a manifest. `reference` is `None` when the path names
    /// something that cannot be a tag: such a manifest simply is not there (404), as the
    /// conformance suite expects.
    GetManifest {
        name: RepositoryName,
        reference: Option<Reference>,
        with_body: bool,
    },
    PutManifest(RepositoryName, Reference),
    /// `reference` is `None` as for reads: deleting what cannot exist is a 404.
    DeleteManifest(RepositoryName, Option<Reference>),
    Referrers(RepositoryName, Digest),
    GetBlob(RepositoryName, Digest),
    HeadBlob(RepositoryName, Digest),
    DeleteBlob(RepositoryName, Digest),
    StartUpload(RepositoryName),
    UploadStatus(RepositoryName, UploadId),
    AppendUpload(RepositoryName, UploadId),
    FinishUpload(RepositoryName, UploadId),
    CancelUpload(RepositoryName, UploadId),
}

/// The repository an operation names (by reference or mutably, as `$operation` is).
macro_rules! repository_of {
    ($operation:expr) => {
        match $operation {
            Operation::Base | Operation::Catalog => None,
            Operation::ListTags(name)
            | Operation::GetManifest { name, .. }
            | Operation::PutManifest(name, _)
            | Operation::DeleteManifest(name, _)
            | Operation::Referrers(name, _)
            | Operation::GetBlob(name, _)
            | Operation::HeadBlob(name, _)
            | Operation::DeleteBlob(name, _)
            | Operation::StartUpload(name)
            | Operation::UploadStatus(name, _)
            | Operation::AppendUpload(name, _)
            | Operation::FinishUpload(name, _)
            | Operation::CancelUpload(name, _) => Some(name),
        }
    };
}

/// The name of a request that is not a valid operation (bad path or method), for the
/// access log and metrics.
pub const INVALID: &str = "invalid";

fn method_not_allowed(allowed: &'static str) -> RegistryError {
    RegistryError::unsupported("method not allowed on this endpoint")
        .with_detail(serde_json::json!({ "allowed": allowed }))
        .with_header("allow", allowed)
}

/// A manifest reference for a read or a delete: a malformed digest is a client error, a
/// string that cannot be a tag names nothing that exists.
fn lookup_reference(raw: &str) -> Result<Option<Reference>, RegistryError> {
    match Reference::parse(raw) {
        Ok(reference) => Ok(Some(reference)),
        Err(_) if !raw.contains(':') => Ok(None),
        Err(e) => Err(e),
    }
}

impl Operation {
    pub fn parse(method: &Method, path: &str) -> Result<Operation, RegistryError> {
        let endpoint = Endpoint::parse(path)?;
        let m = method.as_str();
        let read = m == "GET" || m == "HEAD";
        Ok(match endpoint {
            Endpoint::Base if read => Operation::Base,
            Endpoint::Base => return Err(method_not_allowed("GET, HEAD")),
            Endpoint::Catalog if read => Operation::Catalog,
            Endpoint::Catalog => return Err(method_not_allowed("GET, HEAD")),
            Endpoint::Tags(name) if read => Operation::ListTags(name),
            Endpoint::Tags(_) => return Err(method_not_allowed("GET, HEAD")),
            Endpoint::Referrers(name, digest) if read => Operation::Referrers(name, digest),
            Endpoint::Referrers(..) => return Err(method_not_allowed("GET, HEAD")),
            Endpoint::Manifest(name, raw) => match m {
                "GET" | "HEAD" => Operation::GetManifest {
                    name,
                    reference: lookup_reference(&raw)?,
                    with_body: m == "GET",
                },
                "PUT" => Operation::PutManifest(name, Reference::parse(&raw)?),
                "DELETE" => Operation::DeleteManifest(name, lookup_reference(&raw)?),
                _ => return Err(method_not_allowed("GET, HEAD, PUT, DELETE")),
            },
            Endpoint::Blob(name, digest) => match m {
                "GET" => Operation::GetBlob(name, digest),
                "HEAD" => Operation::HeadBlob(name, digest),
                "DELETE" => Operation::DeleteBlob(name, digest),
                _ => return Err(method_not_allowed("GET, HEAD, DELETE")),
            },
            Endpoint::UploadStart(name) => match m {
                "POST" => Operation::StartUpload(name),
                _ => return Err(method_not_allowed("POST")),
            },
            Endpoint::Upload(name, id) => match m {
                "GET" => Operation::UploadStatus(name, id),
                "PATCH" => Operation::AppendUpload(name, id),
                "PUT" => Operation::FinishUpload(name, id),
                "DELETE" => Operation::CancelUpload(name, id),
                _ => return Err(method_not_allowed("GET, PATCH, PUT, DELETE")),
            },
        })
    }

    /// A stable name for logs, metrics labels, traces and events.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Base => "base",
            Operation::Catalog => "catalog",
            Operation::ListTags(_) => "tags_list",
            Operation::GetManifest {
                with_body: true, ..
            } => "manifest_get",
            Operation::GetManifest {
                with_body: false, ..
            } => "manifest_head",
            Operation::PutManifest(..) => "manifest_put",
            Operation::DeleteManifest(..) => "manifest_delete",
            Operation::Referrers(..) => "referrers_get",
            Operation::GetBlob(..) => "blob_get",
            Operation::HeadBlob(..) => "blob_head",
            Operation::DeleteBlob(..) => "blob_delete",
            Operation::StartUpload(_) => "upload_start",
            Operation::UploadStatus(..) => "upload_status",
            Operation::AppendUpload(..) => "upload_patch",
            Operation::FinishUpload(..) => "upload_finish",
            Operation::CancelUpload(..) => "upload_cancel",
        }
    }

    /// Every operation name, for metrics that are declared up front.
    pub const NAMES: [&'static str; 16] = [
        "base",
        "catalog",
        "tags_list",
        "manifest_get",
        "manifest_head",
        "manifest_put",
        "manifest_delete",
        "referrers_get",
        "blob_get",
        "blob_head",
        "blob_delete",
        "upload_start",
        "upload_status",
        "upload_patch",
        "upload_finish",
        "upload_cancel",
    ];

    pub fn repository(&self) -> Option<&RepositoryName> {
        repository_of!(self)
    }

    /// The repository the operation is about, to be renamed (containerd's mirror
    /// parameter names another registry's repository).
    pub fn repository_mut(&mut self) -> Option<&mut RepositoryName> {
        repository_of!(self)
    }

    /// The action on the repository the operation needs; `None` for the base endpoint and
    /// the catalog, which any caller who logged in may use (the catalog is filtered).
    pub fn required_action(&self) -> Option<Action> {
        Some(match self {
            Operation::Base | Operation::Catalog => return None,
            Operation::ListTags(_)
            | Operation::GetManifest { .. }
            | Operation::Referrers(..)
            | Operation::GetBlob(..)
            | Operation::HeadBlob(..) => Action::Pull,
            Operation::PutManifest(..)
            | Operation::StartUpload(_)
            | Operation::UploadStatus(..)
            | Operation::AppendUpload(..)
            | Operation::FinishUpload(..)
            | Operation::CancelUpload(..) => Action::Push,
            Operation::DeleteManifest(..) | Operation::DeleteBlob(..) => Action::Delete,
        })
    }

    /// The tag a manifest operation names, if any.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Operation::GetManifest {
                reference: Some(Reference::Tag(tag)),
                ..
            }
            | Operation::PutManifest(_, Reference::Tag(tag))
            | Operation::DeleteManifest(_, Some(Reference::Tag(tag))) => Some(tag),
            _ => None,
        }
    }
}

/// A `/v2/` request's operation, parsed once by the request observer and handed to the
/// handler in the request's extensions. (A request that is no operation is parsed again by
/// the handler, for the error to answer with.)
#[derive(Debug, Clone)]
pub struct ParsedOperation(pub Operation);

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::ErrorCode;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn op(method: &str, path: &str) -> Result<Operation, RegistryError> {
        Operation::parse(&Method::from_bytes(method.as_bytes()).unwrap(), path)
    }

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn every_method_and_endpoint_has_one_operation_and_name() {
        let id = UploadId::random();
        let cases = [
            ("GET", "/v2/".to_string(), "base", None),
            ("HEAD", "/v2/".to_string(), "base", None),
            ("GET", "/v2/_catalog".to_string(), "catalog", None),
            (
                "GET",
                "/v2/a/b/tags/list".to_string(),
                "tags_list",
                Some(Action::Pull),
            ),
            (
                "GET",
                "/v2/a/manifests/v1".to_string(),
                "manifest_get",
                Some(Action::Pull),
            ),
            (
                "HEAD",
                "/v2/a/manifests/v1".to_string(),
                "manifest_head",
                Some(Action::Pull),
            ),
            (
                "PUT",
                "/v2/a/manifests/v1".to_string(),
                "manifest_put",
                Some(Action::Push),
            ),
            (
                "DELETE",
                format!("/v2/a/manifests/{DIGEST}"),
                "manifest_delete",
                Some(Action::Delete),
            ),
            (
                "GET",
                format!("/v2/a/referrers/{DIGEST}"),
                "referrers_get",
                Some(Action::Pull),
            ),
            (
                "GET",
                format!("/v2/a/blobs/{DIGEST}"),
                "blob_get",
                Some(Action::Pull),
            ),
            (
                "HEAD",
                format!("/v2/a/blobs/{DIGEST}"),
                "blob_head",
                Some(Action::Pull),
            ),
            (
                "DELETE",
                format!("/v2/a/blobs/{DIGEST}"),
                "blob_delete",
                Some(Action::Delete),
            ),
            (
                "POST",
                "/v2/a/blobs/uploads/".to_string(),
                "upload_start",
                Some(Action::Push),
            ),
            (
                "GET",
                format!("/v2/a/blobs/uploads/{id}"),
                "upload_status",
                Some(Action::Push),
            ),
            (
                "PATCH",
                format!("/v2/a/blobs/uploads/{id}"),
                "upload_patch",
                Some(Action::Push),
            ),
            (
                "PUT",
                format!("/v2/a/blobs/uploads/{id}"),
                "upload_finish",
                Some(Action::Push),
            ),
            (
                "DELETE",
                format!("/v2/a/blobs/uploads/{id}"),
                "upload_cancel",
                Some(Action::Push),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (method, path, expected, action) in cases {
            let operation = op(method, &path).unwrap();
            assert_eq!(operation.name(), expected, "{method} {path}");
            assert_eq!(operation.required_action(), action, "{method} {path}");
            assert!(Operation::NAMES.contains(&expected));
            seen.insert(expected);
        }
        assert_eq!(
            seen.len(),
            Operation::NAMES.len(),
            "every name is reachable"
        );
    }

    #[test]
    fn methods_an_endpoint_lacks_are_405_with_allow() {
        for (method, path, allow) in [
            ("POST", "/v2/".to_string(), "GET, HEAD"),
            ("DELETE", "/v2/_catalog".to_string(), "GET, HEAD"),
            ("PUT", "/v2/a/tags/list".to_string(), "GET, HEAD"),
            (
                "POST",
                "/v2/a/manifests/v1".to_string(),
                "GET, HEAD, PUT, DELETE",
            ),
            ("PUT", format!("/v2/a/blobs/{DIGEST}"), "GET, HEAD, DELETE"),
            ("GET", "/v2/a/blobs/uploads/".to_string(), "POST"),
        ] {
            let err = op(method, &path).unwrap_err();
            assert_eq!(
                (err.code, err.status),
                (ErrorCode::Unsupported, 405),
                "{method} {path}"
            );
            assert!(
                err.headers.iter().any(|(k, v)| *k == "allow" && v == allow),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_reference_that_cannot_be_a_tag_is_absent_for_reads_and_invalid_for_puts() {
        for method in ["GET", "HEAD"] {
            let operation = op(method, "/v2/a/manifests/.INVALID_MANIFEST_NAME").unwrap();
            assert!(matches!(
                operation,
                Operation::GetManifest {
                    reference: None,
                    ..
                }
            ));
        }
        assert!(matches!(
            op("DELETE", "/v2/a/manifests/-nope").unwrap(),
            Operation::DeleteManifest(_, None)
        ));
        let err = op("PUT", "/v2/a/manifests/.INVALID_MANIFEST_NAME").unwrap_err();
        assert_eq!(err.code, ErrorCode::TagInvalid);
        for method in ["GET", "HEAD", "PUT", "DELETE"] {
            let err = op(method, "/v2/a/manifests/sha256:totallywrong").unwrap_err();
            assert_eq!(err.code, ErrorCode::DigestInvalid, "{method}");
            assert_eq!(err.status, 400);
        }
    }

    #[test]
    fn repository_and_tag_are_exposed() {
        let operation = op("PUT", "/v2/team/app/manifests/v1").unwrap();
        assert_eq!(operation.repository(), Some(&name("team/app")));
        assert_eq!(operation.tag().map(Tag::as_str), Some("v1"));
        assert_eq!(op("GET", "/v2/_catalog").unwrap().repository(), None);
    }
}
