//! Pull-through caches (remote repositories) and virtual repositories.
//!
//! A [`Remote`] is another implementation of the registry's read path
//! ([`berth_registry::ReadPath`]), mounted at a name prefix ([`berth_registry::Namespaces`]):
//! it decorates the local [`berth_registry::Registry`], serving what is cached from it and
//! fetching the rest from an upstream registry into it. See ARCHITECTURE.md for the
//! invariants it keeps.
//!
//! * [`upstream`]: the upstream's `/v2/` API: failover, Basic and token auth, timeouts.
//! * `answers`: what each upstream last answered about a tag or digest (revalidation, the
//!   negative cache), shared by every instance through the metadata store.
//! * `flight`: one download per uncached blob, streamed to every waiting client.
//! * [`errors`]: the cache's failures and their one mapping to OCI errors.
//! * [`eviction`]: a remote's size cap, least recently pulled images first.
//! * [`catalog`]: the remotes and virtual repositories in force (the configuration file's
//!   and those stored in the database), mounted; [`admin`]: the one write path for them.
//! * [`Virtual`]: a virtual repository, resolving names through an ordered list of members.

pub mod admin;
mod answers;
pub mod catalog;
mod challenge;
pub mod errors;
pub mod eviction;
mod flight;
mod platforms;
mod ratecap;
mod remote;
mod stats;
pub mod upstream;
mod virtuals;

pub use remote::{Remote, RemoteSettings};
pub use stats::CacheStats;
pub use upstream::{Credentials, UpstreamTls};
pub use virtuals::{Member, Virtual};

/// What the remotes of every instance share through the metadata store.
#[derive(Clone)]
pub struct Shared {
    pub store: std::sync::Arc<dyn berth_meta::CacheStore>,
    /// One download of a blob across instances (see `flight`); `None` where one instance
    /// serves the database (SQLite), which needs no coordination with others.
    pub leases: Option<std::sync::Arc<dyn berth_meta::Leases>>,
    /// This instance, as it holds leases.
    pub holder: String,
}
