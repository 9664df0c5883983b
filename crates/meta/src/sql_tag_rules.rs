//! [`TagRuleStore`] over SQL, once for every engine, and the check the manifest and tag
//! writes of `sql_store` make inside their transactions.

use async_trait::async_trait;
use berth_oci::{Pattern, RepositoryName, Tag, TagPattern};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use crate::sql_store::{Dialect, SqlStore};
use crate::tag_rules::{ImmutableTagRule, Keep, RetentionRule, TagRuleStore};
use crate::{MetaError, Result, now_millis};

const RULES: &str = "SELECT id, repositories, tags, created_at, created_by
     FROM immutable_tag_rules ORDER BY id";

const RETENTION_COLUMNS: &str = "id, repositories, keep_last_pushed, keep_last_pulled, keep_tags,
     keep_pushed_within, keep_pulled_within, created_at, created_by, keep_tags_regex";

fn corrupt(what: &str, value: &str) -> MetaError {
    MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
}

fn retention_rule_from<R: Row>(row: &R) -> Result<RetentionRule>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: for<'r> Decode<'r, R::Database>,
{
    let repositories: String = row.try_get(1)?;
    let count = |index: usize| -> Result<Option<u32>> {
        let value: Option<i64> = row.try_get(index)?;
        value
            .map(|n| u32::try_from(n).map_err(|_| corrupt("retention count", &n.to_string())))
            .transpose()
    };
    let tags: String = row.try_get(4)?;
    let globs: Vec<String> =
        serde_json::from_str(&tags).map_err(|_| corrupt("retention tag globs", &tags))?;
    let regexes: String = row.try_get(9)?;
    let keep_tags_regex: Vec<String> = serde_json::from_str(&regexes)
        .map_err(|_| corrupt("retention tag regular expressions", &regexes))?;
    Ok(RetentionRule {
        id: row.try_get(0)?,
        repositories: Pattern::parse(&repositories)
            .map_err(|_| corrupt("repository pattern", &repositories))?,
        keep: Keep {
            keep_last_pushed: count(2)?,
            keep_last_pulled: count(3)?,
            keep_tags: globs
                .iter()
                .map(|g| TagPattern::parse(g).map_err(|_| corrupt("tag pattern", g)))
                .collect::<Result<_>>()?,
            keep_tags_regex,
            keep_pushed_within: row.try_get(5)?,
            keep_pulled_within: row.try_get(6)?,
        },
        created_at: row.try_get(7)?,
        created_by: row.try_get(8)?,
    })
}

fn rule_from<R: Row>(row: &R) -> Result<ImmutableTagRule>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let repositories: String = row.try_get(1)?;
    let tags: String = row.try_get(2)?;
    Ok(ImmutableTagRule {
        id: row.try_get(0)?,
        repositories: Pattern::parse(&repositories)
            .map_err(|_| corrupt("repository pattern", &repositories))?,
        tags: TagPattern::parse(&tags).map_err(|_| corrupt("tag pattern", &tags))?,
        created_at: row.try_get(3)?,
        created_by: row.try_get(4)?,
    })
}

impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    String: for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Refuses, inside the transaction about to move or delete them, to touch tags a rule
    /// protects. The rules are read only when a tag is moved or deleted, which pushes of new
    /// tags and re-pushes never do.
    pub(crate) async fn refuse_immutable_tags(
        tx: &mut Transaction<'static, DB>,
        repository: &RepositoryName,
        tags: &[Tag],
    ) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(RULES).fetch_all(&mut **tx).await?;
        for row in &rows {
            let rule = rule_from(row)?;
            if let Some(tag) = tags
                .iter()
                .find(|tag| rule.protects(repository.as_str(), tag.as_str()))
            {
                return Err(MetaError::ImmutableTag {
                    tag: tag.to_string(),
                    rule: rule.describe(),
                });
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<DB: Dialect> TagRuleStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn immutable_tag_rules(&self) -> Result<Vec<ImmutableTagRule>> {
        let rows = sqlx::query(RULES).fetch_all(&self.reader).await?;
        rows.iter().map(rule_from).collect()
    }

    async fn add_immutable_tag_rule(
        &self,
        repositories: &Pattern,
        tags: &TagPattern,
        created_by: &str,
    ) -> Result<ImmutableTagRule> {
        let mut tx = self.writer.begin_with(DB::BEGIN).await?;
        sqlx::query(
            "INSERT INTO immutable_tag_rules (repositories, tags, created_at, created_by)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (repositories, tags) DO NOTHING",
        )
        .bind(repositories.as_str())
        .bind(tags.as_str())
        .bind(now_millis())
        .bind(created_by)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT id, repositories, tags, created_at, created_by
             FROM immutable_tag_rules WHERE repositories = $1 AND tags = $2",
        )
        .bind(repositories.as_str())
        .bind(tags.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let rule = rule_from(&row)?;
        tx.commit().await?;
        Ok(rule)
    }

    async fn remove_immutable_tag_rule(&self, id: i64) -> Result<Option<ImmutableTagRule>> {
        let row = sqlx::query(
            "DELETE FROM immutable_tag_rules WHERE id = $1
             RETURNING id, repositories, tags, created_at, created_by",
        )
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(rule_from).transpose()
    }

    async fn retention_rules(&self) -> Result<Vec<RetentionRule>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RETENTION_COLUMNS} FROM retention_rules ORDER BY id"
        )))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(retention_rule_from).collect()
    }

    async fn add_retention_rule(
        &self,
        repositories: &Pattern,
        keep: &Keep,
        created_by: &str,
    ) -> Result<RetentionRule> {
        let globs: Vec<&str> = keep.keep_tags.iter().map(TagPattern::as_str).collect();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO retention_rules (repositories, keep_last_pushed, keep_last_pulled,
                 keep_tags, keep_pushed_within, keep_pulled_within, created_at, created_by,
                 keep_tags_regex)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING {RETENTION_COLUMNS}"
        )))
        .bind(repositories.as_str())
        .bind(keep.keep_last_pushed.map(i64::from))
        .bind(keep.keep_last_pulled.map(i64::from))
        .bind(serde_json::to_string(&globs).expect("strings serialize"))
        .bind(keep.keep_pushed_within)
        .bind(keep.keep_pulled_within)
        .bind(now_millis())
        .bind(created_by)
        .bind(serde_json::to_string(&keep.keep_tags_regex).expect("strings serialize"))
        .fetch_one(&self.writer)
        .await?;
        retention_rule_from(&row)
    }

    async fn remove_retention_rule(&self, id: i64) -> Result<Option<RetentionRule>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM retention_rules WHERE id = $1 RETURNING {RETENTION_COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(retention_rule_from).transpose()
    }
}
