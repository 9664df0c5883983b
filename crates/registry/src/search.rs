//! Finding repositories and tags by name, tag, label and annotation: the search runs in the
//! metadata database's full-text index (SQLite FTS5, PostgreSQL's text search), never over
//! storage. Results are grouped by repository, best first, and only repositories the caller
//! may pull are returned.

use berth_meta::browse::SearchQuery;

use crate::errors::from_meta;
use crate::{Registry, Result};

/// The words of a query, at most this many.
pub const MAX_QUERY_WORDS: usize = 8;
/// Rows read per search, at most (a few per repository): a query matching more repositories
/// shows the best of them.
pub const MAX_CANDIDATES: u32 = 6000;
/// Matched tags kept per repository for display.
const TAGS_SHOWN: usize = 5;

/// What a person searches for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub text: String,
    pub namespace: Option<String>,
    pub platform: Option<String>,
    pub signed: bool,
    pub sbom: bool,
}

impl Search {
    /// The query's words: lower-case runs of letters and digits (what the index holds).
    pub fn words(&self) -> Vec<String> {
        self.text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase().chars().take(64).collect())
            .take(MAX_QUERY_WORDS)
            .collect()
    }

    /// Whether there is anything to search for.
    pub fn is_empty(&self) -> bool {
        self.words().is_empty()
            && self.namespace.is_none()
            && self.platform.is_none()
            && !self.signed
            && !self.sbom
    }
}

/// One repository found, with the tags that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub repository: String,
    pub score: f64,
    /// Best first, at most a few.
    pub tags: Vec<String>,
    /// Matching tags beyond those shown.
    pub more_tags: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Found {
    /// Every visible repository found, best first.
    pub hits: Vec<Hit>,
    /// Whether the index held more matches than were read ([`MAX_CANDIDATES`]).
    pub truncated: bool,
}

impl Registry {
    /// Runs a search; `visible` says which repositories the caller may see.
    pub async fn search(
        &self,
        search: &Search,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Found> {
        if search.is_empty() {
            return Ok(Found::default());
        }
        let rows = self
            .meta
            .search(&SearchQuery {
                words: search.words(),
                namespace: search.namespace.clone(),
                platform: search.platform.clone(),
                signed: search.signed,
                sbom: search.sbom,
                limit: MAX_CANDIDATES,
                // The repository's own entry and the tags shown.
                per_repository: TAGS_SHOWN as u32 + 1,
            })
            .await
            .map_err(from_meta)?;
        let truncated = rows.len() as u32 >= MAX_CANDIDATES;
        let mut hits: Vec<Hit> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for row in rows {
            let at = *index.entry(row.repository.clone()).or_insert_with(|| {
                hits.push(Hit {
                    repository: row.repository.clone(),
                    score: row.score,
                    tags: Vec::new(),
                    more_tags: row.tags as usize,
                });
                hits.len() - 1
            });
            let hit = &mut hits[at];
            if !row.tag.is_empty() && hit.tags.len() < TAGS_SHOWN {
                hit.tags.push(row.tag);
                hit.more_tags = hit.more_tags.saturating_sub(1);
            }
        }
        hits.retain(|hit| visible(&hit.repository));
        Ok(Found { hits, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words() {
        let search = Search {
            text: "  Team/App-Server:1.2 <script>".into(),
            ..Search::default()
        };
        assert_eq!(
            search.words(),
            ["team", "app", "server", "1", "2", "script"]
        );
        assert!(Search::default().is_empty());
        assert!(
            !Search {
                signed: true,
                ..Search::default()
            }
            .is_empty()
        );
    }
}
