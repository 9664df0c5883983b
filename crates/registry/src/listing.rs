//! The catalog and tag lists, one page at a time.

use berth_oci::{Page, RegistryError, RepositoryName};

use crate::errors::from_meta;
use crate::{Registry, Result};

/// No page is longer than this, whatever `n` asks for; the `Link` header leads on.
pub const MAX_PAGE: u32 = 10_000;
/// The catalog page size when the client gives no `n`, as the official registry's default.
pub const DEFAULT_CATALOG_PAGE: u32 = 1_000;
/// The most names read per query while filtering the catalog for a caller.
const CATALOG_SCAN_BATCH: u32 = 1_000;

/// One page of names, in lexical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub items: Vec<String>,
    /// The page size used, for the next page's link.
    pub limit: u32,
    /// Whether more names follow the last one.
    pub more: bool,
}

impl Listing {
    /// Where the next page starts, when there is one.
    pub fn next_after(&self) -> Option<&str> {
        if self.more {
            self.items.last().map(String::as_str)
        } else {
            None
        }
    }
}

/// Fetches one more than the page holds, to learn whether another page follows.
async fn page_of<F, Fut>(page: &Page, default_limit: u32, fetch: F) -> Result<Listing>
where
    F: FnOnce(Option<String>, u32) -> Fut,
    Fut: std::future::Future<Output = berth_meta::Result<Vec<String>>>,
{
    let limit = page.limit.unwrap_or(default_limit).min(MAX_PAGE);
    if limit == 0 {
        return Ok(Listing {
            items: Vec::new(),
            limit,
            more: false,
        });
    }
    let mut items = fetch(page.after.clone(), limit + 1)
        .await
        .map_err(from_meta)?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Listing { items, limit, more })
}

impl Registry {
    /// A page of the repositories `visible` accepts (those the caller may pull). Hidden
    /// names are skipped while scanning, so pages stay full and `Link` stays right.
    pub async fn catalog(
        &self,
        page: &Page,
        visible: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Listing> {
        let limit = page.limit.unwrap_or(DEFAULT_CATALOG_PAGE).min(MAX_PAGE);
        if limit == 0 {
            return Ok(Listing {
                items: Vec::new(),
                limit,
                more: false,
            });
        }
        // The first query reads just the page (and one more, to know whether more follow):
        // for a caller who sees everything it is the only one. When the filter hides names,
        // later queries read larger batches, so a caller who sees few repositories among
        // many does not pay a query per page's worth of names.
        let mut batch = limit + 1;
        let mut items = Vec::new();
        let mut cursor = page.after.clone();
        loop {
            let names = self
                .meta
                .list_repositories(cursor.as_deref(), batch)
                .await
                .map_err(from_meta)?;
            let exhausted = names.len() < batch as usize;
            cursor = names.last().cloned();
            items.extend(names.into_iter().filter(|name| visible(name)));
            if items.len() > limit as usize || exhausted {
                break;
            }
            batch = (batch * 4).min(CATALOG_SCAN_BATCH.max(limit + 1));
        }
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Listing { items, limit, more })
    }

    /// A repository's tags; an unknown repository is `NAME_UNKNOWN`.
    pub async fn tags(&self, repository: &RepositoryName, page: &Page) -> Result<Listing> {
        let listing = page_of(page, MAX_PAGE, |after, limit| async move {
            self.meta
                .list_tags(repository, after.as_deref(), limit)
                .await
        })
        .await?;
        // An empty page may mean an unknown repository; only then is it worth asking.
        if listing.items.is_empty()
            && !self
                .meta
                .repository_exists(repository)
                .await
                .map_err(from_meta)?
        {
            return Err(RegistryError::name_unknown(repository));
        }
        Ok(listing)
    }
}
