//! The upkeep jobs `serve` runs under the job runner (see `berth-jobs`): each wraps one
//! domain operation and says what it did.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use std::ops::Not;

use berth_auth::admin::{Actor, Administration};
use berth_jobs::{Job, JobContext, JobError, JobSummary, Window};
use berth_lifecycle::{Lifecycle, LifecycleError};
use berth_registry::Registry;
use berth_registry::gc::{GcMode, GcObserver, GcReport};
use berth_registry::pull_stats::PullStats;

/// Removes upload sessions and upload files abandoned for longer than `age`.
pub struct UploadPurge {
    pub registry: Arc<Registry>,
    pub age: Duration,
    pub dry_run: bool,
}

#[async_trait]
impl Job for UploadPurge {
    fn name(&self) -> &'static str {
        "upload-purge"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let report = self
            .registry
            .purge_uploads(self.age, self.dry_run)
            .await
            .map_err(JobError::new)?;
        if report.sessions + report.orphans == 0 {
            return Ok(String::new());
        }
        let verb = if self.dry_run {
            "would purge"
        } else {
            "purged"
        };
        Ok(format!(
            "{verb} abandoned uploads: {} sessions, {} orphaned upload files",
            report.sessions, report.orphans
        ))
    }
}

/// Deletes audit events older than the retention (zero keeps them) and expired sessions.
/// Several instances doing it at once is harmless.
pub struct IdentityPrune {
    pub admin: Administration,
    pub audit_retention: Duration,
}

#[async_trait]
impl Job for IdentityPrune {
    fn name(&self) -> &'static str {
        "identity-prune"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let audit = if self.audit_retention.is_zero() {
            0
        } else {
            self.admin
                .prune_audit(&Actor::System, self.audit_retention)
                .await
                .map_err(|e| JobError::new(format!("pruning the audit log: {e}")))?
        };
        let sessions = self
            .admin
            .prune_sessions(&Actor::System)
            .await
            .map_err(|e| JobError::new(format!("pruning expired sessions: {e}")))?;
        if audit + sessions == 0 {
            return Ok(String::new());
        }
        Ok(format!(
            "deleted {audit} audit events past their retention and {sessions} expired sessions"
        ))
    }
}

/// Tells a garbage collection's progress to the job's status, and stops it on shutdown.
struct JobObserver<'a>(&'a JobContext);

impl GcObserver for JobObserver<'_> {
    fn progress(&self, report: &GcReport) {
        self.0
            .progress(format!("{}: {}", report.phase, report.summary()));
    }

    fn stopping(&self) -> bool {
        self.0.is_shutting_down()
    }
}

/// Garbage collection: on demand (the admin API wakes the job), and when `scheduled`, on a
/// schedule: every instance ticks, and a collection runs when the last one (on any instance)
/// started at least `interval` ago and the window (if any) is open; the lease lets one
/// instance at a time do it.
pub struct GarbageCollection {
    pub lifecycle: Arc<Lifecycle>,
    pub scheduled: bool,
    pub interval: Duration,
    pub window: Option<Window>,
}

#[async_trait]
impl Job for GarbageCollection {
    fn name(&self) -> &'static str {
        "gc"
    }

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError> {
        if let Some(result) = self.lifecycle.run_requested(&JobObserver(context)).await {
            return match result {
                Ok(report) => Ok(report.summary()),
                Err(LifecycleError::Conflict(_)) => Ok(String::new()),
                Err(e) => Err(JobError::new(e)),
            };
        }
        if !self.scheduled {
            return Ok(String::new());
        }
        if let Some(window) = self.window
            && !window.contains(std::time::SystemTime::now())
        {
            return Ok(String::new());
        }
        let due = self
            .lifecycle
            .collected_within(self.interval)
            .await
            .map_err(JobError::new)?
            .not();
        if !due {
            return Ok(String::new());
        }
        match self
            .lifecycle
            .collect_garbage(
                &Actor::System,
                GcMode::Full,
                "schedule",
                &JobObserver(context),
            )
            .await
        {
            Ok(report) => Ok(report.summary()),
            Err(LifecycleError::Conflict(_)) => Ok(String::new()),
            Err(e) => Err(JobError::new(e)),
        }
    }
}

/// Finishes deletions an interrupted collection began (its instance died), soon after they
/// are found, so that pushes of those digests do not wait for the next full run.
pub struct GcResume {
    pub lifecycle: Arc<Lifecycle>,
}

#[async_trait]
impl Job for GcResume {
    fn name(&self) -> &'static str {
        "gc-resume"
    }

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError> {
        let status = self.lifecycle.gc_status().await.map_err(JobError::new)?;
        // A run shown as running may be one whose instance died: the lease decides.
        if status.pending_deletions == 0 {
            return Ok(String::new());
        }
        match self
            .lifecycle
            .collect_garbage(
                &Actor::System,
                GcMode::Resume,
                "resume",
                &JobObserver(context),
            )
            .await
        {
            Ok(report) => Ok(report.summary()),
            Err(LifecycleError::Conflict(_)) => Ok(String::new()),
            Err(e) => Err(JobError::new(e)),
        }
    }
}

/// Applies the retention rules once a day (and on demand through the jobs API); with no
/// rules it does nothing. One instance at a time applies them (the `retention` lease); the
/// others skip their turn.
pub struct Retention {
    pub lifecycle: Arc<Lifecycle>,
}

#[async_trait]
impl Job for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let report = match self.lifecycle.apply_retention(&Actor::System, false).await {
            Ok(report) => report,
            // Another instance is applying the same rules.
            Err(LifecycleError::Conflict(_)) => return Ok(String::new()),
            Err(e) => return Err(JobError::new(e)),
        };
        if report.repositories.is_empty() {
            return Ok(String::new());
        }
        Ok(report.summary())
    }
}

