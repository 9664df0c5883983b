//! [`BrowseStore`] over SQL, once for every engine; the statements that differ (full-text
//! search, a name's namespace) come from [`BrowseDialect`].

use async_trait::async_trait;
use berth_oci::{Digest, RepositoryName};
use bytes::Bytes;
use sqlx::{
    ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Postgres, Row, Sqlite, Type,
};

use crate::browse::{
    BrowseStore, DayActivity, ManifestDetails, ManifestRecord, PullRecord, RepositorySummary,
    SearchQuery, SearchRow, StorageUsage, TagPage, TagRow, TagSort, Usage,
};
use crate::sql_store::{Dialect, SqlStore};
use crate::{MetaError, Result};

/// What differs between engines for the dashboard's queries (a part of [`Dialect`]).
pub trait BrowseDialect: sqlx::Database + sqlx::database::HasStatementCache {
    /// The first `$7` entries matching the query text `$1` (from
    /// [`BrowseDialect::match_text`]) in the index's order (each repository's name, then each
    /// repository's first tag, ...; see migration 0501) that pass `{filters}`
    /// ([`SEARCH_FILTERS`], over entry `e`), as (repository name, tag, score: larger is better).
    /// Only those are ranked, so that a query matching many entries stays cheap.
    const MATCHES: &'static str;
    /// The index's order of entries `e`.
    const ENTRY_ORDER: &'static str;
    /// The namespace of repository `r.name`: its first path component, or `''`.
    const NAMESPACE: &'static str;
    /// The query text for words that are letters and digits only, each a prefix.
    fn match_text(words: &[String]) -> String;
    /// A subquery listing the texts of the JSON array in parameter `param` (`$1`).
    fn json_texts(param: &str) -> String;
}

impl BrowseDialect for Sqlite {
    // FTS5 walks its matches in rowid order and computes bm25 only for the rows returned.
    const MATCHES: &'static str = "SELECT r.name, e.tag, -bm25(search_index) AS score
         FROM search_index JOIN search_entries e ON e.id = search_index.rowid
         JOIN repositories r ON r.id = e.repository_id
         WHERE search_index MATCH $1 {filters}
         ORDER BY search_index.rowid LIMIT $7";
    const ENTRY_ORDER: &'static str = "e.id";
    const NAMESPACE: &'static str = "CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE '' END";

