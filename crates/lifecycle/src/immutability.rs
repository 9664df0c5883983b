//! Tag immutability rules: who may add and remove them, and how they are shown. The rules
//! themselves are enforced by the metadata store, in the transaction that would move or
//! delete a tag (`berth_meta::tag_rules`).

use berth_auth::admin::{Actor, timestamp};
use berth_meta::ImmutableTagRule;
use berth_oci::{Pattern, TagPattern};
use serde::{Deserialize, Serialize};

use crate::{Lifecycle, LifecycleError, LifecycleResult};

/// A rule as the CLI, the admin API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImmutableTagRuleView {
    pub id: i64,
    /// Repository glob (`library/**`).
    pub repositories: String,
    /// Tag glob (`v*`).
    pub tags: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<ImmutableTagRule> for ImmutableTagRuleView {
    fn from(rule: ImmutableTagRule) -> Self {
        ImmutableTagRuleView {
            id: rule.id,
            repositories: rule.repositories.to_string(),
            tags: rule.tags.to_string(),
            created_at: timestamp(rule.created_at),
            created_by: rule.created_by,
        }
    }
}

/// A rule to add, as the doors receive it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewImmutableTagRule {
    pub repositories: String,
    pub tags: String,
}

impl Lifecycle {
    pub async fn immutable_tag_rules(&self) -> LifecycleResult<Vec<ImmutableTagRuleView>> {
        let rules = self.meta.immutable_tag_rules().await?;
        Ok(rules.into_iter().map(Into::into).collect())
    }

    /// Adds a rule (the same patterns again are the existing rule); audited.
    pub async fn add_immutable_tag_rule(
        &self,
        actor: &Actor,
        rule: &NewImmutableTagRule,
    ) -> LifecycleResult<ImmutableTagRuleView> {
        let repositories = Pattern::parse(&rule.repositories)
            .map_err(|e| LifecycleError::Invalid(format!("repositories: {e}")))?;
        let tags = TagPattern::parse(&rule.tags)
            .map_err(|e| LifecycleError::Invalid(format!("tags: {e}")))?;
        let added = self
            .meta
            .add_immutable_tag_rule(&repositories, &tags, &actor.name())
            .await?;
        self.record(
            actor,
            "immutable-tags",
            "allowed",
            &format!("added rule {}", added.describe()),
        )
        .await;
        Ok(added.into())
    }

    /// Removes a rule: the tags it protected can be moved and deleted again; audited.
    pub async fn remove_immutable_tag_rule(
        &self,
        actor: &Actor,
        id: i64,
    ) -> LifecycleResult<ImmutableTagRuleView> {
        let removed = self
            .meta
            .remove_immutable_tag_rule(id)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("no immutable tag rule {id}")))?;
        self.record(
            actor,
            "immutable-tags",
            "allowed",
            &format!("removed rule {}", removed.describe()),
        )
        .await;
        Ok(removed.into())
    }
}
