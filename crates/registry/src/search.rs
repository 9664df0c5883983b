//! Finding repositories and tags by name, tag, label and annotation: the search runs in the
//! metadata database's full-text index (SQLite FTS5, PostgreSQL's text search), never over
//! storage. Results are grouped by repository, best first, and only repositories the caller
//! may pull are returned.

use berth_meta::browse::{SearchQuery, SearchRow};

use crate::errors::from_meta;
use crate::{Registry, Result};

/// The words of a query, at most this many.
pub const MAX_QUERY_WORDS: usize = 8;
/// Matching entries read per search, at most (see [`SearchQuery`]: every repository's name
/// first, then every repository's first tag, ...); only those are ranked. A query matching
/// more shows the best of them and says that it was cut.
pub const MAX_CANDIDATES: u32 = 1000;
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
    /// Matching tags beyond those shown (among the entries read).
    pub more_tags: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Found {
    /// Every visible repository found, best first.
    pub hits: Vec<Hit>,
    /// Whether the index may hold more matches than were read ([`MAX_CANDIDATES`]).
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
            })
            .await
            .map_err(from_meta)?;
        let truncated = rows.len() as u32 >= MAX_CANDIDATES;
        let mut hits = group(rows);
        hits.retain(|hit| visible(&hit.repository));
        Ok(Found { hits, truncated })
    }
}

/// Entries grouped by repository: the repository with the best entry first (then by name),
/// and within one its best tags first (then by name).
fn group(mut rows: Vec<SearchRow>) -> Vec<Hit> {
    rows.sort_by(|a, b| {
        (a.repository.as_str(), b.score, a.tag.as_str())
            .partial_cmp(&(b.repository.as_str(), a.score, b.tag.as_str()))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut hits: Vec<Hit> = Vec::new();
    for row in rows {
        if hits
            .last()
            .is_none_or(|hit| hit.repository != row.repository)
        {
            hits.push(Hit {
                repository: row.repository.clone(),
                score: row.score,
                tags: Vec::new(),
                more_tags: 0,
            });
        }
        let hit = hits.last_mut().expect("pushed above");
        if row.tag.is_empty() {
            continue;
        }
        if hit.tags.len() < TAGS_SHOWN {
            hit.tags.push(row.tag);
        } else {
            hit.more_tags += 1;
        }
    }
    hits.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.repository.cmp(&b.repository))
    });
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_grouped_by_repository_best_first() {
        let row = |repository: &str, tag: &str, score| SearchRow {
            repository: repository.into(),
            tag: tag.into(),
            score,
        };
        let mut rows = vec![row("b", "", 1.0), row("a", "x", 0.5)];
        rows.extend((0..8).map(|i| row("a", &format!("t{i}"), 2.0 - f64::from(i) / 10.0)));
        let hits = group(rows);
        let names: Vec<&str> = hits.iter().map(|h| h.repository.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(hits[0].score, 2.0);
        assert_eq!(hits[0].tags, ["t0", "t1", "t2", "t3", "t4"]);
        assert_eq!(hits[0].more_tags, 4);
        assert!(hits[1].tags.is_empty());
    }

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