    fn match_text(words: &[String]) -> String {
        words
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn json_texts(param: &str) -> String {
        format!("SELECT value FROM json_each({param})")
    }
}

impl BrowseDialect for Postgres {
    // GIN returns matches in no useful order, and the planner estimates a prefix query's
    // matches badly (84 for 20,000), so "the matches, sorted, the first $7" fetches and sorts
    // every match of a broad query (30-48 ms for 15,000-20,000 here). So the window is read
    // in parts that each cost little, chained so that a part runs only while those before it
    // left the window short (an Append under a LIMIT pulls its children in turn, and each
    // part is a CTE, computed when first read):
    // 1. `names`: the matching repository names (ordinal 0: they come first), from the
    //    partial GIN index of names alone (migration 0870), so that a query matching tags
    //    does not walk 100,000 names;
    // 2. `probe`: the matching tags among the first $7 tags in the window's order (a walk
    //    of the (ordinal, id) index);
    // 3. `further`: if the probe's share of matches promises to fill the window, those
    //    among the next tags, up to 20 x $7 walked in all (a walk stops as soon as the
    //    window is full);
    // 4. `rest`: the exact query over the text index for the tags after the last one
    //    walked (cheap exactly then: few entries match).
    // Parts 2-4 are the matching tags in the window's order, so the window is exactly the
    // first $7 matches. Then only those are ranked. All in one statement: on a busy machine
    // a round trip costs more than these parts (bench/README.md, "PostgreSQL's search in
    // one statement").
    const MATCHES: &'static str = "WITH
        names AS MATERIALIZED (
            SELECT e.id FROM search_entries e
            WHERE e.ordinal = 0 AND e.document @@ to_tsquery('simple', $1) {filters}
            ORDER BY e.id LIMIT $7),
        probe_end AS MATERIALIZED (
            SELECT w.ordinal, w.id FROM search_entries w WHERE w.ordinal > 0
            ORDER BY w.ordinal, w.id OFFSET $7 - 1 LIMIT 1),
        probe AS MATERIALIZED (
            SELECT e.id FROM (SELECT w.id, w.ordinal, w.repository_id, w.tag, w.document
                FROM search_entries w WHERE w.ordinal > 0 ORDER BY w.ordinal, w.id LIMIT $7) AS e
            WHERE e.document @@ to_tsquery('simple', $1) {filters}
            ORDER BY e.ordinal, e.id LIMIT $7),
        further_wanted AS MATERIALIZED (
            SELECT (SELECT count(*) FROM probe) * 20 >= $7 - (SELECT count(*) FROM names) AS yes),
        further AS MATERIALIZED (
            SELECT e.id FROM (SELECT w.id, w.ordinal, w.repository_id, w.tag, w.document
                FROM search_entries w
                WHERE w.ordinal > 0 AND (w.ordinal, w.id) > (SELECT ordinal, id FROM probe_end)
                ORDER BY w.ordinal, w.id LIMIT 19 * $7) AS e
            WHERE (SELECT yes FROM further_wanted)
              AND e.document @@ to_tsquery('simple', $1) {filters}
            ORDER BY e.ordinal, e.id LIMIT $7),
        walked_end AS MATERIALIZED (
            SELECT ordinal, id FROM probe_end WHERE NOT (SELECT yes FROM further_wanted)
            UNION ALL
            (SELECT w.ordinal, w.id FROM search_entries w
             WHERE w.ordinal > 0 AND (SELECT yes FROM further_wanted)
             ORDER BY w.ordinal, w.id OFFSET 20 * $7 - 1 LIMIT 1)),
        -- `ordinal + 0`: the bound is a filter, not an index condition (a bitmap of every
        -- tag after it, ANDed with the text index's, cost more than the text index alone).
        rest AS MATERIALIZED (
            SELECT e.id FROM search_entries e
            WHERE e.ordinal > 0 AND e.document @@ to_tsquery('simple', $1) {filters}
              AND (e.ordinal + 0, e.id) > (SELECT ordinal, id FROM walked_end)
            ORDER BY e.ordinal, e.id LIMIT $7)
    SELECT r.name, e.tag,
        CAST(ts_rank(e.document, to_tsquery('simple', $1)) AS DOUBLE PRECISION) AS score
    FROM (SELECT id FROM names UNION ALL SELECT id FROM probe UNION ALL SELECT id FROM further
          UNION ALL SELECT id FROM rest LIMIT $7) AS m
    JOIN search_entries e ON e.id = m.id
    JOIN repositories r ON r.id = e.repository_id";
    const ENTRY_ORDER: &'static str = "e.ordinal, e.id";
    const NAMESPACE: &'static str =
        "CASE WHEN position('/' in r.name) > 0 THEN split_part(r.name, '/', 1) ELSE '' END";

    fn match_text(words: &[String]) -> String {
        words
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(" & ")
    }

    fn json_texts(param: &str) -> String {
        format!("SELECT jsonb_array_elements_text(CAST({param} AS JSONB))")
    }
}

/// The search filters, over entry `e`: `$2`/`$3` the namespace's bounds, `$4` a LIKE pattern
/// for the platform, `$5`/`$6` (0 or 1) signed and SBOM.
const SEARCH_FILTERS: &str = "
    AND (CAST($2 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM repositories n
         WHERE n.id = e.repository_id AND n.name >= $2 AND n.name < $3))
    AND (CAST($4 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM tags t
         JOIN manifest_details d ON d.manifest_id = t.manifest_id
         WHERE t.repository_id = e.repository_id AND t.name = e.tag
           AND (' ' || d.platforms || ' ') LIKE $4))
    AND ($5 = 0 OR EXISTS (SELECT 1 FROM tags t JOIN manifests m ON m.id = t.manifest_id
         JOIN manifests s ON s.repository_id = m.repository_id AND s.subject = m.digest
         JOIN manifest_details sd ON sd.manifest_id = s.id
         WHERE t.repository_id = e.repository_id AND t.name = e.tag AND sd.kind = 'signature'))
    AND ($6 = 0 OR EXISTS (SELECT 1 FROM tags t JOIN manifests m ON m.id = t.manifest_id
         JOIN manifests s ON s.repository_id = m.repository_id AND s.subject = m.digest
         JOIN manifest_details sd ON sd.manifest_id = s.id
         WHERE t.repository_id = e.repository_id AND t.name = e.tag AND sd.kind = 'sbom'))";

/// The first `$7` tags (in the index's order, `{order}`) that pass the filters, when the
/// search has no words (`$1` is then empty).
const FILTER_ONLY: &str = "SELECT r.name, f.tag, CAST(0 AS DOUBLE PRECISION) AS score
     FROM (SELECT e.repository_id, e.tag FROM search_entries e
           WHERE e.tag <> '' AND $1 = '' {filters} ORDER BY {order} LIMIT $7) AS f
     JOIN repositories r ON r.id = f.repository_id";

const TAG_COLUMNS: &str = "t.name, m.digest, m.media_type, t.updated_at,
     coalesce(d.total_size, m.size), d.kind, d.platforms, tp.pulls, tp.last_pulled_at";
const TAG_FROM: &str = "tags t JOIN manifests m ON m.id = t.manifest_id
     LEFT JOIN manifest_details d ON d.manifest_id = m.id
     LEFT JOIN tag_pulls tp ON tp.repository_id = t.repository_id AND tp.tag = t.name";

// The reads whose best plan depends on their values (a repository with 10,000 tags or one;
// a rare word or a common one) are not kept as prepared statements: PostgreSQL would soon
// switch such a statement to one generic plan, made for a repository of one tag, that walks
// every tag of a big one (120 ms instead of 1). `.persistent(false)` has them planned with
// their values each time.

fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

fn digest(text: &str) -> Result<Digest> {
    Digest::parse(text).map_err(|_| corrupt("digest", text))
}

fn platforms(text: Option<String>) -> Vec<String> {
    text.map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn count(value: Option<i64>) -> u64 {
    value.unwrap_or(0).max(0) as u64
}

/// The day (since 1970-01-01, UTC) of a time in Unix milliseconds.
pub fn day_of(millis: i64) -> i64 {
    millis.div_euclid(86_400_000)
}

/// A search statement with its parameters bound (see [`BrowseDialect::MATCHES`]).
fn search_statement<'q, DB: Dialect>(
    sql: &str,
    query: &SearchQuery,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB::Arguments: IntoArguments<DB>,
    String: for<'a> Encode<'a, DB> + Type<DB>,
    i64: for<'a> Encode<'a, DB> + Type<DB>,
    Option<String>: for<'a> Encode<'a, DB>,
{
    // The namespace's names sort between "ns/" and "ns0" ('0' follows '/').
    let (low, high) = match &query.namespace {
        Some(ns) => (Some(format!("{ns}/")), Some(format!("{ns}0"))),
        None => (None, None),
    };
    sqlx::query(sqlx::AssertSqlSafe(
        sql.replace("{filters}", SEARCH_FILTERS)
            .replace("{order}", DB::ENTRY_ORDER),
    ))
    .bind(DB::match_text(&query.words))
    .bind(low)
    .bind(high)
    .bind(query.platform.as_ref().map(|p| format!("% {p} %")))
    .bind(i64::from(query.signed))
    .bind(i64::from(query.sbom))
    .bind(i64::from(query.limit))
    .persistent(false)
}

fn search_row<R: Row>(row: &R) -> Result<SearchRow>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    f64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(SearchRow {
        repository: row.try_get(0)?,
        tag: row.try_get(1)?,
        score: row.try_get(2)?,
    })
}

#[async_trait]
impl<DB: Dialect> BrowseStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    f64: for<'r> Decode<'r, DB> + Type<DB>,
    Vec<u8>: for<'r> Decode<'r, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    Option<String>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn repository_summaries(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::Value::from(names.to_vec()).to_string();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.name,
                 (SELECT count(*) FROM tags t WHERE t.repository_id = r.id),
                 (SELECT max(t.updated_at) FROM tags t WHERE t.repository_id = r.id),
                 (SELECT d.description FROM tags t JOIN manifest_details d ON d.manifest_id = t.manifest_id
                  WHERE t.repository_id = r.id AND d.description IS NOT NULL
                  ORDER BY t.updated_at DESC LIMIT 1)
             FROM repositories r WHERE r.name IN ({})",
            DB::json_texts("$1")
        )))
        .bind(list)
        .persistent(false)
        .fetch_all(&self.reader)
        .await?;
        let mut summaries = rows
            .iter()
            .map(|row| {
                Ok(RepositorySummary {
                    name: row.try_get(0)?,
                    tags: count(row.try_get(1)?),
                    last_pushed_at: row.try_get(2)?,
                    description: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        summaries.sort_by_key(|s| names.iter().position(|n| *n == s.name));
        Ok(summaries)
    }

    async fn tag_page(
        &self,
        repository: &RepositoryName,
        sort: TagSort,
        offset: u64,
        limit: u32,
    ) -> Result<TagPage> {
        // The page's tags are chosen on the tags alone (an index walk for name and push
        // time), and only those are then read with their manifests, by name: deep pages stay
        // cheap, and no engine is tempted to walk every tag to avoid sorting 50 rows.
        let page = match sort {
            TagSort::Name => {
                "SELECT p.name FROM tags p WHERE p.repository_id = $1
                 ORDER BY p.name LIMIT $2 OFFSET $3"
            }
            TagSort::Pushed => {
                "SELECT p.name FROM tags p WHERE p.repository_id = $1
                 ORDER BY p.updated_at DESC, p.name LIMIT $2 OFFSET $3"
            }
            TagSort::Size => {
                "SELECT p.name FROM tags p JOIN manifests pm ON pm.id = p.manifest_id
                 LEFT JOIN manifest_details pd ON pd.manifest_id = pm.id
                 WHERE p.repository_id = $1
                 ORDER BY coalesce(pd.total_size, pm.size) DESC, p.name LIMIT $2 OFFSET $3"
            }
        };
        let found = sqlx::query(
            "SELECT r.id, (SELECT count(*) FROM tags t WHERE t.repository_id = r.id)
             FROM repositories r WHERE r.name = $1",
        )
        .bind(repository.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let Some(found) = found else {
            return Ok(TagPage {
                total: 0,
                rows: Vec::new(),
            });
        };
        let repository_id: i64 = found.try_get(0)?;
        let total: i64 = found.try_get(1)?;
        let names: Vec<String> = sqlx::query(page)
            .bind(repository_id)
            .bind(i64::from(limit))
            .bind(offset.min(i64::MAX as u64) as i64)
            .persistent(false)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if names.is_empty() {
            return Ok(TagPage {
                total: total.max(0) as u64,
                rows: Vec::new(),
            });
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TAG_COLUMNS} FROM {TAG_FROM}
             WHERE t.repository_id = $1 AND t.name IN ({})",
            DB::json_texts("$2")
        )))
        .bind(repository_id)
        .bind(serde_json::Value::from(names.clone()).to_string())
        .persistent(false)
        .fetch_all(&self.reader)
        .await?;
        let mut rows = rows
            .iter()
            .map(|row| {
                let digest_text: String = row.try_get(1)?;
                Ok(TagRow {
                    tag: row.try_get(0)?,
                    digest: digest(&digest_text)?,
                    media_type: row.try_get(2)?,
                    pushed_at: row.try_get(3)?,
                    size: count(row.try_get(4)?),
                    kind: row.try_get(5)?,
                    platforms: platforms(row.try_get(6)?),
                    pulls: count(row.try_get(7)?),
                    last_pulled_at: row.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // In the page's order (a tag deleted in between is simply missing).
        rows.sort_by_key(|row| names.iter().position(|n| *n == row.tag));
        Ok(TagPage {
            total: total.max(0) as u64,
            rows,
        })
    }

    async fn manifest_record(
        &self,
        repository: &RepositoryName,
        digest_: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.created_at, d.kind, d.platforms, d.total_size,
                    d.description, d.words, mp.pulls, mp.last_pulled_at, m.content
             FROM repositories r JOIN manifests m ON m.repository_id = r.id AND m.digest = $2
             LEFT JOIN manifest_details d ON d.manifest_id = m.id
             LEFT JOIN manifest_pulls mp ON mp.manifest_id = m.id
             WHERE r.name = $1",
        )
        .bind(repository.as_str())
        .bind(digest_.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let digest_text: String = row.try_get(0)?;
            let kind: Option<String> = row.try_get(3)?;
            let details = match kind {
                Some(kind) => Some(ManifestDetails {
                    kind,
                    platforms: platforms(row.try_get(4)?),
                    total_size: count(row.try_get(5)?),
                    description: row.try_get(6)?,
                    words: row.try_get::<Option<String>, _>(7)?.unwrap_or_default(),
                }),
                None => None,
            };
            let content: Vec<u8> = row.try_get(10)?;
            Ok(ManifestRecord {
                digest: digest(&digest_text)?,
                media_type: row.try_get(1)?,
                pushed_at: row.try_get(2)?,
                details,
                pulls: count(row.try_get(8)?),
                last_pulled_at: row.try_get(9)?,
                content: Bytes::from(content),
            })
        })
        .transpose()
    }

    async fn manifest_tags(
        &self,
        repository: &RepositoryName,
        digest_: &Digest,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT t.name FROM repositories r
             JOIN manifests m ON m.repository_id = r.id AND m.digest = $2
             JOIN tags t ON t.manifest_id = m.id
             WHERE r.name = $1 ORDER BY t.name",
        )
        .bind(repository.as_str())
        .bind(digest_.as_str())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn details_of(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, ManifestDetails)>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::Value::from(digests.iter().map(Digest::as_str).collect::<Vec<_>>())
            .to_string();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT m.digest, d.kind, d.platforms, d.total_size, d.description, d.words
             FROM repositories r JOIN manifests m ON m.repository_id = r.id
             JOIN manifest_details d ON d.manifest_id = m.id
             WHERE r.name = $1 AND m.digest IN ({})",
            DB::json_texts("$2")
        )))
        .bind(repository.as_str())
        .bind(list)
        .persistent(false)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let digest_text: String = row.try_get(0)?;
                Ok((
                    digest(&digest_text)?,
                    ManifestDetails {
                        kind: row.try_get(1)?,
                        platforms: platforms(row.try_get(2)?),
                        total_size: count(row.try_get(3)?),
                        description: row.try_get(4)?,
                        words: row.try_get(5)?,
                    },
                ))
            })
            .collect()
    }

    async fn content_ids_of(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, String)>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::Value::from(digests.iter().map(Digest::as_str).collect::<Vec<_>>())
            .to_string();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT b.digest, b.cid
             FROM repositories r JOIN repository_blobs rb ON rb.repository_id = r.id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = $1 AND b.cid IS NOT NULL AND rb.digest IN ({})",
            DB::json_texts("$2")
        )))
        .bind(repository.as_str())
        .bind(list)
        .persistent(false)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let digest_text: String = row.try_get(0)?;
                Ok((digest(&digest_text)?, row.try_get(1)?))
            })
            .collect()
    }

    async fn put_manifest_details(
        &self,
        repository: &RepositoryName,
        digest_: &Digest,
        details: &ManifestDetails,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO manifest_details (manifest_id, kind, platforms, total_size, description, words)
             SELECT m.id, $3, $4, $5, $6, $7 FROM repositories r
             JOIN manifests m ON m.repository_id = r.id AND m.digest = $2
             WHERE r.name = $1
             ON CONFLICT (manifest_id) DO NOTHING",
        )
        .bind(repository.as_str())
        .bind(digest_.as_str())
        .bind(details.kind.as_str())
        .bind(details.platforms.join(" "))
        .bind(details.total_size.min(i64::MAX as u64) as i64)
        .bind(details.description.as_deref())
        .bind(details.words.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn manifests_without_details(&self, limit: u32) -> Result<Vec<(RepositoryName, Digest)>> {
        let rows = sqlx::query(
            "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE NOT EXISTS (SELECT 1 FROM manifest_details d WHERE d.manifest_id = m.id)
             ORDER BY m.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                let digest_text: String = row.try_get(1)?;
                Ok((
                    RepositoryName::parse(&name).map_err(|_| corrupt("repository name", &name))?,
                    digest(&digest_text)?,
                ))
            })
            .collect()
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchRow>> {
        let matches = if query.words.is_empty() {
            FILTER_ONLY
        } else {
            DB::MATCHES
        };
        let rows = search_statement(matches, query)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(search_row).collect()
    }

    async fn record_pulls(&self, pulls: &[PullRecord]) -> Result<()> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for pull in pulls {
            let count = pull.count.min(i64::MAX as u64) as i64;
            sqlx::query(
                "INSERT INTO manifest_pulls (manifest_id, pulls, last_pulled_at)
                 SELECT m.id, $3, $4 FROM repositories r
                 JOIN manifests m ON m.repository_id = r.id AND m.digest = $2
                 WHERE r.name = $1
                 ON CONFLICT (manifest_id) DO UPDATE SET pulls = manifest_pulls.pulls + excluded.pulls,
                     last_pulled_at = CASE WHEN excluded.last_pulled_at > manifest_pulls.last_pulled_at
                         THEN excluded.last_pulled_at ELSE manifest_pulls.last_pulled_at END",
            )
            .bind(pull.repository.as_str())
            .bind(pull.digest.as_str())
            .bind(count)
            .bind(pull.at)
            .execute(&mut *tx)
            .await?;
            if let Some(tag) = &pull.tag {
                sqlx::query(
                    "INSERT INTO tag_pulls (repository_id, tag, pulls, last_pulled_at)
                     SELECT t.repository_id, t.name, $3, $4 FROM repositories r
                     JOIN tags t ON t.repository_id = r.id AND t.name = $2
                     WHERE r.name = $1
                     ON CONFLICT (repository_id, tag) DO UPDATE SET pulls = tag_pulls.pulls + excluded.pulls,
                         last_pulled_at = CASE WHEN excluded.last_pulled_at > tag_pulls.last_pulled_at
                             THEN excluded.last_pulled_at ELSE tag_pulls.last_pulled_at END",
                )
                .bind(pull.repository.as_str())
                .bind(tag.as_str())
                .bind(count)
                .bind(pull.at)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO repository_activity (repository_id, day, pulls, pushes)
                 SELECT r.id, $2, $3, 0 FROM repositories r WHERE r.name = $1
                 ON CONFLICT (repository_id, day) DO UPDATE
                 SET pulls = repository_activity.pulls + excluded.pulls",
            )
            .bind(pull.repository.as_str())
            .bind(day_of(pull.at))
            .bind(count)
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    async fn activity(
        &self,
        repository: &RepositoryName,
        since_day: i64,
    ) -> Result<Vec<DayActivity>> {
        let rows = sqlx::query(
            "SELECT a.day, a.pulls, a.pushes FROM repositories r
             JOIN repository_activity a ON a.repository_id = r.id
             WHERE r.name = $1 AND a.day >= $2 ORDER BY a.day",
        )
        .bind(repository.as_str())
        .bind(since_day)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DayActivity {
                    day: row.try_get(0)?,
                    pulls: count(row.try_get(1)?),
                    pushes: count(row.try_get(2)?),
                })
            })
            .collect()
    }

    async fn storage_usage(&self, limit: u32) -> Result<StorageUsage> {
        let usage = |row: &DB::Row| -> Result<Usage> {
            Ok(Usage {
                name: row.try_get(0)?,
                blobs: count(row.try_get(1)?),
                bytes: count(row.try_get(2)?),
            })
        };
        let total = sqlx::query("SELECT '', count(*), CAST(sum(size) AS BIGINT) FROM blobs")
            .fetch_one(&self.reader)
            .await?;
        let namespaces = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT ns, count(*), CAST(sum(size) AS BIGINT) FROM
                 (SELECT DISTINCT {} AS ns, b.digest, b.size FROM repositories r
                  JOIN repository_blobs rb ON rb.repository_id = r.id
                  JOIN blobs b ON b.digest = rb.digest) AS held
             GROUP BY ns ORDER BY 3 DESC, 1",
            DB::NAMESPACE
        )))
        .fetch_all(&self.reader)
        .await?;
        let repositories = sqlx::query(
            "SELECT r.name, count(*), CAST(sum(b.size) AS BIGINT) FROM repositories r
             JOIN repository_blobs rb ON rb.repository_id = r.id
             JOIN blobs b ON b.digest = rb.digest
             GROUP BY r.name ORDER BY 3 DESC, 1 LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(StorageUsage {
            total: usage(&total)?,
            namespaces: namespaces.iter().map(usage).collect::<Result<_>>()?,
            repositories: repositories.iter().map(usage).collect::<Result<_>>()?,
        })
    }
}
