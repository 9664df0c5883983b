//! Garbage collection, online: it runs while clients push and pull, on every backend, one
//! run at a time across all instances (a database lease).
//!
//! A run:
//!
//! 1. forgets expired tag history, then deletes untagged manifests older than `untagged`
//!    (when configured): manifests that no tag (or unexpired tag history) reaches, directly,
//!    as a child of a reachable index, or as a referrer of a reachable manifest;
//! 2. marks blobs that no manifest references and that were not pushed or mounted within
//!    the grace period: their records go, in transactions that lock out pushes of the same
//!    blob and manifests that could reference it (see `berth_meta::gc`);
//! 3. waits a moment (pushes that raced the mark cancel it), then deletes the marked blobs'
//!    bytes, in batches, and records each deletion;
//! 4. purges abandoned uploads and forgets old tombstones.
//!
//! Every step is recorded in the database, so a run that stops (shutdown, crash, storage
//! error) leaves nothing half done that matters: the next run finishes the deletions it
//! began. A dry run changes nothing at all and reports what a real run would free (reading
//! expired tag history as already forgotten). The report says how long each phase took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_meta::gc::{BlobDeletion, Collectable, DeletionState, GcRunStatus};
use berth_meta::webhooks::Leases;
use berth_oci::{Digest, RegistryError, RepositoryName};

use crate::errors::from_meta;
use crate::events::Origin;
use crate::{Registry, Result};

mod dry_run;
mod orphans;
mod report;
mod sweep;
#[cfg(test)]
mod tests;

pub use report::{GcReport, PhaseTime, RepositoryFreed, human_bytes};

/// The lease that lets one instance at a time collect.
pub const LEASE: &str = "gc";
/// How long the lease lasts unless renewed; a dead collector's lease lapses this long after.
/// (Short, because a collector killed with its lease blocks collection until it lapses; every
/// step between two renewals is one bounded query or storage request.)
const LEASE_TTL: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a running collection writes its progress to the database.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Rows read per query, and blobs marked per transaction (kept short: pushes wait for it).
const PAGE: u32 = 500;
/// (Not larger when no other writer is in sight on SQLite: a writer that shows up waits for
/// the batch under way; with batches of 500 a lone push during a collection took 70 ms
/// against 36 in one of two runs. bench/README.md, "No idle gaps".)
const MARK_BATCH: usize = 100;
/// See [`Registry::writers_pause`].
const WRITER_TURN: Duration = Duration::from_millis(100);
const WRITERS_BUSY_FOR: Duration = Duration::from_secs(5);
const IDLE_TURN: Duration = Duration::from_millis(120);
const IDLE_TURN_EVERY: Duration = Duration::from_secs(2);
const PRESENT_WAIT: Duration = Duration::from_millis(250);
const PRESENT_POLL: Duration = Duration::from_millis(2);
/// The longest rest the collector takes for clients at once.
const CLIENT_REST: Duration = Duration::from_millis(500);
/// Candidate blobs read per query, at most. A page's cost on PostgreSQL is mostly fixed
/// (planning, starting parallel workers): 20-35 ms for 500, about 50 for 5,000, so a
/// collection of 100,000 blobs reads 20 pages rather than 200 (bench/README.md, "Garbage
/// collection at scale").
const CANDIDATE_PAGE: u32 = 5000;
/// Recorded blobs a candidate page looks at, at most, free or not: its time stays bounded
/// (tens of milliseconds) however many referenced blobs come before the next free one, and
/// the lease is renewed between pages.
const CANDIDATE_SCAN: u32 = 50_000;
/// Manifests deleted per transaction.
const MANIFEST_BATCH: usize = 200;
/// Blobs whose bytes are deleted per storage request (S3 DeleteObjects takes 1000).
const DELETE_BATCH: u32 = 1000;
/// Tombstones of deleted blobs are kept this long (see `berth_meta::gc`).
const TOMBSTONE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a push waits for the deletion of the digest it commits to end.
const PUSH_WAIT: Duration = Duration::from_secs(15);

