//! Which API endpoint a `/v2/...` path names.
//!
//! Repository names contain slashes (`team/app/api`), so a path is parsed from its end: the
//! trailing segments say which endpoint it is (`tags/list`, `manifests/<ref>`,
//! `blobs/<digest>`, `blobs/uploads/<id>`, `referrers/<digest>`) and everything before them
//! is the name. A repository may itself have a component called `blobs` or `manifests`;
//! reading from the end keeps that unambiguous. Paths are used raw, never percent-decoded:
//! nothing valid needs escaping, so an escape is simply invalid.

use berth_oci::{Digest, ErrorCode, RegistryError, RepositoryName, UploadId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`, the reference as written: whether an invalid one
    /// is an error depends on the method (see `operation`).
    Manifest(RepositoryName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepositoryName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepositoryName, Digest),
}

fn not_an_endpoint() -> RegistryError {
    RegistryError::new(ErrorCode::Unsupported, "no such API endpoint").with_status(404)
}

impl Endpoint {
    /// Parses the path of a request under `/v2`.
    pub fn parse(path: &str) -> Result<Endpoint, RegistryError> {
        let rest = match path.strip_prefix("/v2") {
            Some("" | "/") => return Ok(Endpoint::Base),
            Some(rest) => rest.strip_prefix('/').ok_or_else(not_an_endpoint)?,
            None => return Err(not_an_endpoint()),
        };
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let name = |tail: usize| -> Result<RepositoryName, RegistryError> {
            if n <= tail {
                return Err(not_an_endpoint());
            }
            RepositoryName::parse(&segments[..n - tail].join("/"))
        };
        let last = segments[n - 1];
        let before_last = if n >= 2 { segments[n - 2] } else { "" };
        match (before_last, last) {
            ("tags", "list") => Ok(Endpoint::Tags(name(2)?)),
            ("manifests", reference) => Ok(Endpoint::Manifest(name(2)?, reference.to_string())),
            ("referrers", digest) => {
                let name = name(2)?;
                Ok(Endpoint::Referrers(name, Digest::parse(digest)?))
            }
            // `blobs/uploads/` (as the specification writes it) and `blobs/uploads`.
            ("uploads", "") if n >= 3 && segments[n - 3] == "blobs" => {
                Ok(Endpoint::UploadStart(name(3)?))
            }
            ("blobs", "uploads") => Ok(Endpoint::UploadStart(name(2)?)),
            ("uploads", id) if n >= 3 && segments[n - 3] == "blobs" => {
                let name = name(3)?;
                Ok(Endpoint::Upload(name, UploadId::parse(id)?))
            }
            ("blobs", digest) => {
                let name = name(2)?;
                Ok(Endpoint::Blob(name, Digest::parse(digest)?))
            }
            _ => Err(not_an_endpoint()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn parses_every_endpoint() {
        let digest = Digest::parse(DIGEST).unwrap();
        let id = UploadId::random();
        let cases = vec![
            ("/v2".to_string(), Endpoint::Base),
            ("/v2/".to_string(), Endpoint::Base),
            ("/v2/_catalog".to_string(), Endpoint::Catalog),
            (
                "/v2/alpine/tags/list".to_string(),
                Endpoint::Tags(name("alpine")),
            ),
            (
                "/v2/team/app/api/tags/list".to_string(),
                Endpoint::Tags(name("team/app/api")),
            ),
            (
                "/v2/team/app/manifests/latest".to_string(),
                Endpoint::Manifest(name("team/app"), "latest".to_string()),
            ),
            (
                format!("/v2/a/manifests/{DIGEST}"),
                Endpoint::Manifest(name("a"), DIGEST.to_string()),
            ),
            (
                format!("/v2/a/b/blobs/{DIGEST}"),
                Endpoint::Blob(name("a/b"), digest.clone()),
            ),
            (
                "/v2/a/b/blobs/uploads/".to_string(),
                Endpoint::UploadStart(name("a/b")),
            ),
            (
                "/v2/a/b/blobs/uploads".to_string(),
                Endpoint::UploadStart(name("a/b")),
            ),
            (
                format!("/v2/a/blobs/uploads/{id}"),
                Endpoint::Upload(name("a"), id),
            ),
            (
                format!("/v2/a/referrers/{DIGEST}"),
                Endpoint::Referrers(name("a"), digest.clone()),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(Endpoint::parse(&path).unwrap(), expected, "{path}");
        }
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            Endpoint::parse("/v2/blobs/manifests/tags/list").unwrap(),
            Endpoint::Tags(name("blobs/manifests"))
        );
        assert_eq!(
            Endpoint::parse("/v2/x/manifests/manifests/v1").unwrap(),
            Endpoint::Manifest(name("x/manifests"), "v1".to_string())
        );
        assert_eq!(
            Endpoint::parse("/v2/uploads/blobs/uploads/").unwrap(),
            Endpoint::UploadStart(name("uploads"))
        );
    }

    #[test]
    fn reports_what_is_wrong() {
        let code = |path: &str| Endpoint::parse(path).unwrap_err().code;
        assert_eq!(code("/v2/UPPER/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a/../b/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a//b/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("/v2/a%2fb/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(
            code(&format!("/v2/{}/tags/list", "a".repeat(256))),
            ErrorCode::NameInvalid
        );
        assert_eq!(code("/v2/a/blobs/sha256:abc"), ErrorCode::DigestInvalid);
        assert_eq!(
            code("/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"),
            ErrorCode::DigestInvalid
        );
        assert_eq!(
            code("/v2/a/blobs/uploads/not-a-uuid"),
            ErrorCode::BlobUploadUnknown
        );
        assert_eq!(code("/v2/a/referrers/nope"), ErrorCode::DigestInvalid);
        for path in [
            "/v2/tags/list",
            "/v2/a/unknown/thing",
            "/v2/manifests/latest",
            "/v2x",
            "/other",
        ] {
            let err = Endpoint::parse(path).unwrap_err();
            assert_eq!(
                (err.code, err.status),
                (ErrorCode::Unsupported, 404),
                "{path}"
            );
        }
    }
}
