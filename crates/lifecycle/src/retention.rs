//! Retention: rules that say which tags to keep, and runs that untag the rest.
//!
//! A run plans each repository on its own: the tags every matching rule keeps (the N most
//! recently pushed or pulled, names matching a glob, pushed or pulled within a time) are
//! kept, and so is any tag an immutability rule protects; the other tags are untagged, never
//! deleted by digest, so the other tags of the same manifest stay. A dry run is that plan; a
//! real run removes exactly the planned tags, each only if it still points where it did
//! when planned (a tag pushed again since is left alone and reported). Garbage collection
//! frees what untagging leaves unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use berth_auth::admin::{Actor, timestamp};
use berth_meta::browse::{TagRow, TagSort};
use berth_meta::{Keep, Origin, RetentionRule, now_millis};
use berth_oci::{Pattern, RepositoryName, Tag, TagPattern};
use serde::{Deserialize, Serialize};

use crate::{Lifecycle, LifecycleError, LifecycleResult};

/// The lease that lets one real retention run at a time across instances and processes.
const LEASE: &str = "retention";
/// How long the lease lasts unless renewed (a run renews it with each repository).
const LEASE_TTL_MS: i64 = 60_000;

/// Tags read per query while planning a repository.
const TAG_PAGE: u32 = 1000;
/// Repositories read per query.
const CATALOG_PAGE: u32 = 1000;

/// A rule as the CLI, the admin API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetentionRuleView {
    pub id: i64,
    pub repositories: String,
    pub keep_last_pushed: Option<u32>,
    pub keep_last_pulled: Option<u32>,
    pub keep_tags: Vec<String>,
    pub keep_tags_regex: Vec<String>,
    /// `30days`, as humantime writes it.
    pub keep_pushed_within: Option<String>,
    pub keep_pulled_within: Option<String>,
    pub created_at: String,
    pub created_by: String,
    /// `database` (added with the CLI, the API or the dashboard) or `config` (the file's
    /// `retention.rules`, changed only there).
    pub source: &'static str,
}

fn human(millis: Option<i64>) -> Option<String> {
    millis.map(|ms| humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string())
}

impl From<RetentionRule> for RetentionRuleView {
    fn from(rule: RetentionRule) -> Self {
        RetentionRuleView {
            id: rule.id,
            repositories: rule.repositories.to_string(),
            keep_last_pushed: rule.keep.keep_last_pushed,
            keep_last_pulled: rule.keep.keep_last_pulled,
            keep_tags: rule
                .keep
                .keep_tags
                .iter()
                .map(ToString::to_string)
                .collect(),
            keep_tags_regex: rule.keep.keep_tags_regex.clone(),
            keep_pushed_within: human(rule.keep.keep_pushed_within),
            keep_pulled_within: human(rule.keep.keep_pulled_within),
            created_at: timestamp(rule.created_at),
            source: if rule.id < 0 { "config" } else { "database" },
            created_by: rule.created_by,
        }
    }
}

/// A rule to add, as the doors receive it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRetentionRule {
    pub repositories: String,
    #[serde(default)]
    pub keep_last_pushed: Option<u32>,
    #[serde(default)]
    pub keep_last_pulled: Option<u32>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// Regular expressions (`^v[0-9]+$`); a tag any of them matches is kept.
    #[serde(default)]
    pub keep_tags_regex: Vec<String>,
    /// A duration: `30d`, `12h`.
    #[serde(default)]
    pub keep_pushed_within: Option<String>,
    #[serde(default)]
    pub keep_pulled_within: Option<String>,
}

impl NewRetentionRule {
    fn parse(&self) -> LifecycleResult<(Pattern, Keep)> {
        let invalid = |field: &str, why: String| LifecycleError::Invalid(format!("{field}: {why}"));
        let repositories = Pattern::parse(&self.repositories)
            .map_err(|e| invalid("repositories", e.to_string()))?;
        let keep_tags = self
            .keep_tags
            .iter()
            .map(|glob| TagPattern::parse(glob).map_err(|e| invalid("keep_tags", e.to_string())))
            .collect::<LifecycleResult<Vec<_>>>()?;
        let within = |field: &str, text: &Option<String>| -> LifecycleResult<Option<i64>> {
            text.as_deref()
                .map(|t| {
                    humantime::parse_duration(t)
                        .map_err(|e| {
                            invalid(
                                field,
                                format!("{t:?} is not a duration ({e}); say 30d, 12h"),
                            )
                        })
                        .and_then(|d| {
                            i64::try_from(d.as_millis())
                                .map_err(|_| invalid(field, format!("{t:?} is too long")))
                        })
                })
                .transpose()
        };
        for pattern in &self.keep_tags_regex {
            regex::Regex::new(pattern).map_err(|e| {
                invalid(
                    "keep_tags_regex",
                    format!("{pattern:?} is not a regular expression: {e}"),
                )
            })?;
        }
        let keep = Keep {
            keep_last_pushed: self.keep_last_pushed,
            keep_last_pulled: self.keep_last_pulled,
            keep_tags,
            keep_tags_regex: self.keep_tags_regex.clone(),
            keep_pushed_within: within("keep_pushed_within", &self.keep_pushed_within)?,
            keep_pulled_within: within("keep_pulled_within", &self.keep_pulled_within)?,
        };
        if keep == Keep::default() {
            return Err(LifecycleError::Invalid(
                "a retention rule must keep something: give keep_last_pushed, keep_last_pulled, \
                 keep_tags, keep_tags_regex, keep_pushed_within or keep_pulled_within"
                    .into(),
            ));
        }
        Ok((repositories, keep))
    }
}

