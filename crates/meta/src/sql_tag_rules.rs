//! [`TagRuleStore`] over SQL, once for every engine, and the check the manifest and tag
//! writes of `sql_store` make inside their transactions.

use async_trait::async_trait;
use berth_oci::{Pattern, RepositoryName, Tag, TagPattern};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use crate::sql_store::{Dialect, SqlStore};
use crate::tag_rules::{ImmutableTagRule, TagRuleStore};
use crate::{MetaError, Result, now_millis};

const RULES: &str = "SELECT id, repositories, tags, created_at, created_by
     FROM immutable_tag_rules ORDER BY id";

fn rule_from<R: Row>(row: &R) -> Result<ImmutableTagRule>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let corrupt = |what: &str, value: &str| {
        MetaError::Database(format!("corrupt {what} in database: {value:?}").into())
    };
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
}
