//! Rules about tags: immutability and retention.
//!
//! Tag immutability rules: a repository pattern and a tag pattern. A tag that a rule
//! protects is never moved to another manifest or deleted; pushing the digest it already
//! points at again is fine. The rules are checked in the transaction that would move or
//! delete the tag, so a rule added on one instance holds on every instance at once, and two
//! pushes racing to create a protected tag cannot both win.
//!
//! Retention rules: in the repositories a rule's pattern matches, a tag is kept if any
//! matching rule keeps it (the N most recently pushed or pulled, names matching a glob,
//! pushed or pulled within a time); the others are untagged by a retention run (never
//! deleted by digest, so other tags of the same manifest stay). What the rules decide is
//! computed by `berth_lifecycle`; this module only stores them.

use async_trait::async_trait;
use berth_oci::{Pattern, TagPattern};
use serde::Serialize;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImmutableTagRule {
    pub id: i64,
    #[serde(serialize_with = "as_text")]
    pub repositories: Pattern,
    #[serde(serialize_with = "as_text")]
    pub tags: TagPattern,
    /// Unix milliseconds.
    pub created_at: i64,
    pub created_by: String,
}

fn as_text<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl ImmutableTagRule {
    pub fn protects(&self, repository: &str, tag: &str) -> bool {
        self.repositories.matches(repository) && self.tags.matches(tag)
    }

    /// How errors and the audit log name it: `#3 (library/**:v*)`.
    pub fn describe(&self) -> String {
        format!("#{} ({}:{})", self.id, self.repositories, self.tags)
    }
}

/// A retention rule: what it keeps in the repositories it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRule {
    pub id: i64,
    #[serde(serialize_with = "as_text")]
    pub repositories: Pattern,
    #[serde(flatten)]
    pub keep: Keep,
    pub created_at: i64,
    pub created_by: String,
}

/// What a retention rule keeps; a tag any criterion keeps is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Keep {
    pub keep_last_pushed: Option<u32>,
    pub keep_last_pulled: Option<u32>,
    #[serde(serialize_with = "as_texts")]
    pub keep_tags: Vec<TagPattern>,
    /// Regular expressions (validated when the rule was made) a kept tag matches.
    pub keep_tags_regex: Vec<String>,
    /// Milliseconds.
    pub keep_pushed_within: Option<i64>,
    /// Milliseconds.
    pub keep_pulled_within: Option<i64>,
}

fn as_texts<S: serde::Serializer>(
    values: &[TagPattern],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(TagPattern::as_str))
}

#[async_trait]
pub trait TagRuleStore: Send + Sync + 'static {
    /// Every rule, oldest first.
    async fn immutable_tag_rules(&self) -> Result<Vec<ImmutableTagRule>>;

    /// Adds a rule; the same patterns twice are one rule (the existing one is returned).
    async fn add_immutable_tag_rule(
        &self,
        repositories: &Pattern,
        tags: &TagPattern,
        created_by: &str,
    ) -> Result<ImmutableTagRule>;

    /// Removes a rule; `None` if there is no such rule.
    async fn remove_immutable_tag_rule(&self, id: i64) -> Result<Option<ImmutableTagRule>>;

    /// Every retention rule, oldest first.
    async fn retention_rules(&self) -> Result<Vec<RetentionRule>>;

    async fn add_retention_rule(
        &self,
        repositories: &Pattern,
        keep: &Keep,
        created_by: &str,
    ) -> Result<RetentionRule>;

    /// Removes a retention rule; `None` if there is no such rule.
    async fn remove_retention_rule(&self, id: i64) -> Result<Option<RetentionRule>>;
}
