//! A remote's platform filter (`platforms`): of a multi-platform index, only the images of
//! the listed platforms are fetched and cached; the others are refused by digest, saying
//! which platform they are for, and never asked of the upstream.
//!
//! The index itself is cached and served byte for byte (its digest must not change). What it
//! leaves out is learnt each time an index passes through the remote (fetched or served from
//! the cache); a client reads the index before its children, so this holds after a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_oci::manifest::{DOCKER_MANIFEST_LIST, OCI_IMAGE_INDEX};
use berth_oci::{Digest, ErrorCode, RegistryError, RepositoryName};

/// Children remembered at most; past this the memory starts afresh (the next index read
/// fills it again).
const MAX_REMEMBERED: usize = 100_000;

pub(crate) struct PlatformFilter {
    /// `os/architecture` or `os/architecture/variant`.
    wanted: Vec<String>,
    /// Children of cached indexes that the filter leaves out, with their platform.
    left_out: Mutex<HashMap<(RepositoryName, Digest), String>>,
}

impl PlatformFilter {
    /// `None` when every platform is wanted.
    pub(crate) fn new(wanted: Vec<String>) -> Option<PlatformFilter> {
        (!wanted.is_empty()).then(|| PlatformFilter {
            wanted,
            left_out: Mutex::default(),
        })
    }

    fn wants(&self, platform: &str) -> bool {
        self.wanted.iter().any(|w| {
            platform == w
                || platform
                    .strip_prefix(w.as_str())
                    .is_some_and(|variant| variant.starts_with('/'))
        })
    }

    /// Notes which children of `content` (if it is an index) the filter leaves out.
    pub(crate) fn note(&self, repository: &RepositoryName, media_type: &str, content: &[u8]) {
        if media_type != OCI_IMAGE_INDEX && media_type != DOCKER_MANIFEST_LIST {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Child>,
        }
        #[derive(serde::Deserialize)]
        struct Child {
            digest: String,
            platform: Option<Platform>,
        }
        #[derive(serde::Deserialize)]
        struct Platform {
            os: String,
            architecture: String,
            variant: Option<String>,
        }
        let Ok(index) = serde_json::from_slice::<Index>(content) else {
            return; // validated when stored: cannot happen for a cached index
        };
        let mut left_out = self.left_out.lock().unwrap_or_else(|p| p.into_inner());
        if left_out.len() > MAX_REMEMBERED {
            left_out.clear();
        }
        for child in index.manifests {
            let platform = match &child.platform {
                Some(p) => match &p.variant {
                    Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                },
                None => "unknown".to_owned(),
            };
            if let Ok(digest) = Digest::parse(&child.digest)
                && !self.wants(&platform)
            {
                left_out.insert((repository.clone(), digest), platform);
            }
        }
    }

    /// Refuses a child manifest the filter leaves out.
    pub(crate) fn check(
        &self,
        remote: &str,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let left_out = self.left_out.lock().unwrap_or_else(|p| p.into_inner());
        match left_out.get(&(repository.clone(), digest.clone())) {
            None => Ok(()),
            Some(platform) => Err(RegistryError::new(
                ErrorCode::ManifestUnknown,
                format!(
                    "{digest} is the {platform} image of a multi-platform index, and the remote repository {remote:?} caches only {} (remotes.{remote}.platforms)",
                    self.wanted.join(", ")
                ),
            )
            .with_detail(serde_json::json!({
                "reason": "platform not cached",
                "platform": platform,
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_s_other_platforms_are_refused_by_digest() {
        let filter =
            PlatformFilter::new(vec!["linux/amd64".into(), "linux/arm/v7".into()]).unwrap();
        let repository = RepositoryName::parse("hub/library/alpine").unwrap();
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"digest": digest('a'), "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": digest('b'), "platform": {"os": "linux", "architecture": "amd64", "variant": "v3"}},
                {"digest": digest('c'), "platform": {"os": "linux", "architecture": "arm64"}},
                {"digest": digest('d'), "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
                {"digest": digest('e'), "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"digest": digest('f')},
            ],
        });
        filter.note(&repository, OCI_IMAGE_INDEX, index.to_string().as_bytes());
        let refused = |c: char| {
            filter
                .check("hub", &repository, &Digest::parse(&digest(c)).unwrap())
                .is_err()
        };
        assert!(!refused('a') && !refused('b') && !refused('e'));
        assert!(refused('c') && refused('d') && refused('f'));
        let error = filter
            .check("hub", &repository, &Digest::parse(&digest('c')).unwrap())
            .unwrap_err();
        assert!(error.message.contains("linux/arm64"), "{}", error.message);
        assert!(error.message.contains("remotes.hub.platforms"));
        let other = RepositoryName::parse("hub/library/other").unwrap();
        assert!(
            filter
                .check("hub", &other, &Digest::parse(&digest('c')).unwrap())
                .is_ok(),
            "per repository"
        );
    }
}
