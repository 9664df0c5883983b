//! The repository read path, and which implementation serves which repository name.
//!
//! A client's reads (manifests and blobs) go through a [`ReadPath`]. [`Registry`] is the
//! local one: what was pushed. A pull-through cache (`berth-cache`) is another: it decorates
//! the local registry, answering from it what is cached and fetching the rest from its
//! upstream. A virtual repository is a third: it resolves a name through an ordered list of
//! other read paths. [`Namespaces`] maps a repository name to the implementation that serves
//! it, by name prefix, the way registry:2's proxy is just another namespace, and says where
//! a write to that name goes: handlers ask it, and no operation of [`Registry`] knows caches
//! or virtual repositories exist.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use berth_oci::{Digest, ErrorCode, Page, Reference, RegistryError, RepositoryName};

use bytes::Bytes;

use crate::events::Origin;
use crate::{BlobRead, Listing, Registry, Result, StoredManifest};

/// The reads a client makes in a repository.
#[async_trait]
pub trait ReadPath: Send + Sync + 'static {
    /// A manifest's bytes, if its media type is one of `accept`'s. A pull (`origin`) is
    /// published as an event; a HEAD (`None`) is not.
    async fn get_manifest(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<StoredManifest>;

    /// The size of a blob (a HEAD).
    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64>;

    /// A blob, or the range of it `range_header` asks for, ready to send.
    async fn read_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        range_header: Option<&str>,
    ) -> Result<BlobRead>;

    /// A page of the repository's tags (a cache lists what it holds).
    async fn tags(&self, repository: &RepositoryName, page: &Page) -> Result<Listing>;

    /// The index of the manifests whose subject is `subject` (a cache lists what it holds).
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes>;

    /// What the read path is and how it is doing, for administrators (`GET
    /// /api/v1/remotes`); `None` for the local registry.
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }
}

#[async_trait]
impl ReadPath for Registry {
    async fn get_manifest(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<StoredManifest> {
        Registry::get_manifest(self, origin, repository, reference, accept.iter().copied()).await
    }

    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        Registry::blob_size(self, repository, digest).await
    }

    async fn read_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        range_header: Option<&str>,
    ) -> Result<BlobRead> {
        Registry::read_blob(self, origin, repository, digest, range_header).await
    }

    async fn tags(&self, repository: &RepositoryName, page: &Page) -> Result<Listing> {
        Registry::tags(self, repository, page).await
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes> {
        Registry::referrers(self, repository, subject, artifact_type).await
    }
}

/// Where writes (pushes and deletes) to a mounted namespace go.
#[derive(Debug, Clone)]
pub enum Writes {
    /// Nowhere: they are refused with `DENIED` and the namespace's description.
    Refused,
    /// To the same name with the namespace's prefix replaced by this one (a virtual
    /// repository's deploy target, a local prefix ending in `/`).
    To(String),
}

/// A read path that serves every repository whose name starts with `prefix`, and where
/// writes to those names go.
pub struct Mounted {
    /// Empty (every name: registry:2's proxy mode) or ending in `/`.
    pub prefix: String,
    /// What the namespace is, for the refusal of a write (`"remote repository \"hub\", a
    /// pull-through cache of https://registry-1.docker.io"`).
    pub description: String,
    pub reads: Arc<dyn ReadPath>,
    pub writes: Writes,
    /// The registries (host and port as containerd names them, `docker.io`) whose content
    /// this namespace mirrors: a request with containerd's `?ns=<host>` is served here.
    pub mirrors: Vec<String>,
}

impl Mounted {
    fn serves(&self, name: &RepositoryName) -> bool {
        name.as_str().starts_with(&self.prefix)
    }
}

/// Which read path serves a repository name: the mounted namespace whose prefix it starts
/// with, else the local registry. Prefixes never overlap (configuration refuses that), so
/// at most one matches. The mounted set can be replaced while requests run (remote and
/// virtual repositories made through the admin API): a request keeps the read path it was
/// given.
pub struct Namespaces {
    local: Arc<Registry>,
    mounted: RwLock<Arc<Vec<Mounted>>>,
}

impl Namespaces {
    pub fn new(local: Arc<Registry>, mounted: Vec<Mounted>) -> Namespaces {
        Namespaces {
            local,
            mounted: RwLock::new(Arc::new(mounted)),
        }
    }

    /// The local registry only.
    pub fn local(local: Arc<Registry>) -> Namespaces {
        Namespaces::new(local, Vec::new())
    }

    /// Mounts `mounted` instead of what was.
    pub fn replace(&self, mounted: Vec<Mounted>) {
        *self.mounted.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(mounted);
    }

    fn all(&self) -> Arc<Vec<Mounted>> {
        Arc::clone(&self.mounted.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The read path that serves `name`.
    pub fn reads(&self, name: &RepositoryName) -> Arc<dyn ReadPath> {
        match self.all().iter().find(|m| m.serves(name)) {
            Some(mounted) => Arc::clone(&mounted.reads),
            None => Arc::clone(&self.local) as Arc<dyn ReadPath>,
        }
    }

    /// What each mounted namespace is and how it is doing, in mount order.
    pub fn describe(&self) -> Vec<serde_json::Value> {
        self.all()
            .iter()
            .filter_map(|m| m.reads.describe())
            .collect()
    }

    /// The name a request for `name` with containerd's mirror parameter `?ns=<host>`
    /// stands for: `name` under the prefix of the remote mirroring that host. In registry:2's
    /// proxy mode every name mirrors the one upstream whatever `ns` says (as registry:2
    /// does); otherwise a host nothing mirrors is refused (`NAME_UNKNOWN`), rather than
    /// answered with a local repository of the same name, which is another registry's image.
    pub fn mirror(&self, ns: &str, name: &RepositoryName) -> Result<RepositoryName> {
        let mounted = self.all();
        if mounted.iter().any(|m| m.prefix.is_empty()) {
            return Ok(name.clone());
        }
        let ns = ns.to_ascii_lowercase();
        match mounted.iter().find(|m| m.mirrors.contains(&ns)) {
            Some(mounted) => RepositoryName::parse(&format!("{}{name}", mounted.prefix)),
            None => Err(RegistryError::new(
                ErrorCode::NameUnknown,
                format!("this registry mirrors no repositories of {ns}"),
            )
            .with_detail(serde_json::json!({ "ns": ns, "repository": name.as_str() }))),
        }
    }

    /// The repository a write (push or delete) to `name` changes: `name` itself outside
    /// mounted namespaces, the deploy target's name in a virtual repository that has one.
    /// Anywhere else the write is refused with `DENIED` and a message saying what the
    /// namespace is.
    pub fn write_target(&self, name: &RepositoryName) -> Result<RepositoryName> {
        let all = self.all();
        let Some(mounted) = all.iter().find(|m| m.serves(name)) else {
            return Ok(name.clone());
        };
        match &mounted.writes {
            Writes::To(prefix) => {
                let rest = &name.as_str()[mounted.prefix.len()..];
                RepositoryName::parse(&format!("{prefix}{rest}"))
            }
            Writes::Refused => Err(RegistryError::new(
                ErrorCode::Denied,
                format!(
                    "{name} is in {}: it cannot be pushed to or deleted from",
                    mounted.description
                ),
            )
            .with_detail(serde_json::json!({
                "repository": name.as_str(),
                "namespace": mounted.prefix,
            }))),
        }
    }
}