/// Forgets tag history entries past `retention.taghistory` (from then on garbage collection
/// no longer keeps what they named anyway: the rule is in the query).
pub struct TagHistoryExpiry {
    pub lifecycle: Arc<Lifecycle>,
}

#[async_trait]
impl Job for TagHistoryExpiry {
    fn name(&self) -> &'static str {
        "tag-history"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let expired = self
            .lifecycle
            .expire_tag_history()
            .await
            .map_err(JobError::new)?;
        Ok(if expired == 0 {
            String::new()
        } else {
            format!("forgot {expired} expired tag history entries")
        })
    }
}

pub const PULL_STATS_JOB: &str = "pull-stats";

/// Writes the pulls counted since the last pass (the dashboard's pull counts and last-pulled
/// times), in one transaction.
pub struct PullStatsFlush {
    pub stats: Arc<PullStats>,
}

#[async_trait]
impl Job for PullStatsFlush {
    fn name(&self) -> &'static str {
        PULL_STATS_JOB
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let pulls = self.stats.flush().await.map_err(JobError::new)?;
        Ok(if pulls == 0 {
            String::new()
        } else {
            format!("recorded {pulls} pulls")
        })
    }
}

/// Records the details (kind, platforms, size, labels for the search) of manifests pushed
/// before berth recorded them, a batch per pass.
pub struct DescribeManifests {
    pub registry: Arc<Registry>,
}

#[async_trait]
impl Job for DescribeManifests {
    fn name(&self) -> &'static str {
        "manifest-details"
    }

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError> {
        const BATCH: u32 = 200;
        let mut described = 0;
        while !context.is_shutting_down() {
            let (looked, done) = self
                .registry
                .describe_missing(BATCH)
                .await
                .map_err(JobError::new)?;
            described += done;
            context.progress(format!("{described} manifests described"));
            // A short batch is the last; a batch where every manifest failed would come back
            // unchanged (each failure is logged), so the next pass retries it.
            if looked < BATCH as usize || done == 0 {
                break;
            }
        }
        Ok(if described == 0 {
            String::new()
        } else {
            format!("described {described} manifests pushed before their details were recorded")
        })
    }
}

pub const CACHE_EVICTION_JOB: &str = "cache-eviction";

/// Keeps each remote with a size cap (`remotes.<name>.maxsize`) within it, evicting the
/// least recently pulled images; after every blob a cache stores, and every minute. One
/// instance at a time (the `cache-eviction` lease).
pub struct CacheEviction {
    pub caches: Arc<berth_cache::catalog::Caches>,
    pub pull_stats: Arc<PullStats>,
    pub leases: Arc<dyn berth_meta::Leases>,
    pub holder: String,
}

#[async_trait]
impl Job for CacheEviction {
    fn name(&self) -> &'static str {
        CACHE_EVICTION_JOB
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        const LEASE_TTL_MS: i64 = 5 * 60 * 1000;
        let remotes = self.caches.remotes();
        let capped: Vec<_> = remotes.iter().filter(|r| r.max_size().is_some()).collect();
        if capped.is_empty() {
            return Ok(String::new());
        }
        if !self
            .leases
            .try_lease(CACHE_EVICTION_JOB, &self.holder, LEASE_TTL_MS)
            .await
            .map_err(JobError::new)?
        {
            return Ok("another instance is enforcing the caches' size caps".into());
        }
        // The latest pulls count: what was pulled a moment ago is not the least recent.
        let outcome = async {
            self.pull_stats.flush().await.map_err(JobError::new)?;
            let mut lines = Vec::new();
            for remote in capped {
                let Some(report) = remote.enforce_size_cap().await.map_err(JobError::new)? else {
                    continue;
                };
                if report.evicted_images > 0 || report.kept_pulled > 0 {
                    lines.push(format!(
                        "{}: evicted {} images ({} bytes), {} bytes cached of {}{}",
                        report.remote,
                        report.evicted_images,
                        report.evicted_bytes,
                        report.cached_bytes,
                        report.max_size,
                        if report.kept_pulled > 0 {
                            format!(", {} kept (being pulled)", report.kept_pulled)
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            Ok::<_, JobError>(lines.join("; "))
        }
        .await;
        let _ = self
            .leases
            .release_lease(CACHE_EVICTION_JOB, &self.holder)
            .await;
        outcome
    }
}

/// Forgets what the remotes' upstreams answered (tags checked, 404s) once past every
/// remote's window: the rows are of no use then.
pub struct CacheAnswersExpiry {
    pub caches: Arc<berth_cache::catalog::Caches>,
}

#[async_trait]
impl Job for CacheAnswersExpiry {
    fn name(&self) -> &'static str {
        "cache-answers-expiry"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let forgotten = self
            .caches
            .forget_old_answers()
            .await
            .map_err(JobError::new)?;
        Ok(if forgotten == 0 {
            String::new()
        } else {
            format!("forgot {forgotten} upstream answers past their remotes' windows")
        })
    }
}

/// Mounts the remote and virtual repositories made through the admin API on another
/// instance (or this one's, should a change have missed it): reads the stored definitions
/// every few seconds.
pub struct CacheDefinitions {
    pub caches: Arc<berth_cache::catalog::Caches>,
}

#[async_trait]
impl Job for CacheDefinitions {
    fn name(&self) -> &'static str {
        "cache-definitions"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let changed = self.caches.refresh().await.map_err(JobError::new)?;
        Ok(if changed {
            "mounted the remote and virtual repositories as stored now".into()
        } else {
            String::new()
        })
    }
}
