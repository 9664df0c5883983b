//! Quotas: who may set and remove them, and how they and the usage they count are shown.
//! The counting and the refusals happen in the metadata store, in the transactions that
//! link blobs (`berth_meta::quotas`).

use berth_auth::admin::{Actor, timestamp};
use berth_meta::Quota;
use berth_meta::quotas::Recount;
use berth_oci::Pattern;
use berth_registry::gc::human_bytes;
use serde::{Deserialize, Serialize};

use crate::{Lifecycle, LifecycleError, LifecycleResult};

/// A quota as the CLI, the admin API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuotaView {
    /// The repository pattern it covers (`acme/**` for the namespace `acme`).
    pub repositories: String,
    /// The namespace, when the quota covers exactly one (`acme` for `acme/**`).
    pub namespace: Option<String>,
    pub limit_bytes: u64,
    pub used_bytes: u64,
    /// `1.5 GiB`.
    pub limit: String,
    pub used: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<Quota> for QuotaView {
    fn from(quota: Quota) -> Self {
        let repositories = quota.repositories.to_string();
        QuotaView {
            namespace: namespace_of(&repositories).map(str::to_string),
            repositories,
            limit_bytes: quota.limit_bytes,
            used_bytes: quota.used_bytes,
            limit: human_bytes(quota.limit_bytes),
            used: human_bytes(quota.used_bytes),
            created_at: timestamp(quota.created_at),
            created_by: quota.created_by,
        }
    }
}

/// `acme` for `acme/**`: the namespace (first path segment) a pattern stands for, if it is one.
pub fn namespace_of(pattern: &str) -> Option<&str> {
    pattern
        .strip_suffix("/**")
        .filter(|ns| !ns.is_empty() && !ns.contains(['/', '*']))
}

/// A quota to set, as the doors receive it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewQuota {
    /// A namespace (`acme`: every repository under it) or a repository glob (`team-*/**`).
    pub repositories: String,
    /// Bytes, or a size with a unit: `500MiB`, `10 GB`.
    pub limit: String,
}

/// The pattern a quota's scope names: a namespace (no `/` and no `*`) is `<name>/**`.
pub fn quota_pattern(repositories: &str) -> LifecycleResult<Pattern> {
    let text = if repositories.contains(['/', '*']) {
        repositories.to_string()
    } else {
        format!("{repositories}/**")
    };
    Pattern::parse(&text).map_err(|e| LifecycleError::Invalid(format!("repositories: {e}")))
}

/// One namespace's stored blobs (each once) and its quota, if one covers exactly it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NamespaceUsage {
    /// Empty for repositories at the top level.
    pub namespace: String,
    pub blobs: u64,
    pub bytes: u64,
    pub size: String,
    pub limit_bytes: Option<u64>,
    pub limit: Option<String>,
}

/// Usage per namespace, and every quota with what it counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageReport {
    pub namespaces: Vec<NamespaceUsage>,
    pub quotas: Vec<QuotaView>,
}

impl Lifecycle {
    /// What each namespace holds now (read from the links, as the dashboard's storage page
    /// does) beside the quotas and the usage they keep.
    pub async fn usage(&self) -> LifecycleResult<UsageReport> {
        let quotas: Vec<QuotaView> = self.quotas().await?;
        let stored = self.meta.storage_usage(0).await?;
        let namespaces = stored
            .namespaces
            .into_iter()
            .map(|ns| {
                let quota = quotas
                    .iter()
                    .find(|q| q.namespace.as_deref() == Some(ns.name.as_str()));
                NamespaceUsage {
                    size: human_bytes(ns.bytes),
                    limit_bytes: quota.map(|q| q.limit_bytes),
                    limit: quota.map(|q| q.limit.clone()),
                    namespace: ns.name,
                    blobs: ns.blobs,
                    bytes: ns.bytes,
                }
            })
            .collect();
        Ok(UsageReport { namespaces, quotas })
    }

    pub async fn quotas(&self) -> LifecycleResult<Vec<QuotaView>> {
        let quotas = self.meta.quotas().await?;
        Ok(quotas.into_iter().map(Into::into).collect())
    }

    /// Sets (creates or changes) the limit of a quota; audited. A new quota counts what its
    /// repositories hold now.
    pub async fn set_quota(&self, actor: &Actor, quota: &NewQuota) -> LifecycleResult<QuotaView> {
        let pattern = quota_pattern(&quota.repositories)?;
        let limit = berth_config::parse_byte_size(&quota.limit)
            .map_err(|why| LifecycleError::Invalid(format!("limit: {why}")))?;
        let set = self.meta.set_quota(&pattern, limit, &actor.name()).await?;
        let view = QuotaView::from(set);
        self.record(
            actor,
            "quotas",
            "allowed",
            &format!(
                "set quota on {} to {} ({} used)",
                view.repositories, view.limit, view.used
            ),
        )
        .await;
        Ok(view)
    }

    /// Removes a quota: its repositories may grow without limit again; audited.
    pub async fn remove_quota(
        &self,
        actor: &Actor,
        repositories: &str,
    ) -> LifecycleResult<QuotaView> {
        let pattern = quota_pattern(repositories)?;
        let removed = self
            .meta
            .remove_quota(&pattern)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("no quota on {pattern}")))?;
        let view = QuotaView::from(removed);
        self.record(
            actor,
            "quotas",
            "allowed",
            &format!("removed quota on {} ({})", view.repositories, view.limit),
        )
        .await;
        Ok(view)
    }

    /// Counts every quota's usage again from the links, correcting any that was wrong (a
    /// repair: the writes keep the counts); audited when it corrected something.
    pub async fn recount_quotas(&self, actor: &Actor) -> LifecycleResult<Vec<Recount>> {
        let corrected = self.meta.recount_quotas().await?;
        if !corrected.is_empty() {
            let detail: Vec<String> = corrected
                .iter()
                .map(|r| {
                    format!(
                        "{}: {} -> {} bytes",
                        r.repositories, r.recorded_bytes, r.actual_bytes
                    )
                })
                .collect();
            self.record(
                actor,
                "quotas",
                "allowed",
                &format!("recounted usage: {}", detail.join(", ")),
            )
            .await;
        }
        Ok(corrected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_every_repository_under_it() {
        assert_eq!(quota_pattern("acme").unwrap().as_str(), "acme/**");
        assert_eq!(quota_pattern("team-*/**").unwrap().as_str(), "team-*/**");
        assert_eq!(namespace_of("acme/**"), Some("acme"));
        assert_eq!(namespace_of("team-*/**"), None);
        assert_eq!(namespace_of("a/b/**"), None);
        assert!(quota_pattern("Bad Name").is_err());
    }
}
