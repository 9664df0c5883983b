//! The repository read path, and which implementation serves which repository name.
//!
//! A client's reads (manifests and blobs) go through a [`ReadPath`]. [`Registry`] is the
//! local one: what was pushed. A pull-through cache (`berth-cache`) is another: it decorates
//! the local registry, answering from it what is cached and fetching the rest from its
//! upstream. [`Namespaces`] maps a repository name to the implementation that serves it, by
//! name prefix, the way registry:2's proxy is just another namespace: handlers ask it, and
//! no operation of [`Registry`] knows caches exist.

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, ErrorCode, Reference, RegistryError, RepositoryName};

use crate::events::Origin;
use crate::{BlobRead, Registry, Result, StoredManifest};

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
}

/// A read path that serves every repository whose name starts with `prefix`, and accepts no
/// writes there.
pub struct Mounted {
    /// Empty (every name: registry:2's proxy mode) or ending in `/`.
    pub prefix: String,
    /// What the namespace is, for the refusal of a write (`"a pull-through cache of
    /// https://registry-1.docker.io"`).
    pub description: String,
    pub reads: Arc<dyn ReadPath>,
}

impl Mounted {
    fn serves(&self, name: &RepositoryName) -> bool {
        name.as_str().starts_with(&self.prefix)
    }
}

/// Which read path serves a repository name: the mounted namespace whose prefix it starts
/// with, else the local registry. Prefixes never overlap (configuration refuses that), so
/// at most one matches.
pub struct Namespaces {
    local: Arc<Registry>,
    mounted: Vec<Mounted>,
}

impl Namespaces {
    pub fn new(local: Arc<Registry>, mounted: Vec<Mounted>) -> Namespaces {
        Namespaces { local, mounted }
    }

    /// The local registry only.
    pub fn local(local: Arc<Registry>) -> Namespaces {
        Namespaces::new(local, Vec::new())
    }

    fn mounted(&self, name: &RepositoryName) -> Option<&Mounted> {
        self.mounted.iter().find(|m| m.serves(name))
    }

    /// The read path that serves `name`.
    pub fn reads(&self, name: &RepositoryName) -> &dyn ReadPath {
        match self.mounted(name) {
            Some(mounted) => mounted.reads.as_ref(),
            None => self.local.as_ref(),
        }
    }

    /// Refuses a write (push or delete) in a namespace that takes none, with `DENIED` and
    /// a message saying what it is.
    pub fn check_writable(&self, name: &RepositoryName) -> Result<()> {
        match self.mounted(name) {
            None => Ok(()),
            Some(mounted) => Err(RegistryError::new(
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
