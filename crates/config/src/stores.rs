//! The blob stores beside the filesystem and S3 (`storage.gcs`, `storage.azure`,
//! `storage.ipfs`), and the background scrub of stored blobs (`storage.scrub`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::values;

/// Google Cloud Storage (registry:2's `storage.gcs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcsConfig {
    pub bucket: String,
    /// A service account key file; `None` uses application default credentials.
    #[serde(deserialize_with = "values::non_empty_path")]
    pub keyfile: Option<PathBuf>,
    /// Another endpoint (berth's own key); `None` is Google's.
    #[serde(deserialize_with = "values::non_empty")]
    pub endpoint: Option<String>,
    #[serde(deserialize_with = "values::object_prefix")]
    pub rootdirectory: String,
    #[serde(deserialize_with = "values::byte_count")]
    pub chunksize: u64,
}

const MIN_GCS_CHUNK: u64 = 256 * 1024;

impl Default for GcsConfig {
    fn default() -> Self {
        GcsConfig {
            bucket: String::new(),
            keyfile: None,
            endpoint: None,
            rootdirectory: String::new(),
            // registry:2's default.
            chunksize: 5 * 1024 * 1024,
        }
    }
}

impl GcsConfig {
    pub(crate) fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        if self.bucket.is_empty() {
            problem(
                "storage.gcs.bucket",
                "required when storage.gcs is set: the name of the bucket to store blobs in".into(),
            );
        } else if self.bucket.contains(['/', ' ']) {
            problem(
                "storage.gcs.bucket",
                format!(
                    "invalid bucket name {:?}: put a prefix inside the bucket in storage.gcs.rootdirectory",
                    self.bucket
                ),
            );
        }
        if let Some(endpoint) = &self.endpoint
            && let Err(why) = http_url(endpoint)
        {
            problem("storage.gcs.endpoint", why);
        }
        if self.chunksize < MIN_GCS_CHUNK {
            problem(
                "storage.gcs.chunksize",
                format!(
                    "{} is too small: parts are at least {MIN_GCS_CHUNK} bytes (256 KiB)",
                    self.chunksize
                ),
            );
        }
    }
}

/// Azure Blob Storage (registry:2's `storage.azure`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureConfig {
    pub accountname: String,
    /// A secret; `None` uses Azure's default credential sources.
    #[serde(deserialize_with = "values::non_empty")]
    pub accountkey: Option<String>,
    pub container: String,
    pub realm: String,
    /// The service URL (distribution 3's key); `None` is `https://<account>.blob.<realm>`.
    #[serde(deserialize_with = "values::non_empty")]
    pub serviceurl: Option<String>,
    #[serde(deserialize_with = "values::object_prefix")]
    pub rootdirectory: String,
    #[serde(deserialize_with = "values::byte_count")]
    pub chunksize: u64,
}

const MIN_AZURE_CHUNK: u64 = 1024 * 1024;
/// Azure's largest block.
const MAX_AZURE_CHUNK: u64 = 4000 * 1024 * 1024;

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            accountname: String::new(),
            accountkey: None,
            container: String::new(),
            realm: "core.windows.net".to_owned(),
            serviceurl: None,
            rootdirectory: String::new(),
            chunksize: 10 * 1024 * 1024,
        }
    }
}

/// Shows whether the key is set, never its value.
impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("accountname", &self.accountname)
            .field(
                "accountkey",
                &if self.accountkey.is_some() {
                    "(set)"
                } else {
                    "(unset)"
                },
            )
            .field("container", &self.container)
            .field("realm", &self.realm)
            .field("serviceurl", &self.serviceurl)
            .field("rootdirectory", &self.rootdirectory)
            .field("chunksize", &self.chunksize)
            .finish()
    }
}

impl AzureConfig {
    /// The blob service's URL.
    pub fn service_url(&self) -> String {
        match &self.serviceurl {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{}.blob.{}", self.accountname, self.realm),
        }
    }

    pub(crate) fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        for (key, value) in [
            ("accountname", &self.accountname),
            ("container", &self.container),
        ] {
            if value.is_empty() {
                problem(
                    &format!("storage.azure.{key}"),
                    "required when storage.azure is set".into(),
                );
            }
        }
        if let Some(url) = &self.serviceurl
            && let Err(why) = http_url(url)
        {
            problem("storage.azure.serviceurl", why);
        }
        if !(MIN_AZURE_CHUNK..=MAX_AZURE_CHUNK).contains(&self.chunksize) {
            problem(
                "storage.azure.chunksize",
                format!(
                    "{} is out of range: blocks are from {MIN_AZURE_CHUNK} (1 MiB) to {MAX_AZURE_CHUNK} (4000 MiB) bytes",
                    self.chunksize
                ),
            );
        }
    }
}

