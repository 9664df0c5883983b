//! Tag history and restore ("time machine"): where tags pointed before they were deleted or
//! moved, kept for `retention.taghistory`, and putting a tag back. The history is written by
//! the metadata store in the transaction that untags (`berth_meta::tag_history`); garbage
//! collection keeps what it names reachable until it expires.

use std::sync::Arc;

use berth_auth::admin::{Actor, timestamp};
use berth_meta::{Origin, TagHistoryEntry, now_millis};
use berth_oci::{Digest, ErrorCode, RegistryError, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

use crate::{Lifecycle, LifecycleError, LifecycleResult};

/// One history entry as the CLI, the admin API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagHistoryView {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// `deleted` or `moved`.
    pub reason: String,
    pub actor: String,
    pub removed_at: String,
    /// When the entry expires and stops keeping the manifest from garbage collection.
    pub expires_at: String,
    /// Whether the repository still holds the manifest.
    pub restorable: bool,
}

/// A restore, as the doors receive it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTag {
    pub repository: String,
    pub tag: String,
    /// The digest to restore to: one the tag pointed at within the history; unset, the
    /// newest entry's.
    #[serde(default)]
    pub to: Option<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoredTag {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

fn invalid(field: &str, why: impl std::fmt::Display) -> LifecycleError {
    LifecycleError::Invalid(format!("{field}: {why}"))
}

/// A registry refusal as a lifecycle error: a rule or the registry's mode refused it (a
/// conflict the caller can resolve), or the database or storage failed.
fn from_registry(err: RegistryError) -> LifecycleError {
    match err.code {
        ErrorCode::Denied | ErrorCode::Unsupported => LifecycleError::Conflict(err.message),
        ErrorCode::Unavailable => {
            LifecycleError::Store(berth_meta::MetaError::Unavailable(err.message.into()))
        }
        _ => LifecycleError::Store(berth_meta::MetaError::Database(err.message.into())),
    }
}

impl Lifecycle {
    /// When entries removed now stop counting: the start of the unexpired history.
    fn history_since(&self) -> i64 {
        now_millis() - self.gc.tag_history.as_millis() as i64
    }

    fn history_view(&self, entry: TagHistoryEntry) -> TagHistoryView {
        TagHistoryView {
            expires_at: timestamp(entry.removed_at + self.gc.tag_history.as_millis() as i64),
            removed_at: timestamp(entry.removed_at),
            repository: entry.repository,
            tag: entry.tag,
            digest: entry.digest,
            reason: entry.reason,
            actor: entry.actor,
            restorable: entry.restorable,
        }
    }

    /// The unexpired history of a repository (or of one of its tags), newest first.
    pub async fn tag_history(
        &self,
        repository: &str,
        tag: Option<&str>,
        limit: u32,
    ) -> LifecycleResult<Vec<TagHistoryView>> {
        let repository = RepositoryName::parse(repository).map_err(|e| invalid("repository", e))?;
        let tag = tag
            .map(|t| Tag::parse(t).map_err(|e| invalid("tag", e)))
            .transpose()?;
        let entries = self
            .meta
            .tag_history(&repository, tag.as_ref(), self.history_since(), limit)
            .await?;
        Ok(entries.into_iter().map(|e| self.history_view(e)).collect())
    }

    /// Puts a tag back where its history says it pointed (the newest entry, or `to`);
    /// audited. Refused when an immutability rule protects the tag where it points now, or
    /// when the manifest is no longer stored.
    pub async fn restore_tag(
        &self,
        actor: &Actor,
        request: &RestoreTag,
    ) -> LifecycleResult<RestoredTag> {
        let repository =
            RepositoryName::parse(&request.repository).map_err(|e| invalid("repository", e))?;
        let tag = Tag::parse(&request.tag).map_err(|e| invalid("tag", e))?;
        let to = request
            .to
            .as_deref()
            .map(|d| Digest::parse(d).map_err(|e| invalid("to", e)))
            .transpose()?;
        let history = self
            .meta
            .tag_history(&repository, Some(&tag), self.history_since(), 1000)
            .await?;
        let entry = match &to {
            Some(digest) => history.iter().find(|e| e.digest == digest.as_str()),
            None => history.first(),
        };
        let Some(entry) = entry else {
            return Err(LifecycleError::NotFound(match &to {
                Some(digest) => format!(
                    "{repository}:{tag} did not point at {digest} within the kept history (retention.taghistory)"
                ),
                None => format!("{repository}:{tag} has no history within retention.taghistory"),
            }));
        };
        let digest = Digest::parse(&entry.digest).map_err(|e| invalid("digest", e))?;
        let origin = Arc::new(Origin {
            actor: actor.name(),
            ..Origin::system("tag-restore")
        });
        let restored = self
            .registry
            .restore_tag(&origin, &repository, &tag, &digest)
            .await
            .map_err(from_registry);
        let target = format!("{repository}:{tag}");
        match restored {
            Ok(true) => {
                self.record(actor, &target, "allowed", &format!("restored to {digest}"))
                    .await;
                Ok(RestoredTag {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                    digest: digest.to_string(),
                })
            }
            Ok(false) => {
                let why = format!(
                    "{repository} no longer holds {digest} (deleted or garbage collected): {tag} cannot be restored"
                );
                self.record(actor, &target, "refused", &why).await;
                Err(LifecycleError::NotFound(why))
            }
            Err(e) => {
                self.record(actor, &target, "refused", &e.to_string()).await;
                Err(e)
            }
        }
    }

    /// Forgets history entries past `retention.taghistory` (the `tag-history` job); returns
    /// how many.
    pub async fn expire_tag_history(&self) -> LifecycleResult<u64> {
        Ok(self.meta.expire_tag_history(self.history_since()).await?)
    }
}
