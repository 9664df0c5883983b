//! The blob stores beside the filesystem and S3 (`storage.gcs`, `storage.azure`,
//! `storage.ipfs`), and the background scrub of stored blobs (`storage.scrub`).

use std::path::PathBuf;
use std::time::Duration;

use crate::schema::{Problems, join, section, unsupported};
use crate::values;

section! {
    /// Google Cloud Storage (registry:2's `storage.gcs`, with berth's own `endpoint`).
    #[derive(Clone, PartialEq)]
    pub struct GcsConfig {
        bucket: String, "bucket holding blobs and uploads (required)";
        /// `None` uses application default credentials.
        keyfile: Option<PathBuf>,
            "service account key file (JSON); unset uses application default credentials",
            read = values::non_empty_path;
        /// berth's own key; `None` is Google's.
        endpoint: Option<String>,
            "another endpoint than https://storage.googleapis.com, e.g. an emulator's",
            read = values::non_empty;
        rootdirectory: String, "prefix inside the bucket under which everything is stored",
            read = values::object_prefix;
        /// registry:2's default.
        chunksize: u64 = 5 * 1024 * 1024,
            "size in bytes of the parts an upload is composed from, at least 262144 (256 KiB)",
            read = values::byte_count;
    }
    validate = GcsConfig::validate;
    registry2 = [
        unsupported(
            "credentials",
            "berth reads Google credentials from storage.gcs.keyfile or the application default credentials",
        ),
    ];
}

const MIN_GCS_CHUNK: u64 = 256 * 1024;

impl GcsConfig {
    fn validate(&self, at: &str, problems: &mut Problems) {
        if self.bucket.is_empty() {
            problems.add(
                join(at, "bucket"),
                "required when storage.gcs is set: the name of the bucket to store blobs in",
            );
        } else if self.bucket.contains(['/', ' ']) {
            problems.add(
                join(at, "bucket"),
                format!(
                    "invalid bucket name {:?}: put a prefix inside the bucket in storage.gcs.rootdirectory",
                    self.bucket
                ),
            );
        }
        if let Some(endpoint) = &self.endpoint
            && let Err(why) = http_url(endpoint)
        {
            problems.add(join(at, "endpoint"), why);
        }
        if self.chunksize < MIN_GCS_CHUNK {
            problems.add(
                join(at, "chunksize"),
                format!(
                    "{} is too small: parts are at least {MIN_GCS_CHUNK} bytes (256 KiB)",
                    self.chunksize
                ),
            );
        }
    }
}

section! {
    /// Azure Blob Storage (registry:2's `storage.azure`, with distribution 3's `serviceurl`
    /// and berth's own `chunksize`).
    #[derive(Clone, PartialEq)]
    pub struct AzureConfig {
        accountname: String, "storage account name (required)";
        /// `None` uses Azure's default credential sources.
        accountkey: Option<String>,
            "the account's shared key; unset uses Azure's default credentials (environment, managed identity)",
            read = values::non_empty, secret;
        container: String, "container holding blobs and uploads (required)";
        realm: String = "core.windows.net".to_owned(),
            "domain of the blob service, core.windows.net unless a sovereign cloud";
        /// `None` is `https://<accountname>.blob.<realm>`.
        serviceurl: Option<String>,
            "the blob service URL, instead of https://<accountname>.blob.<realm> (e.g. Azurite's)",
            read = values::non_empty,
            show = |_, config| config.storage.azure.as_ref().map(AzureConfig::service_url).unwrap_or_default();
        rootdirectory: String, "prefix inside the container under which everything is stored",
            read = values::object_prefix;
        chunksize: u64 = 10 * 1024 * 1024,
            "size in bytes of the blocks an upload is cut into, at least 1048576 (1 MiB)",
            read = values::byte_count;
    }
    validate = AzureConfig::validate;
    registry2 = [
        unsupported(
            "credentials",
            "berth uses storage.azure.accountkey, or Azure's default credentials when it is unset",
        ),
    ];
}

const MIN_AZURE_CHUNK: u64 = 1024 * 1024;
/// Azure's largest block.
const MAX_AZURE_CHUNK: u64 = 4000 * 1024 * 1024;

impl AzureConfig {
    /// The blob service's URL.
    pub fn service_url(&self) -> String {
        match &self.serviceurl {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{}.blob.{}", self.accountname, self.realm),
        }
    }

    fn validate(&self, at: &str, problems: &mut Problems) {
        for (key, value) in [
            ("accountname", &self.accountname),
            ("container", &self.container),
        ] {
            if value.is_empty() {
                problems.add(join(at, key), "required when storage.azure is set");
            }
        }
        if let Some(url) = &self.serviceurl
            && let Err(why) = http_url(url)
        {
            problems.add(join(at, "serviceurl"), why);
        }
        if !(MIN_AZURE_CHUNK..=MAX_AZURE_CHUNK).contains(&self.chunksize) {
            problems.add(
                join(at, "chunksize"),
                format!(
                    "{} is out of range: blocks are from {MIN_AZURE_CHUNK} (1 MiB) to {MAX_AZURE_CHUNK} (4000 MiB) bytes",
                    self.chunksize
                ),
            );
        }
    }
}