/// What a collection does, from the configuration.
#[derive(Debug, Clone)]
pub struct GcSettings {
    /// Blobs pushed or mounted within this long are kept (a push whose manifest is still to
    /// come).
    pub grace: Duration,
    /// Untagged manifests older than this are deleted; `None` keeps them.
    pub untagged: Option<Duration>,
    /// Upload sessions untouched this long are abandoned.
    pub upload_age: Duration,
    /// Between marking and deleting bytes: time for pushes racing the mark to cancel it.
    pub fence: Duration,
    /// How long a tag's history keeps the manifest it named reachable (`retention.taghistory`).
    pub tag_history: Duration,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcMode {
    /// Everything.
    Full,
    /// Report what a full run would free; change nothing.
    DryRun,
    /// Only finish deletions an interrupted run began.
    Resume,
}

/// Who asked for a run and why, as its record shows it.
#[derive(Debug, Clone)]
pub struct GcRequest {
    pub mode: GcMode,
    /// `schedule`, `cli`, `api`.
    pub trigger: String,
    pub actor: String,
}

/// Why a run did not complete.
#[derive(Debug)]
pub enum GcError {
    /// Another instance is collecting (it holds the lease).
    Busy,
    /// A database or storage error stopped the run safely; the report says how far it got.
    Failed {
        error: RegistryError,
        report: Box<GcReport>,
    },
}

impl std::fmt::Display for GcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GcError::Busy => {
                f.write_str("garbage collection is already running on another instance")
            }
            GcError::Failed { error, report } => {
                let cause = error
                    .cause
                    .as_ref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                write!(
                    f,
                    "garbage collection stopped in its {} phase: {}{cause} (nothing is lost; the next run carries on)",
                    report.phase, error.message
                )
            }
        }
    }
}

impl std::error::Error for GcError {}

/// Hears how a run gets on.
pub trait GcObserver: Send + Sync {
    /// The report so far, at each phase and every few seconds.
    fn progress(&self, report: &GcReport);
    /// Whether to stop at the next safe point (shutdown).
    fn stopping(&self) -> bool;
}

/// An observer that hears nothing and never stops a run.
pub struct Unobserved;

impl GcObserver for Unobserved {
    fn progress(&self, _: &GcReport) {}
    fn stopping(&self) -> bool {
        false
    }
}

/// The state of one run in progress.
struct Run<'a> {
    registry: &'a Registry,
    leases: Option<&'a dyn Leases>,
    holder: &'a str,
    observer: &'a dyn GcObserver,
    report: GcReport,
    renewed: Instant,
    reported: Instant,
    started: Instant,
    /// When the phase under way began.
    phase_began: Instant,
    /// See [`Registry::writers_pause`].
    others_commits: Option<i64>,
    others_writing_until: Option<Instant>,
    last_turn: Instant,
}

impl Run<'_> {
    /// Between batches: keeps the lease, shares progress, and says whether to stop.
    async fn tick(&mut self) -> Result<bool> {
        if let Some(leases) = self.leases
            && self.renewed.elapsed() >= RENEW_EVERY
        {
            let kept = leases
                .try_lease(LEASE, self.holder, LEASE_TTL.as_millis() as i64)
                .await
                .map_err(from_meta)?;
            if !kept {
                return Err(RegistryError::internal(
                    "lost the garbage collection lease to another instance",
                ));
            }
            self.renewed = Instant::now();
        }
        if self.reported.elapsed() >= PROGRESS_EVERY {
            self.share_progress().await;
        }
        if self.observer.stopping() {
            self.report.stopped = true;
        }
        Ok(self.report.stopped)
    }

    async fn phase(&mut self, phase: &str) {
        self.end_phase(phase);
        self.share_progress().await;
    }

    /// Records how long the phase under way took and begins `next`.
    fn end_phase(&mut self, next: &str) {
        let ms = self.phase_began.elapsed().as_millis() as u64;
        let ended = std::mem::replace(&mut self.report.phase, next.to_string());
        self.report.phases.push(PhaseTime { phase: ended, ms });
        self.phase_began = Instant::now();
        self.report.duration_ms = self.started.elapsed().as_millis() as u64;
    }

    async fn share_progress(&mut self) {
        self.reported = Instant::now();
        self.observer.progress(&self.report);
        if let Some(run) = self.report.run {
            let json = serde_json::to_string(&self.report).expect("reports serialize");
            // Progress is for people; a failure to write it must not stop the run.
            if let Err(e) = self.registry.meta.gc_run_progress(run, &json).await {
                tracing::warn!(error = %e, run, "could not record garbage collection progress");
            }
        }
    }
}

