//! `proxy` (registry:2's pull-through cache of one upstream) and `remotes` (berth's
//! pull-through caches, each mounted at a name prefix).

use std::path::PathBuf;
use std::time::Duration;

use berth_oci::{Pattern, RepositoryName};

use crate::schema::{Problems, join, section};
use crate::values::{self, EndpointUrl};

section! {
    /// registry:2's `proxy`: with `remoteurl` set, every repository is a pull-through cache
    /// of that registry (berth's remote with an empty prefix) and pushes are refused.
    #[derive(Clone, PartialEq)]
    pub struct ProxyConfig {
        remoteurl: Option<EndpointUrl>,
            "the registry to mirror (e.g. https://registry-1.docker.io); unset: no proxy mode";
        username: Option<String>, "user name for the upstream", read = values::non_empty;
        password: Option<String>, "password for the upstream", secret, read = values::non_empty;
        /// registry:2 deletes cached content after `ttl`; berth keeps it and revalidates
        /// tags instead, so the key is accepted and has no effect.
        ttl: Option<Duration>,
            "registry:2's expiry of cached content; berth keeps cached content and revalidates tags after 10m instead";
    }
    validate = ProxyConfig::validate;
}

impl ProxyConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        check_credentials(path, &self.username, &self.password, problems);
    }
}

section! {
    /// A remote repository (`remotes.<name>`): names under `prefix` are a pull-through
    /// cache of an upstream registry.
    #[derive(Clone, PartialEq)]
    pub struct RemoteConfig {
        /// `Some` in every configuration that loaded: validation requires it.
        prefix: Option<String>,
            "the name prefix in berth (hub: hub/library/alpine is library/alpine upstream; required)",
            read = values::non_empty;
        urls: Vec<EndpointUrl>,
            "the upstream registry's URLs, tried in order (failover; at least one)";
        username: Option<String>, "user name for the upstream", read = values::non_empty;
        password: Option<String>, "password for the upstream", secret, read = values::non_empty;
        cafile: Option<PathBuf>,
            "PEM file of CA certificates the upstream's certificate may chain to, besides the system's";
        insecure: bool, "accept any certificate from the upstream (never in production)";
        revalidateafter: Duration = Duration::from_secs(600),
            "how long a tag is served from the cache before one HEAD upstream checks it";
        immutabletags: Vec<Pattern>,
            "tags never revalidated once cached (patterns such as v*.*.*)";
        negativettl: Duration = Duration::from_secs(300),
            "how long an upstream 404 is remembered";
        servestale: bool = true,
            "serve the cached manifest when the upstream cannot be reached or fails";
        timeout: Duration = Duration::from_secs(30),
            "how long the upstream may stay silent or send a blob at a crawl (under 64 KiB per period) before the transfer is abandoned; a manifest may take twice this";
        ratelimit: Option<u32>,
            "the most requests a second sent to the upstream (a second's worth of burst; more wait up to 1s, then 429 with Retry-After); unset: no cap";
        platforms: Vec<String>,
            "of a multi-platform index, cache only these platforms' images (os/architecture[/variant], e.g. linux/amd64); others are refused by digest; empty: all";
        /// Bytes; 0 is no cap.
        maxsize: u64 = 0,
            "the most bytes cached under the prefix (e.g. 50GiB); past it the least recently pulled images are evicted (garbage collection frees their blobs); 0: no cap",
            read = values::byte_size, show = |size, _| if *size == 0 { "0 (no cap)".to_owned() } else { format!("{size} bytes") };
    }
    validate = RemoteConfig::validate;
}

impl RemoteConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        match &self.prefix {
            None => problems.add(join(path, "prefix"), "required: the name prefix in berth"),
            Some(prefix) => {
                if let Err(e) = RepositoryName::parse(prefix) {
                    problems.add(
                        join(path, "prefix"),
                        format!("{prefix:?} is not a repository name prefix: {}", e.message),
                    );
                }
            }
        }
        if self.urls.is_empty() {
            problems.add(join(path, "urls"), "required: at least one upstream URL");
        }
        if self.timeout < std::time::Duration::from_secs(1) {
            problems.add(join(path, "timeout"), "must be at least 1s");
        }
        for (i, platform) in self.platforms.iter().enumerate() {
            let parts: Vec<&str> = platform.split('/').collect();
            let valid = (2..=3).contains(&parts.len())
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
                });
            if !valid {
                problems.add(
                    format!("{}[{i}]", join(path, "platforms")),
                    format!("{platform:?} is not a platform: os/architecture[/variant], e.g. linux/amd64 or linux/arm/v7"),
                );
            }
        }
        if self.ratelimit == Some(0) {
            problems.add(
                join(path, "ratelimit"),
                "must be at least 1 (or unset: no cap)",
            );
        }
        if self.revalidateafter.is_zero() {
            problems.add(join(path, "revalidateafter"), "must be greater than 0");
        }
        check_credentials(path, &self.username, &self.password, problems);
    }
}

fn check_credentials(
    path: &str,
    username: &Option<String>,
    password: &Option<String>,
    problems: &mut Problems,
) {
    if username.is_some() != password.is_some() {
        let missing = if username.is_some() {
            "password"
        } else {
            "username"
        };
        problems.add(
            join(path, missing),
            "username and password go together: set both or neither",
        );
    }
}

/// The prefixes of the proxy, the remotes and the virtual repositories, as `(key path,
/// prefix)`: no two may overlap (a name would belong to two namespaces). The proxy's prefix
/// is empty: it overlaps any other.
pub(super) fn check_prefixes(
    proxy: &ProxyConfig,
    remotes: &std::collections::BTreeMap<String, RemoteConfig>,
    virtuals: &std::collections::BTreeMap<String, super::VirtualConfig>,
    problems: &mut Problems,
) {
    let remotes = remotes
        .iter()
        .map(|(name, r)| (format!("remotes.{name}.prefix"), &r.prefix));
    let virtuals = virtuals
        .iter()
        .map(|(name, v)| (format!("virtuals.{name}.prefix"), &v.prefix));
    let mut prefixes: Vec<(String, String)> = remotes
        .chain(virtuals)
        .filter_map(|(path, prefix)| prefix.as_ref().map(|p| (path, format!("{p}/"))))
        .collect();
    if proxy.remoteurl.is_some() {
        prefixes.insert(0, ("proxy.remoteurl".to_owned(), String::new()));
    }
    for (i, (path, prefix)) in prefixes.iter().enumerate() {
        for (other_path, other) in &prefixes[..i] {
            if prefix.starts_with(other.as_str()) || other.starts_with(prefix.as_str()) {
                problems.add(
                    path.clone(),
                    format!(
                        "overlaps {other_path}: a repository name would belong to both (prefixes must not contain one another)"
                    ),
                );
            }
        }
    }
}
