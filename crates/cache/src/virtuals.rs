//! A virtual repository: one name prefix read through an ordered list of members (local
//! prefixes first, then remote repositories, each in the configured order, as Artifactory
//! resolves), written to its deploy target.
//!
//! `all/team/app` with the members `team/` (local) and `hub/` (a remote) is read as
//! `team/team/app`, then `hub/team/app`: the first member that has what is asked answers.
//! Members are other read paths (the local [`Registry`], a [`crate::Remote`]), so a virtual
//! repository is one more decorator; it never stores anything itself, and writes are
//! redirected by [`berth_registry::Namespaces`] to the deploy target's name.

use std::sync::Arc;

use async_trait::async_trait;
use berth_oci::{Digest, ErrorCode, Page, Reference, RegistryError, RepositoryName};
use berth_registry::events::Origin;
use berth_registry::{BlobRead, Listing, Mounted, ReadPath, StoredManifest, Writes};
use bytes::Bytes;

use crate::errors::is_unknown;

type Result<T> = std::result::Result<T, RegistryError>;

/// One member of a virtual repository: the read path of the names under `prefix`.
pub struct Member {
    /// Ending in `/`.
    pub prefix: String,
    pub reads: Arc<dyn ReadPath>,
}

pub struct Virtual {
    /// The virtual repository's name, for messages.
    name: String,
    /// Ending in `/`.
    prefix: String,
    /// In resolution order.
    members: Vec<Member>,
    /// The local prefix (ending in `/`) writes go to.
    deploy: Option<String>,
}

impl Virtual {
    /// `members` in resolution order (locals first, then remotes); `deploy` one of the
    /// locals' prefixes, ending in `/`.
    pub fn new(
        name: String,
        prefix: String,
        members: Vec<Member>,
        deploy: Option<String>,
    ) -> Virtual {
        Virtual {
            name,
            prefix,
            members,
            deploy,
        }
    }

    /// The virtual repository as a namespace of the registry: its prefix, read through its
    /// members, written to its deploy target.
    pub fn mount(self: Arc<Self>) -> Mounted {
        let (description, writes) = match &self.deploy {
            Some(deploy) => (
                format!("virtual repository {:?}, deployed to {deploy}", self.name),
                Writes::To(deploy.clone()),
            ),
            None => (
                format!(
                    "virtual repository {:?}, which has no deploy target (virtuals.{}.deploy)",
                    self.name, self.name
                ),
                Writes::Refused,
            ),
        };
        Mounted {
            prefix: self.prefix.clone(),
            description,
            writes,
            mirrors: Vec::new(),
            reads: self,
        }
    }

    /// Each member with the name `repository` has there, in resolution order. A name too
    /// long for a member is one that member cannot hold.
    fn members_for(&self, repository: &RepositoryName) -> Vec<(&Member, RepositoryName)> {
        let rest = &repository.as_str()[self.prefix.len()..];
        self.members
            .iter()
            .filter_map(|member| {
                RepositoryName::parse(&format!("{}{rest}", member.prefix))
                    .ok()
                    .map(|name| (member, name))
            })
            .collect()
    }
}

/// What the members said so far, when none had what was asked.
#[derive(Default)]
struct Resolution {
    /// The first failure other than "not there" (an upstream down, a storage error): the
    /// answer when no later member has it either, since "unknown" would be a guess.
    failure: Option<RegistryError>,
    /// Whether some member has the repository (a manifest or blob unknown there, not the
    /// name).
    repository_known: bool,
}

impl Resolution {
    /// The member's answer if it had it; otherwise notes why not.
    fn take<T>(&mut self, answer: Result<T>) -> Option<T> {
        match answer {
            Ok(found) => Some(found),
            Err(e) if is_unknown(&e) => {
                self.repository_known |= e.code != ErrorCode::NameUnknown;
                None
            }
            Err(e) => {
                self.failure.get_or_insert(e);
                None
            }
        }
    }