/// A tag a run removes (or would remove).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemovedTag {
    pub tag: String,
    pub digest: String,
}

/// One repository's outcome.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RepositoryRetention {
    pub kept: u64,
    /// Kept only because an immutability rule protects them.
    pub kept_immutable: Vec<String>,
    pub removed: Vec<RemovedTag>,
    /// Planned, but pushed again (or removed) before the run got to them: left alone.
    pub changed_since_planned: Vec<String>,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub repositories: BTreeMap<String, RepositoryRetention>,
    pub removed: u64,
    pub kept: u64,
    pub errors: Vec<String>,
}

impl RetentionReport {
    pub fn summary(&self) -> String {
        let verb = if self.dry_run {
            "would untag"
        } else {
            "untagged"
        };
        format!(
            "{verb} {} tags in {} repositories; kept {}{}",
            self.removed,
            self.repositories
                .values()
                .filter(|r| !r.removed.is_empty())
                .count(),
            self.kept,
            if self.errors.is_empty() {
                String::new()
            } else {
                format!("; {} errors", self.errors.len())
            }
        )
    }
}

/// The tags of one repository that `rules` keep, by name.
fn kept_tags(rules: &[&RetentionRule], tags: &[TagRow], now: i64) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    let mut by_pushed: Vec<&TagRow> = tags.iter().collect();
    by_pushed.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.tag.cmp(&b.tag)));
    let mut by_pulled: Vec<&TagRow> = tags.iter().filter(|t| t.last_pulled_at.is_some()).collect();
    by_pulled.sort_by(|a, b| {
        b.last_pulled_at
            .cmp(&a.last_pulled_at)
            .then(a.tag.cmp(&b.tag))
    });
    for rule in rules {
        let keep = &rule.keep;
        // Validated when the rule was made (or the configuration loaded).
        let regexes: Vec<regex::Regex> = keep
            .keep_tags_regex
            .iter()
            .filter_map(|pattern| regex::Regex::new(pattern).ok())
            .collect();
        if let Some(n) = keep.keep_last_pushed {
            kept.extend(by_pushed.iter().take(n as usize).map(|t| t.tag.clone()));
        }
        if let Some(n) = keep.keep_last_pulled {
            kept.extend(by_pulled.iter().take(n as usize).map(|t| t.tag.clone()));
        }
        for tag in tags {
            let pushed_recently = keep
                .keep_pushed_within
                .is_some_and(|within| now - tag.pushed_at <= within);
            let pulled_recently = match (keep.keep_pulled_within, tag.last_pulled_at) {
                (Some(within), Some(pulled)) => now - pulled <= within,
                _ => false,
            };
            let named = keep.keep_tags.iter().any(|glob| glob.matches(&tag.tag))
                || regexes.iter().any(|re| re.is_match(&tag.tag));
            if pushed_recently || pulled_recently || named {
                kept.insert(tag.tag.clone());
            }
        }
    }
    kept
}

