//! `storage.s3`: blobs in an S3-compatible bucket.

use crate::schema::{Problems, ignored, join, section, unsupported_unless};
use crate::values;

const MULTIPART_COPY: &str = "berth copies objects server-side in one request, and by streaming them above S3's 5 GiB copy limit";

section! {
    /// Blob storage in an S3-compatible bucket (registry:2's `storage.s3`, with berth's own
    /// `sessiontoken`).
    #[derive(Clone, PartialEq)]
    pub struct S3Config {
        /// Validation rejects an empty name.
        bucket: String, "bucket holding blobs and uploads (required)";
        region: String = "us-east-1".to_owned(),
            "region of the bucket, also used to sign requests to a regionendpoint";
        /// As registry:2 writes it: `http://127.0.0.1:3900`, or `minio.example.com:9000` with
        /// the scheme chosen by `secure`. See [`S3Config::endpoint`]. An empty value means
        /// unset, as in registry:2.
        regionendpoint: Option<String>,
            "endpoint of an S3-compatible store, e.g. http://127.0.0.1:3900; unset means AWS",
            read = values::non_empty;
        /// Both `accesskey` and `secretkey`, or neither (then AWS's usual credential sources:
        /// environment, shared files, instance profile). An empty value means unset.
        accesskey: Option<String>,
            "access key ID; unset uses AWS's usual credential sources (environment, instance profile)",
            read = values::non_empty;
        secretkey: Option<String>, "secret access key; required with accesskey",
            read = values::non_empty, secret;
        /// berth's own key.
        sessiontoken: Option<String>,
            "temporary (STS) session token accompanying accesskey and secretkey",
            read = values::non_empty, secret;
        /// Without leading or trailing '/'; empty for none.
        rootdirectory: String,
            "prefix inside the bucket under which everything is stored; empty means the bucket's root",
            read = values::object_prefix;
        forcepathstyle: bool,
            "path-style requests (endpoint/bucket/key), which most self-hosted stores need";
        secure: bool = true, "use https for a regionendpoint written without a scheme";
        chunksize: u64 = 10 * 1024 * 1024,
            "multipart upload part size in bytes, from 5242880 (5 MiB) to 5368709120 (5 GiB)",
            read = values::byte_count;
        /// registry:2's key: SSE-S3, or SSE-KMS with `keyid`.
        encrypt: bool,
            "server-side encryption of everything berth writes: SSE-S3, or SSE-KMS when keyid is set";
        /// registry:2's key; an empty value means unset.
        keyid: Option<String>, "KMS key (ID or ARN) for SSE-KMS; needs encrypt: true",
            read = values::non_empty;
    }
    validate = S3Config::validate;
    registry2 = [
        ignored("v4auth", "berth always signs requests with AWS Signature Version 4"),
        ignored("multipartcopychunksize", MULTIPART_COPY),
        ignored("multipartcopymaxconcurrency", MULTIPART_COPY),
        ignored("multipartcopythresholdsize", MULTIPART_COPY),
        ignored("loglevel", "berth has no separate log level for the object store; use log.level"),
        unsupported_unless(
            "skipverify",
            &["false"],
            "berth always verifies the store's TLS certificate; add its CA to the system's trust store",
        ),
        unsupported_unless(
            "storageclass",
            &["STANDARD", "NONE"],
            "berth stores objects in the bucket's default storage class; use a lifecycle rule to change it",
        ),
        unsupported_unless(
            "objectacl",
            &["private"],
            "berth sets no ACL on objects, which keeps them private",
        ),
        unsupported_unless(
            "usedualstack",
            &["false"],
            "berth uses the region's standard endpoint; set regionendpoint to a dual-stack endpoint instead",
        ),
        unsupported_unless("accelerate", &["false"], "berth does not use S3 Transfer Acceleration"),
    ];
}

/// S3's smallest part (every part but the last must be at least this big).
const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
const MAX_CHUNK_SIZE: u64 = 5 * 1024 * 1024 * 1024;

impl S3Config {
    /// The endpoint as a URL: `regionendpoint` with its scheme (in lower case), or with
    /// `https://` (when `secure`) or `http://` prepended when it has none; `None` when there
    /// is no `regionendpoint` (AWS's endpoint for the region).
    pub fn endpoint(&self) -> Option<String> {
        let endpoint = self.regionendpoint.as_deref()?;
        Some(match endpoint.split_once("://") {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None if self.secure => format!("https://{endpoint}"),
            None => format!("http://{endpoint}"),
        })
    }

    fn validate(&self, at: &str, problems: &mut Problems) {
        let mut problem = |path: &str, message: String| problems.add(path, message);
        let path = |key: &str| join(at, key);
        if self.bucket.is_empty() {
            problem(
                &path("bucket"),
                "required when storage.s3 is set: the name of the bucket to store blobs in".into(),
            );
        } else if self.bucket.contains('/') {
            problem(
                &path("bucket"),
                format!(
                    "invalid bucket name {:?}: a bucket name has no '/'; put a prefix inside the bucket in storage.s3.rootdirectory",
                    self.bucket
                ),
            );
        } else if self
            .bucket
            .contains(|c: char| c.is_whitespace() || c.is_control())
        {
            problem(
                &path("bucket"),
                format!(
                    "invalid bucket name {:?}: must not contain spaces",
                    self.bucket
                ),
            );
        }
        if self.region.is_empty() {
            problem(
                &path("region"),
                "must not be empty; S3-compatible stores that ignore regions accept us-east-1"
                    .into(),
            );
        }
        if let Some(endpoint) = self.endpoint()
            && let Err(why) = check_endpoint(&endpoint)
        {
            problem(&path("regionendpoint"), why);
        }
        match (&self.accesskey, &self.secretkey) {
            (Some(_), None) => problem(
                &path("secretkey"),
                "required when storage.s3.accesskey is set".into(),
            ),
            (None, Some(_)) => problem(
                &path("accesskey"),
                "required when storage.s3.secretkey is set".into(),
            ),
            _ => {}
        }
        if self.sessiontoken.is_some() && self.accesskey.is_none() && self.secretkey.is_none() {
            problem(
                &path("sessiontoken"),
                "a session token needs storage.s3.accesskey and storage.s3.secretkey".into(),
            );
        }
        if self.keyid.is_some() && !self.encrypt {
            problem(
                &path("keyid"),
                "a KMS key needs storage.s3.encrypt: true".into(),
            );
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunksize) {
            problem(
                &path("chunksize"),
                format!(
                    "{} is out of range: S3 parts are from {MIN_CHUNK_SIZE} (5 MiB) to {MAX_CHUNK_SIZE} (5 GiB) bytes",
                    self.chunksize
                ),
            );
        }
    }
}

/// An endpoint URL that object_store can use: http or https, a host, nothing else but a
/// port and a path.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let parsed = url::Url::parse(endpoint);
    if let Ok(url) = &parsed
        && (!url.username().is_empty() || url.password().is_some())
    {
        // Not quoted: the part before '@' may be a password.
        return Err(
            "must not contain a user name or password; set storage.s3.accesskey and storage.s3.secretkey"
                .into(),
        );
    }
    let shown = values::redact_url(endpoint);
    let invalid = |why: &str| {
        format!(
            "invalid endpoint {shown:?}: {why}; expected e.g. \"http://127.0.0.1:3900\" or \"minio.example.com:9000\""
        )
    };
    let url = parsed.map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(())
}