    /// The error when no member had it, naming the virtual repository rather than members.
    fn error(
        self,
        repository: &RepositoryName,
        unknown: impl FnOnce() -> RegistryError,
    ) -> RegistryError {
        match self.failure {
            Some(failure) => failure,
            None if self.repository_known => unknown(),
            None => RegistryError::name_unknown(repository),
        }
    }
}

#[async_trait]
impl ReadPath for Virtual {
    async fn get_manifest(
        &self,
        origin: Option<&Arc<Origin>>,
        repository: &RepositoryName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<StoredManifest> {
        let mut resolution = Resolution::default();
        for (member, name) in self.members_for(repository) {
            let answer = member
                .reads
                .get_manifest(origin, &name, reference, accept)
                .await;
            if let Some(found) = resolution.take(answer) {
                return Ok(found);
            }
        }
        Err(resolution.error(repository, || RegistryError::manifest_unknown(reference)))
    }

    async fn blob_size(&self, repository: &RepositoryName, digest: &Digest) -> Result<u64> {
        let mut resolution = Resolution::default();
        for (member, name) in self.members_for(repository) {
            if let Some(found) = resolution.take(member.reads.blob_size(&name, digest).await) {
                return Ok(found);
            }
        }
        Err(resolution.error(repository, || RegistryError::blob_unknown(digest)))
    }

    async fn read_blob(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        digest: &Digest,
        range_header: Option<&str>,
    ) -> Result<BlobRead> {
        let mut resolution = Resolution::default();
        for (member, name) in self.members_for(repository) {
            let answer = member
                .reads
                .read_blob(origin, &name, digest, range_header)
                .await;
            if let Some(found) = resolution.take(answer) {
                return Ok(found);
            }
        }
        Err(resolution.error(repository, || RegistryError::blob_unknown(digest)))
    }

    fn describe(&self) -> Option<serde_json::Value> {
        let bare = |prefix: &str| prefix.trim_end_matches('/').to_string();
        Some(serde_json::json!({
            "name": self.name,
            "kind": "virtual",
            "prefix": bare(&self.prefix),
            "members": self.members.iter().map(|m| bare(&m.prefix)).collect::<Vec<_>>(),
            "deploy": self.deploy.as_deref().map(bare),
        }))
    }

    /// The union of the members' referrers, in member order, each digest once.
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Bytes> {
        let mut union: Option<serde_json::Value> = None;
        let mut manifests = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (member, name) in self.members_for(repository) {
            let index = member
                .reads
                .referrers(&name, subject, artifact_type)
                .await?;
            let index: serde_json::Value =
                serde_json::from_slice(&index).map_err(RegistryError::internal)?;
            for descriptor in index["manifests"].as_array().into_iter().flatten() {
                if seen.insert(descriptor["digest"].to_string()) {
                    manifests.push(descriptor.clone());
                }
            }
            union.get_or_insert(index);
        }
        let mut union = union.ok_or_else(|| RegistryError::name_unknown(repository))?;
        union["manifests"] = serde_json::Value::Array(manifests);
        serde_json::to_vec(&union)
            .map(Bytes::from)
            .map_err(RegistryError::internal)
    }

    /// The union of the members' tags. Each member lists its tags in order after the same
    /// `last`, so the first `n` of the merged lists are exactly the union's page.
    async fn tags(&self, repository: &RepositoryName, page: &Page) -> Result<Listing> {
        let mut merged: Option<Listing> = None;
        for (member, name) in self.members_for(repository) {
            let listing = match member.reads.tags(&name, page).await {
                Ok(listing) => listing,
                Err(e) if e.code == ErrorCode::NameUnknown => continue,
                Err(e) => return Err(e),
            };
            merged = Some(match merged {
                None => listing,
                Some(mut union) => {
                    union.items.extend(listing.items);
                    union.more |= listing.more;
                    union
                }
            });
        }
        let mut union = merged.ok_or_else(|| RegistryError::name_unknown(repository))?;
        union.items.sort_unstable();
        union.items.dedup();
        let limit = union.limit as usize;
        if union.items.len() > limit {
            union.items.truncate(limit);
            union.more = true;
        }
        Ok(union)
    }
}