impl Lifecycle {
    /// The database's rules, oldest first, then the configuration file's.
    pub async fn retention_rules(&self) -> LifecycleResult<Vec<RetentionRuleView>> {
        Ok(self
            .all_retention_rules()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn all_retention_rules(&self) -> LifecycleResult<Vec<RetentionRule>> {
        let mut rules = self.meta.retention_rules().await?;
        rules.extend(self.configured_retention.iter().cloned());
        Ok(rules)
    }

    /// Adds a retention rule; audited. Runs apply it; adding it removes nothing by itself.
    pub async fn add_retention_rule(
        &self,
        actor: &Actor,
        rule: &NewRetentionRule,
    ) -> LifecycleResult<RetentionRuleView> {
        let (repositories, keep) = rule.parse()?;
        let added: RetentionRuleView = self
            .meta
            .add_retention_rule(&repositories, &keep, &actor.name())
            .await?
            .into();
        let detail = serde_json::to_string(&added).expect("views serialize");
        self.record(
            actor,
            "retention",
            "allowed",
            &format!("added rule {detail}"),
        )
        .await;
        Ok(added)
    }

    pub async fn remove_retention_rule(
        &self,
        actor: &Actor,
        id: i64,
    ) -> LifecycleResult<RetentionRuleView> {
        if id < 0 {
            return Err(LifecycleError::Conflict(format!(
                "retention rule {id} is retention.rules[{}] in the configuration file: change it there",
                -id - 1
            )));
        }
        let removed: RetentionRuleView = self
            .meta
            .remove_retention_rule(id)
            .await?
            .ok_or_else(|| LifecycleError::NotFound(format!("no retention rule {id}")))?
            .into();
        self.record(
            actor,
            "retention",
            "allowed",
            &format!("removed rule {}", removed.id),
        )
        .await;
        Ok(removed)
    }

    /// Plans every repository a rule matches and, unless `dry_run`, untags what the plan
    /// removes. A real run is audited with its summary, and holds the `retention` lease:
    /// one real run at a time across instances ([`LifecycleError::Conflict`] while another
    /// runs).
    pub async fn apply_retention(
        &self,
        actor: &Actor,
        dry_run: bool,
    ) -> LifecycleResult<RetentionReport> {
        if dry_run {
            return self.plan_retention(actor, true).await;
        }
        if !self
            .leases
            .try_lease(LEASE, &self.holder, LEASE_TTL_MS)
            .await?
        {
            return Err(LifecycleError::Conflict(
                "a retention run is already under way on another instance".into(),
            ));
        }
        let outcome = self.plan_retention(actor, false).await;
        if let Err(e) = self.leases.release_lease(LEASE, &self.holder).await {
            tracing::warn!(error = %e, "could not release the retention lease; it lapses by itself");
        }
        outcome
    }

    async fn plan_retention(
        &self,
        actor: &Actor,
        dry_run: bool,
    ) -> LifecycleResult<RetentionReport> {
        let rules = self.all_retention_rules().await?;
        let immutable = self.meta.immutable_tag_rules().await?;
        let mut report = RetentionReport {
            dry_run,
            ..RetentionReport::default()
        };
        if rules.is_empty() {
            return Ok(report);
        }
        let origin = Arc::new(Origin {
            actor: actor.name(),
            ..Origin::system("retention")
        });
        let now = now_millis();
        let mut after: Option<String> = None;
        loop {
            let names = self
                .meta
                .list_repositories(after.as_deref(), CATALOG_PAGE)
                .await?;
            let Some(last) = names.last() else { break };
            after = Some(last.clone());
            for name in &names {
                let matching: Vec<&RetentionRule> = rules
                    .iter()
                    .filter(|r| r.repositories.matches(name))
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                let Ok(repository) = RepositoryName::parse(name) else {
                    continue;
                };
                // Renewed as the run goes; lost (held too long without renewal), the run stops.
                if !dry_run
                    && !self
                        .leases
                        .try_lease(LEASE, &self.holder, LEASE_TTL_MS)
                        .await?
                {
                    return Err(LifecycleError::Conflict(
                        "the retention lease passed to another instance; this run stopped".into(),
                    ));
                }
                let tags = self.all_tags(&repository).await?;
                let kept = kept_tags(&matching, &tags, now);
                let mut outcome = RepositoryRetention::default();
                for tag in &tags {
                    if kept.contains(&tag.tag) {
                        outcome.kept += 1;
                    } else if immutable.iter().any(|r| r.protects(name, &tag.tag)) {
                        outcome.kept += 1;
                        outcome.kept_immutable.push(tag.tag.clone());
                    } else if dry_run {
                        outcome.removed.push(RemovedTag {
                            tag: tag.tag.clone(),
                            digest: tag.digest.to_string(),
                        });
                    } else {
                        self.untag(&origin, &repository, tag, &mut outcome, &mut report.errors)
                            .await;
                    }
                }
                report.kept += outcome.kept;
                report.removed += outcome.removed.len() as u64;
                report.repositories.insert(name.clone(), outcome);
            }
        }
        if !dry_run {
            self.record(actor, "retention", "allowed", &report.summary())
                .await;
        }
        Ok(report)
    }

    async fn untag(
        &self,
        origin: &Arc<Origin>,
        repository: &RepositoryName,
        row: &TagRow,
        outcome: &mut RepositoryRetention,
        errors: &mut Vec<String>,
    ) {
        let Ok(tag) = Tag::parse(&row.tag) else {
            return;
        };
        match self
            .registry
            .untag(origin, repository, &tag, &row.digest)
            .await
        {
            Ok(true) => outcome.removed.push(RemovedTag {
                tag: row.tag.clone(),
                digest: row.digest.to_string(),
            }),
            Ok(false) => outcome.changed_since_planned.push(row.tag.clone()),
            Err(e) => errors.push(format!("{repository}:{}: {}", row.tag, e.message)),
        }
    }

    async fn all_tags(&self, repository: &RepositoryName) -> LifecycleResult<Vec<TagRow>> {
        let mut tags = Vec::new();
        loop {
            let page = self
                .meta
                .tag_page(repository, TagSort::Name, tags.len() as u64, TAG_PAGE)
                .await?;
            let done = page.rows.len() < TAG_PAGE as usize;
            tags.extend(page.rows);
            if done {
                return Ok(tags);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tag: &str, pushed_at: i64, last_pulled_at: Option<i64>) -> TagRow {
        TagRow {
            tag: tag.into(),
            digest: berth_oci::Digest::of(berth_oci::Algorithm::Sha256, tag.as_bytes()),
            media_type: String::new(),
            pushed_at,
            size: 0,
            kind: None,
            platforms: Vec::new(),
            pulls: 0,
            last_pulled_at,
        }
    }

    fn rule(keep: Keep) -> RetentionRule {
        RetentionRule {
            id: 1,
            repositories: Pattern::parse("**").unwrap(),
            keep,
            created_at: 0,
            created_by: "test".into(),
        }
    }

    fn kept(rules: &[RetentionRule], tags: &[TagRow], now: i64) -> Vec<String> {
        let rules: Vec<&RetentionRule> = rules.iter().collect();
        kept_tags(&rules, tags, now).into_iter().collect()
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn each_criterion_keeps_what_it_names_and_rules_combine_with_or() {
        let now = 100 * DAY;
        let tags = [
            row("a", now - 5 * DAY, None),
            row("b", now - 4 * DAY, Some(now - 30 * DAY)),
            row("c", now - 3 * DAY, Some(now - DAY)),
            row("v1", now - 50 * DAY, None),
            row("d", now - 2 * DAY, None),
        ];
        let last_pushed = rule(Keep {
            keep_last_pushed: Some(2),
            ..Keep::default()
        });
        assert_eq!(
            kept(std::slice::from_ref(&last_pushed), &tags, now),
            ["c", "d"]
        );
        let last_pulled = rule(Keep {
            keep_last_pulled: Some(1),
            ..Keep::default()
        });
        assert_eq!(kept(std::slice::from_ref(&last_pulled), &tags, now), ["c"]);
        let named = rule(Keep {
            keep_tags: vec![TagPattern::parse("v*").unwrap()],
            ..Keep::default()
        });
        assert_eq!(kept(std::slice::from_ref(&named), &tags, now), ["v1"]);
        let by_regex = rule(Keep {
            keep_tags_regex: vec!["^[ab]$".into()],
            ..Keep::default()
        });
        assert_eq!(
            kept(std::slice::from_ref(&by_regex), &tags, now),
            ["a", "b"]
        );
        let pushed_within = rule(Keep {
            keep_pushed_within: Some(4 * DAY),
            ..Keep::default()
        });
        assert_eq!(kept(&[pushed_within], &tags, now), ["b", "c", "d"]);
        let pulled_within = rule(Keep {
            keep_pulled_within: Some(40 * DAY),
            ..Keep::default()
        });
        assert_eq!(kept(&[pulled_within], &tags, now), ["b", "c"]);
        assert_eq!(
            kept(&[last_pushed, named, last_pulled], &tags, now),
            ["c", "d", "v1"]
        );
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let refused = |rule: NewRetentionRule| match rule.parse() {
            Err(LifecycleError::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        let base = || NewRetentionRule {
            repositories: "ci/**".into(),
            keep_last_pushed: Some(3),
            ..NewRetentionRule::default()
        };
        assert!(
            refused(NewRetentionRule {
                repositories: "CI".into(),
                ..base()
            })
            .starts_with("repositories:")
        );
        assert!(
            refused(NewRetentionRule {
                keep_tags: vec!["v/1".into()],
                ..base()
            })
            .starts_with("keep_tags:")
        );
        assert!(
            refused(NewRetentionRule {
                keep_tags_regex: vec!["v(".into()],
                ..base()
            })
            .starts_with("keep_tags_regex:")
        );
        assert!(
            refused(NewRetentionRule {
                keep_pushed_within: Some("30 fortnights".into()),
                ..base()
            })
            .starts_with("keep_pushed_within:")
        );
        assert!(
            refused(NewRetentionRule {
                repositories: "ci/**".into(),
                ..NewRetentionRule::default()
            })
            .contains("must keep something")
        );
    }
}