/// IPFS through a node's RPC API (berth's own `storage.ipfs`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpfsConfig {
    /// The RPC API's base URL, possibly with `user:password@` for Basic auth. Checked by
    /// validation; [`IpfsConfig::api_url`] gives it without the credentials.
    pub api: String,
    /// A secret, sent as `Authorization: Bearer`.
    #[serde(deserialize_with = "values::non_empty")]
    pub bearertoken: Option<String>,
    pub pin: bool,
    #[serde(deserialize_with = "values::non_empty")]
    pub gateway: Option<String>,
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
    pub rootdirectory: String,
}

impl Default for IpfsConfig {
    fn default() -> Self {
        IpfsConfig {
            api: String::new(),
            bearertoken: None,
            pin: true,
            gateway: None,
            timeout: Duration::from_secs(60),
            rootdirectory: "/berth".to_owned(),
        }
    }
}

/// Shows the API URL without its password and whether the token is set.
impl fmt::Debug for IpfsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpfsConfig")
            .field("api", &values::redact_url(&self.api))
            .field(
                "bearertoken",
                &if self.bearertoken.is_some() {
                    "(set)"
                } else {
                    "(unset)"
                },
            )
            .field("pin", &self.pin)
            .field("gateway", &self.gateway)
            .field("timeout", &self.timeout)
            .field("rootdirectory", &self.rootdirectory)
            .finish()
    }
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
        let decode = |text: &str| values::percent_decode(text);
        Some((
            decode(url.username()),
            decode(url.password().unwrap_or_default()),
        ))
    }

    /// The gateway URL (validation has checked that it parses).
    pub fn gateway_url(&self) -> Option<url::Url> {
        self.gateway
            .as_deref()
            .and_then(|g| url::Url::parse(g).ok())
    }

    pub(crate) fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        if self.api.is_empty() {
            problem(
                "storage.ipfs.api",
                "required when storage.ipfs is set: the node's RPC API URL, e.g. http://127.0.0.1:5001".into(),
            );
        } else if let Err(why) = http_url_with_credentials(&self.api) {
            problem("storage.ipfs.api", why);
        }
        if let Some(gateway) = &self.gateway
            && let Err(why) = http_url(gateway)
        {
            problem("storage.ipfs.gateway", why);
        }
        if self.timeout.is_zero() {
            problem("storage.ipfs.timeout", "must be greater than 0".into());
        }
        if !self.rootdirectory.starts_with('/') || self.rootdirectory.trim_matches('/').is_empty() {
            problem(
                "storage.ipfs.rootdirectory",
                format!(
                    "{:?} must be an absolute MFS directory other than /, e.g. /berth",
                    self.rootdirectory
                ),
            );
        }
    }
}