section! {
    /// IPFS through a node's RPC API (berth's own `storage.ipfs`).
    #[derive(Clone, PartialEq)]
    pub struct IpfsConfig {
        /// Possibly with `user:password@` for Basic auth; [`IpfsConfig::api_url`] gives it
        /// without the credentials.
        api: String,
            "the IPFS node's RPC API URL (Kubo's, without /api/v0), e.g. http://127.0.0.1:5001; user:password@ for Basic auth",
            show = |api, _| values::redact_url(api),
            debug = |api| format!("{:?}", values::redact_url(api));
        /// Sent as `Authorization: Bearer`.
        bearertoken: Option<String>,
            "a bearer token sent to the RPC API (when it is behind an authenticating proxy)",
            read = values::non_empty, secret;
        pin: bool = true, "pin committed blobs so that the node's GC keeps them";
        gateway: Option<String>,
            "a gateway URL to redirect blob downloads to (/ipfs/<cid>); unset streams them through berth",
            read = values::non_empty;
        timeout: Duration = Duration::from_secs(60),
            "how long any call to the node may take (content lookups included)";
        rootdirectory: String = "/berth".to_owned(),
            "the node's MFS directory where uploads are staged";
    }
    validate = IpfsConfig::validate;
}

impl IpfsConfig {
    /// The API URL without user information (validation has checked that it parses).
    pub fn api_url(&self) -> url::Url {
        let mut url = url::Url::parse(&self.api).expect("validated");
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url
    }

    /// The user name and password of Basic authentication, from the API URL's user
    /// information.
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        let url = url::Url::parse(&self.api).ok()?;
        if url.username().is_empty() && url.password().is_none() {
            return None;
        }
        Some((
            values::percent_decode(url.username()),
            values::percent_decode(url.password().unwrap_or_default()),
        ))
    }

    /// The gateway URL (validation has checked that it parses).
    pub fn gateway_url(&self) -> Option<url::Url> {
        self.gateway
            .as_deref()
            .and_then(|g| url::Url::parse(g).ok())
    }

    fn validate(&self, at: &str, problems: &mut Problems) {
        if self.api.is_empty() {
            problems.add(
                join(at, "api"),
                "required when storage.ipfs is set: the node's RPC API URL, e.g. http://127.0.0.1:5001",
            );
        } else if let Err(why) = http_url_parts(&self.api) {
            problems.add(join(at, "api"), why);
        }
        if let Some(gateway) = &self.gateway
            && let Err(why) = http_url(gateway)
        {
            problems.add(join(at, "gateway"), why);
        }
        if self.timeout.is_zero() {
            problems.add(join(at, "timeout"), "must be greater than 0");
        }
        if !self.rootdirectory.starts_with('/') || self.rootdirectory.trim_matches('/').is_empty() {
            problems.add(
                join(at, "rootdirectory"),
                format!(
                    "{:?} must be an absolute MFS directory other than /, e.g. /berth",
                    self.rootdirectory
                ),
            );
        }
    }
}

section! {
    /// Background verification of stored blobs (berth's own `storage.scrub`).
    #[derive(Clone, PartialEq)]
    pub struct ScrubConfig {
        enabled: bool = true,
            "re-hash stored blobs in the background and quarantine those whose bytes changed";
        interval: Duration = Duration::from_secs(24 * 3600), "how often the scrub runs";
        /// Bytes per second.
        rate: u64 = 20 * 1024 * 1024, "the most bytes per second it reads (e.g. 20MiB)",
            read = values::byte_rate, show = |rate, _| format!("{rate} bytes/s");
        reverify: Duration = Duration::from_secs(30 * 24 * 3600),
            "a blob is verified again once its last verification is this old";
    }
    validate = ScrubConfig::validate;
}

impl ScrubConfig {
    fn validate(&self, at: &str, problems: &mut Problems) {
        if self.enabled && self.interval.is_zero() {
            problems.add(
                join(at, "interval"),
                "must be greater than 0 when the scrub is enabled",
            );
        }
        if self.rate == 0 {
            problems.add(join(at, "rate"), "must be greater than 0 bytes per second");
        }
    }
}

/// An http(s) URL with a host and nothing secret in it.
fn http_url(text: &str) -> Result<(), String> {
    let url = http_url_parts(text)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    Ok(())
}

/// An http(s) URL with a host, no query and no fragment; user information allowed.
fn http_url_parts(text: &str) -> Result<url::Url, String> {
    let shown = values::redact_url(text);
    let invalid = |why: &str| format!("invalid URL {shown:?}: {why}");
    let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(url)
}