impl Registry {
    /// Runs a garbage collection (see the module's documentation). `leases` keeps other
    /// instances from collecting at the same time; `holder` names this one.
    pub async fn collect_garbage(
        &self,
        leases: &dyn Leases,
        holder: &str,
        settings: &GcSettings,
        request: &GcRequest,
        observer: &dyn GcObserver,
    ) -> std::result::Result<GcReport, GcError> {
        let started = Instant::now();
        let dry_run = request.mode == GcMode::DryRun;
        let mut run = Run {
            registry: self,
            leases: None,
            holder,
            observer,
            report: GcReport {
                dry_run,
                phase: "start".into(),
                ..GcReport::default()
            },
            renewed: Instant::now(),
            reported: Instant::now(),
            started,
            phase_began: started,
            others_commits: None,
            others_writing_until: None,
            last_turn: started,
        };
        if dry_run {
            let result = self.dry_run(&mut run, settings).await;
            run.end_phase("done");
            return match result {
                Ok(()) => Ok(run.report),
                Err(error) => Err(GcError::Failed {
                    error,
                    report: Box::new(run.report),
                }),
            };
        }
        self.ensure_writable().map_err(|error| GcError::Failed {
            error,
            report: Box::new(run.report.clone()),
        })?;

        let failed = |error: RegistryError, report: &GcReport| GcError::Failed {
            error,
            report: Box::new(report.clone()),
        };
        match leases
            .try_lease(LEASE, holder, LEASE_TTL.as_millis() as i64)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(GcError::Busy),
            Err(e) => return Err(failed(from_meta(e), &run.report)),
        }
        run.leases = Some(leases);
        let outcome = self.recorded_run(&mut run, settings, request).await;
        run.report.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = leases.release_lease(LEASE, holder).await {
            tracing::warn!(error = %e, "could not release the garbage collection lease; it lapses by itself");
        }
        match outcome {
            Ok(()) => Ok(run.report),
            Err(error) => Err(failed(error, &run.report)),
        }
    }

    /// A real run, recorded from start to end.
    async fn recorded_run(
        &self,
        run: &mut Run<'_>,
        settings: &GcSettings,
        request: &GcRequest,
    ) -> Result<()> {
        let id = self
            .meta
            .start_gc_run(&request.trigger, &request.actor, run.holder)
            .await
            .map_err(from_meta)?;
        run.report.run = Some(id);
        // We hold the lease: a run still marked running elsewhere is dead.
        run.report.interrupted_runs = self.meta.interrupt_gc_runs(id).await.map_err(from_meta)?;
        // Deletions begun earlier (by a dead run) that this one finishes.
        self.count_pending(run).await?;
        let result = match request.mode {
            GcMode::Resume => self.sweep(run, settings).await,
            _ => self.full_run(run, settings).await,
        };
        run.end_phase("done");
        let (status, error) = match &result {
            Ok(()) if run.report.stopped => (GcRunStatus::Interrupted, None),
            Ok(()) => (GcRunStatus::Finished, None),
            Err(e) => {
                let cause = e
                    .cause
                    .as_ref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                let text = format!("{}{cause}", e.message);
                run.report.errors.push(text.clone());
                (GcRunStatus::Failed, Some(text))
            }
        };
        let json = serde_json::to_string(&run.report).expect("reports serialize");
        if let Err(e) = self
            .meta
            .finish_gc_run(id, status, &json, error.as_deref())
            .await
        {
            tracing::warn!(error = %e, run = id, "could not record the end of a garbage collection run");
        }
        result
    }

    async fn full_run(&self, run: &mut Run<'_>, settings: &GcSettings) -> Result<()> {
        self.check_pairing(settings).await?;
        let collectable = collectable(settings);
        // Expired tag history (and the copies of manifests deleted by digest that it kept)
        // protects nothing any more: forget it before deciding what is referenced.
        run.phase("history").await;
        self.meta
            .expire_tag_history(collectable.history_since)
            .await
            .map_err(from_meta)?;
        if let Some(age) = settings.untagged {
            run.phase("untagged").await;
            if self
                .delete_untagged(run, age, collectable.history_since)
                .await?
            {
                return Ok(());
            }
        }
        if self.mark_unreferenced(run, collectable, false).await? {
            return Ok(());
        }
        if self.mark_orphans(run, settings, false).await? {
            return Ok(());
        }
        self.sweep(run, settings).await?;
        if run.report.stopped {
            return Ok(());
        }

        run.phase("uploads").await;
        let purged = self.purge_uploads(settings.upload_age, false).await?;
        run.report.upload_sessions = purged.sessions as u64;
        run.report.upload_files = purged.orphans as u64;
        self.meta
            .prune_blob_tombstones(berth_meta::now_millis() - TOMBSTONE_AGE.as_millis() as i64)
            .await
            .map_err(from_meta)?;
        Ok(())
    }

    /// Marks the blobs that are free to collect (see [`Collectable`]), a batch per
    /// transaction (`dry`: counts them as freed, changing nothing); `true` when stopped early.
    async fn mark_unreferenced(
        &self,
        run: &mut Run<'_>,
        collectable: Collectable,
        dry: bool,
    ) -> Result<bool> {
        run.phase("mark").await;
        let mut after: Option<Digest> = None;
        loop {
            let page = self
                .meta
                .unreferenced_blobs(after.as_ref(), collectable, CANDIDATE_SCAN, CANDIDATE_PAGE)
                .await
                .map_err(from_meta)?;
            for batch in page.candidates.chunks(MARK_BATCH) {
                let freed = if dry {
                    batch.to_vec()
                } else {
                    let id = run.report.run.expect("a recorded run");
                    let digests: Vec<Digest> = batch.iter().map(|c| c.digest.clone()).collect();
                    let began = Instant::now();
                    let marked = self
                        .meta
                        .mark_unreferenced_blobs(id, &digests, collectable)
                        .await
                        .map_err(from_meta)?;
                    self.give_others_a_turn(run, began.elapsed(), marked.writers_waited)
                        .await;
                    marked.blobs
                };
                for blob in &freed {
                    if dry {
                        run.report.blobs += 1;
                        run.report.bytes += blob.size;
                    } else {
                        run.report.marked += 1;
                    }
                    run.report.count_blob(blob);
                }
                if run.tick().await? {
                    return Ok(true);
                }
            }
            // Also after a page with nothing free: the lease stays ours.
            let Some(next) = page.next else {
                return Ok(false);
            };
            after = Some(next);
            if run.tick().await? {
                return Ok(true);
            }
        }
    }

    /// Deletes untagged manifests older than `age` that no tag history entry removed at or
    /// after `history_since` names; `true` when stopped early.
    async fn delete_untagged(
        &self,
        run: &mut Run<'_>,
        age: Duration,
        history_since: i64,
    ) -> Result<bool> {
        let origin = Arc::new(Origin::system("gc"));
        let cutoff = older_than(age);
        let mut after: Option<String> = None;
        loop {
            let names = self
                .meta
                .list_repositories(after.as_deref(), PAGE)
                .await
                .map_err(from_meta)?;
            let Some(last) = names.last() else {
                return Ok(false);
            };
            after = Some(last.clone());
            for name in names {
                let repository = repository_name(&name)?;
                let untagged = self
                    .meta
                    .untagged_manifests(&repository, cutoff, history_since)
                    .await
                    .map_err(from_meta)?;
                for batch in untagged.chunks(MANIFEST_BATCH) {
                    let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
                    let (deleted, events) = self
                        .meta
                        .delete_untagged_manifests(
                            &repository,
                            &ids,
                            cutoff,
                            history_since,
                            &origin,
                        )
                        .await
                        .map_err(from_meta)?;
                    self.publish(&events);
                    run.report.manifests += deleted.len() as u64;
                    if !deleted.is_empty() {
                        run.report.repository(&repository).manifests += deleted.len() as u64;
                    }
                    if run.tick().await? {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Counts the deletions begun (by a run that died) and not finished: this run finishes them.
    async fn count_pending(&self, run: &mut Run<'_>) -> Result<berth_meta::gc::PendingDeletions> {
        let pending = self
            .meta
            .pending_blob_deletions()
            .await
            .map_err(from_meta)?;
        run.report.resumed = pending.marked + pending.deleting;
        Ok(pending)
    }

    /// Where garbage collection stands with `digest`, for a push about to commit it: waits
    /// while its bytes are being deleted (that takes one storage request), and asks the
    /// client to retry if that lasts.
    pub(crate) async fn settled_deletion(&self, digest: &Digest) -> Result<Option<BlobDeletion>> {
        let waiting = Instant::now();
        loop {
            let seen = self.meta.blob_deletion(digest).await.map_err(from_meta)?;
            match seen {
                Some(BlobDeletion {
                    state: DeletionState::Deleting,
                    ..
                }) if waiting.elapsed() < PUSH_WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(BlobDeletion {
                    state: DeletionState::Deleting,
                    ..
                }) => {
                    return Err(RegistryError::new(
                        berth_oci::ErrorCode::Unavailable,
                        "the blob is being garbage collected; retry in a moment",
                    )
                    .with_header("retry-after", "5"));
                }
                other => return Ok(other),
            }
        }
    }
}

/// What a run started now may collect.
fn collectable(settings: &GcSettings) -> Collectable {
    Collectable {
        cutoff: older_than(settings.grace),
        history_since: older_than(settings.tag_history),
    }
}

/// Now minus `age`, in Unix milliseconds: what is older was created before it.
fn older_than(age: Duration) -> i64 {
    berth_meta::now_millis().saturating_sub(age.as_millis().min(i64::MAX as u128) as i64)
}

fn repository_name(name: &str) -> Result<RepositoryName> {
    RepositoryName::parse(name).map_err(|_| {
        RegistryError::internal(format!("corrupt repository name {name:?} in the database"))
    })
}