/// Background verification of stored blobs (berth's own `storage.scrub`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "values::duration")]
    pub interval: Duration,
    /// Bytes per second.
    #[serde(deserialize_with = "values::byte_rate")]
    pub rate: u64,
    #[serde(deserialize_with = "values::duration")]
    pub reverify: Duration,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            enabled: true,
            interval: Duration::from_secs(24 * 3600),
            rate: 20 * 1024 * 1024,
            reverify: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl ScrubConfig {
    pub(crate) fn validate(&self, problem: &mut impl FnMut(&str, String)) {
        if self.enabled && self.interval.is_zero() {
            problem(
                "storage.scrub.interval",
                "must be greater than 0 when the scrub is enabled".into(),
            );
        }
        if self.rate == 0 {
            problem(
                "storage.scrub.rate",
                "must be greater than 0 bytes per second".into(),
            );
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

fn http_url_with_credentials(text: &str) -> Result<(), String> {
    http_url_parts(text).map(drop)
}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Loaded, load};

    fn loaded(yaml: &str, env: &[(&str, &str)]) -> Result<Loaded, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yml");
        std::fs::write(&file, yaml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        load(Some(&file), env).map_err(|e| e.to_string())
    }

    #[test]
    fn registry_v2_gcs_and_azure_sections_configure_those_stores() {
        let gcs = loaded(
            "storage:\n  gcs:\n    bucket: registry\n    keyfile: /etc/gcs.json\n    rootdirectory: /prefix/\n",
            &[("REGISTRY_STORAGE_GCS_CHUNKSIZE", "10485760")],
        )
        .unwrap()
        .config
        .storage
        .gcs
        .unwrap();
        assert_eq!(gcs.bucket, "registry");
        assert_eq!(gcs.keyfile.unwrap().to_str(), Some("/etc/gcs.json"));
        assert_eq!(gcs.rootdirectory, "prefix");
        assert_eq!(gcs.chunksize, 10 * 1024 * 1024);

        let azure = loaded(
            "storage:\n  azure:\n    accountname: acct\n    accountkey: c2VjcmV0\n    container: c\n",
            &[],
        )
        .unwrap()
        .config
        .storage
        .azure
        .unwrap();
        assert_eq!(azure.service_url(), "https://acct.blob.core.windows.net");
        assert!(
            !format!("{azure:?}").contains("c2VjcmV0"),
            "the key is never shown"
        );
        let emulated = loaded(
            "",
            &[
                ("REGISTRY_STORAGE_AZURE_ACCOUNTNAME", "devstoreaccount1"),
                ("REGISTRY_STORAGE_AZURE_CONTAINER", "c"),
                (
                    "REGISTRY_STORAGE_AZURE_SERVICEURL",
                    "http://127.0.0.1:10000/devstoreaccount1/",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            emulated.config.storage.azure.unwrap().service_url(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
    }

    #[test]
    fn ipfs_takes_credentials_from_the_url_or_a_token() {
        let config = loaded(
            "storage:\n  ipfs:\n    api: http://berth:p%40ss@kubo:5001\n    gateway: https://gw.example.com\n    timeout: 30s\n",
            &[],
        )
        .unwrap()
        .config;
        let ipfs = config.storage.ipfs.clone().unwrap();
        assert_eq!(ipfs.api_url().as_str(), "http://kubo:5001/");
        assert_eq!(
            ipfs.basic_credentials(),
            Some(("berth".into(), "p@ss".into()))
        );
        assert_eq!(ipfs.timeout, Duration::from_secs(30));
        assert!(ipfs.pin);
        assert_eq!(ipfs.rootdirectory, "/berth");
        let explained = crate::explain(&loaded("", &[]).unwrap());
        assert!(
            !explained.contains("storage.ipfs"),
            "unset stores are not listed"
        );
        assert!(!format!("{ipfs:?}").contains("p%40ss"), "{ipfs:?}");
        let token = loaded(
            "",
            &[
                ("BERTH_STORAGE_IPFS_API", "https://kubo.example.com"),
                ("BERTH_STORAGE_IPFS_BEARERTOKEN", "s3cret"),
            ],
        )
        .unwrap();
        assert_eq!(
            token.config.storage.ipfs.unwrap().bearertoken.as_deref(),
            Some("s3cret")
        );
    }

    #[test]
    fn store_settings_are_validated() {
        let cases: &[(&str, &str)] = &[
            ("storage:\n  gcs: {}\n", "storage.gcs.bucket"),
            (
                "storage:\n  gcs:\n    bucket: b\n    chunksize: 1000\n",
                "storage.gcs.chunksize",
            ),
            (
                "storage:\n  gcs:\n    bucket: b\n    endpoint: ftp://x\n",
                "storage.gcs.endpoint",
            ),
            (
                "storage:\n  azure:\n    container: c\n",
                "storage.azure.accountname",
            ),
            (
                "storage:\n  azure:\n    accountname: a\n    container: c\n    chunksize: 1\n",
                "storage.azure.chunksize",
            ),
            ("storage:\n  ipfs: {}\n", "storage.ipfs.api"),
            (
                "storage:\n  ipfs:\n    api: kubo:5001\n",
                "storage.ipfs.api",
            ),
            (
                "storage:\n  ipfs:\n    api: http://k:5001\n    rootdirectory: berth\n",
                "storage.ipfs.rootdirectory",
            ),
            (
                "storage:\n  ipfs:\n    api: http://k:5001\n    gateway: https://u:p@gw\n",
                "storage.ipfs.gateway",
            ),
            (
                "storage:\n  s3:\n    bucket: b\n    keyid: k\n",
                "storage.s3.keyid",
            ),
            (
                "storage:\n  s3:\n    bucket: b\n  ipfs:\n    api: http://k:5001\n",
                "storage.ipfs",
            ),
            ("storage:\n  scrub:\n    rate: 0\n", "storage.scrub.rate"),
            ("storage:\n  scrub:\n    rate: fast\n", "storage.scrub.rate"),
        ];
        for (yaml, path) in cases {
            let error = loaded(yaml, &[]).expect_err(yaml);
            assert!(error.contains(path), "{yaml}: {error}");
        }
        let scrub = loaded(
            "storage:\n  scrub:\n    rate: 50MiB\n    enabled: false\n",
            &[],
        )
        .unwrap()
        .config
        .storage
        .scrub;
        assert_eq!(scrub.rate, 50 * 1024 * 1024);
        assert!(!scrub.enabled);
        let s3 = loaded(
            "storage:\n  s3:\n    bucket: b\n    encrypt: true\n    keyid: k\n",
            &[],
        )
        .unwrap()
        .config
        .storage
        .s3
        .unwrap();
        assert!(s3.encrypt);
        assert_eq!(s3.keyid.as_deref(), Some("k"));
    }
}
