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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_meta::gc::{
    BlobCandidate, BlobDeletion, Collectable, DeletionKind, DeletionState, GcRunStatus,
};
use berth_meta::webhooks::Leases;
use berth_oci::{Digest, RegistryError, RepositoryName};
use serde::{Deserialize, Serialize};

use berth_storage::StoredBlob;

use crate::errors::{from_meta, from_storage};
use crate::events::Origin;
use crate::{Registry, Result};

mod orphans;

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
/// See [`Registry::give_writers_a_turn`].
const WRITER_TURN: Duration = Duration::from_millis(100);
const WRITERS_BUSY_FOR: Duration = Duration::from_secs(5);
const IDLE_TURN: Duration = Duration::from_millis(120);
const IDLE_TURN_EVERY: Duration = Duration::from_secs(2);
const PRESENT_WAIT: Duration = Duration::from_millis(250);
const PRESENT_POLL: Duration = Duration::from_millis(2);
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

/// What a repository lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepositoryFreed {
    /// Untagged manifests deleted.
    pub manifests: u64,
    /// Blobs it no longer holds, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
}

/// What a run did (or, dry, would do): its progress while it runs, its summary after.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GcReport {
    /// The run's record; `None` for a dry run.
    pub run: Option<i64>,
    pub dry_run: bool,
    /// `start`, `history`, `untagged`, `mark`, `orphans`, `sweep`, `uploads`, then `done`.
    pub phase: String,
    /// How long each phase took, in the order they ran (the one under way is not yet
    /// among them).
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    pub manifests: u64,
    /// Blobs whose bytes were deleted, and those bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// Of those, bytes found in storage without a record (a crash between the two).
    pub orphans: u64,
    /// Blobs marked so far (a real run deletes them in the sweep).
    pub marked: u64,
    /// Deletions an interrupted run began, finished by this one.
    pub resumed: u64,
    pub upload_sessions: u64,
    pub upload_files: u64,
    /// Runs found interrupted (their instance stopped) when this one started.
    pub interrupted_runs: Vec<i64>,
    /// Per repository, by name.
    pub repositories: BTreeMap<String, RepositoryFreed>,
    pub errors: Vec<String>,
    /// Stopped early by a shutdown; the next run carries on.
    pub stopped: bool,
    pub duration_ms: u64,
}

/// How long a phase of a run took.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PhaseTime {
    pub phase: String,
    pub ms: u64,
}

impl GcReport {
    /// `took 12.3 s: history 0.0 s, untagged 1.2 s, mark 9.8 s, ...`, for people.
    pub fn timing(&self) -> String {
        let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|p| format!("{} {}", p.phase, seconds(p.ms)))
            .collect();
        format!("took {}: {}", seconds(self.duration_ms), phases.join(", "))
    }

    fn repository(&mut self, name: &RepositoryName) -> &mut RepositoryFreed {
        self.repositories
            .entry(name.as_str().to_string())
            .or_default()
    }

    fn count_blob(&mut self, blob: &BlobCandidate) {
        for repository in &blob.repositories {
            let freed = self.repository(repository);
            freed.blobs += 1;
            freed.bytes += blob.size;
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "would free" } else { "freed" };
        let mut line = format!(
            "{verb} {} in {} blobs; {} untagged manifests; {} abandoned uploads",
            human_bytes(self.bytes),
            self.blobs,
            self.manifests,
            self.upload_sessions + self.upload_files
        );
        if self.resumed > 0 {
            line.push_str(&format!(
                "; {} deletions of an interrupted run finished",
                self.resumed
            ));
        }
        if self.stopped {
            line.push_str(" (stopped early; the next run carries on)");
        }
        line
    }
}

/// `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
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
    /// See [`Registry::give_writers_a_turn`].
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
                    self.give_writers_a_turn(run, began.elapsed()).await;
                    marked
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

    /// Deletes the bytes of marked blobs (after the fence) and of those an interrupted run
    /// left being deleted.
    async fn sweep(&self, run: &mut Run<'_>, settings: &GcSettings) -> Result<()> {
        run.phase("sweep").await;
        let id = run.report.run.expect("a recorded run");
        // Pushes that raced the mark get this long to cancel it (marks of earlier runs are
        // older than that already).
        let fence = if run.report.marked > 0 {
            settings.fence
        } else {
            Duration::ZERO
        };
        let mut waited = Duration::ZERO;
        while waited < fence && !run.observer.stopping() {
            let step = (fence - waited).min(Duration::from_millis(200));
            tokio::time::sleep(step).await;
            waited += step;
        }
        let fence_ms = settings.fence.as_millis() as i64;
        loop {
            if run.tick().await? {
                return Ok(());
            }
            let began = Instant::now();
            let claimed = self
                .meta
                .claim_blob_deletions(id, berth_meta::now_millis() - fence_ms, DELETE_BATCH)
                .await
                .map_err(from_meta)?;
            self.give_writers_a_turn(run, began.elapsed()).await;
            if claimed.is_empty() {
                return Ok(());
            }
            let blobs: Vec<StoredBlob> = claimed
                .iter()
                .map(|c| StoredBlob {
                    digest: c.digest.clone(),
                    size: c.size,
                    cid: c.cid.clone(),
                })
                .collect();
            // On failure the whole batch stays "deleting": the next run deletes it again
            // (harmless for what is already gone), and a push of one of those digests waits
            // for that or is told to retry.
            self.blobs
                .delete_blobs(&blobs)
                .await
                .map_err(from_storage)?;
            let digests: Vec<Digest> = claimed.iter().map(|c| c.digest.clone()).collect();
            let began = Instant::now();
            self.meta
                .finish_blob_deletions(id, &digests)
                .await
                .map_err(from_meta)?;
            self.give_writers_a_turn(run, began.elapsed()).await;
            for claim in &claimed {
                run.report.blobs += 1;
                run.report.bytes += claim.size;
                if claim.kind == DeletionKind::Orphan {
                    run.report.orphans += 1;
                }
            }
        }
    }

    /// After a write transaction of the collector, where all writers take turns on one lock
    /// (SQLite, also across processes):
    ///
    /// - while another process's writer is in use (writing, or waiting in SQLite's busy
    ///   handler, which polls and holds nothing), the collector waits until it is done, up to
    ///   [`PRESENT_WAIT`];
    /// - while others committed in the last [`WRITERS_BUSY_FOR`], a pause three times as long
    ///   as the lock was held and at least as long as the busy handler's longest sleep
    ///   between retries, so that the next push gets the lock before the next batch;
    /// - otherwise none, but for one of [`IDLE_TURN`] every [`IDLE_TURN_EVERY`], for writers
    ///   that cannot be seen waiting (a program other than berth): one waits at most that
    ///   long, well within its busy timeout (5 s).
    ///
    /// In the collector's own process, writers queue for the one writer connection in
    /// order and need no pause.
    async fn give_writers_a_turn(&self, run: &mut Run<'_>, held: Duration) {
        let Ok(Some(others)) = self.meta.other_writers().await else {
            return;
        };
        let committed = run
            .others_commits
            .replace(others.commits)
            .is_some_and(|seen| seen != others.commits);
        if committed || others.present {
            run.others_writing_until = Some(Instant::now() + WRITERS_BUSY_FOR);
        }
        if others.present {
            let waiting = Instant::now();
            while waiting.elapsed() < PRESENT_WAIT {
                tokio::time::sleep(PRESENT_POLL).await;
                match self.meta.other_writers().await {
                    Ok(Some(others)) if others.present => {}
                    _ => break,
                }
            }
            run.last_turn = Instant::now();
            return;
        }
        let others_writing = run
            .others_writing_until
            .is_some_and(|until| Instant::now() < until);
        let pause = if others_writing {
            (held * 3).max(WRITER_TURN)
        } else if run.last_turn.elapsed() >= IDLE_TURN_EVERY {
            IDLE_TURN
        } else {
            tokio::task::yield_now().await;
            return;
        };
        tokio::time::sleep(pause).await;
        run.last_turn = Instant::now();
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

    /// A dry run: what a full run would free now, with no side effect at all. Expired tag
    /// history is read as forgotten (a real run forgets it first).
    async fn dry_run(&self, run: &mut Run<'_>, settings: &GcSettings) -> Result<()> {
        let collectable = collectable(settings);
        // A real run would finish the deletions a dead run began.
        let pending = self.count_pending(run).await?;
        run.report.blobs += run.report.resumed;
        run.report.bytes += pending.bytes;

        // Untagged manifests, and how often each blob is referenced by them.
        let mut from_untagged: HashMap<Digest, u64> = HashMap::new();
        if let Some(age) = settings.untagged {
            run.phase("untagged").await;
            let untagged_cutoff = older_than(age);
            let mut after: Option<String> = None;
            loop {
                let names = self
                    .meta
                    .list_repositories(after.as_deref(), PAGE)
                    .await
                    .map_err(from_meta)?;
                let Some(last) = names.last() else { break };
                after = Some(last.clone());
                for name in names {
                    let repository = repository_name(&name)?;
                    let untagged = self
                        .meta
                        .untagged_manifests(&repository, untagged_cutoff, collectable.history_since)
                        .await
                        .map_err(from_meta)?;
                    if untagged.is_empty() {
                        continue;
                    }
                    run.report.manifests += untagged.len() as u64;
                    run.report.repository(&repository).manifests += untagged.len() as u64;
                    for batch in untagged.chunks(MANIFEST_BATCH) {
                        let ids: Vec<i64> = batch.iter().map(|m| m.id).collect();
                        for (_, digest) in self
                            .meta
                            .manifest_blob_references(&ids)
                            .await
                            .map_err(from_meta)?
                        {
                            *from_untagged.entry(digest).or_default() += 1;
                        }
                    }
                    if run.tick().await? {
                        return Ok(());
                    }
                }
            }
        }

        if self.mark_unreferenced(run, collectable, true).await? {
            return Ok(());
        }
        // Blobs that only the untagged manifests reference go with them.
        let digests: Vec<Digest> = from_untagged.keys().cloned().collect();
        for batch in digests.chunks(PAGE as usize) {
            for (blob, references, recent) in self
                .meta
                .blob_reference_counts(batch, collectable)
                .await
                .map_err(from_meta)?
            {
                if !recent && from_untagged.get(&blob.digest) == Some(&references) {
                    run.report.blobs += 1;
                    run.report.bytes += blob.size;
                    run.report.count_blob(&blob);
                }
            }
        }

        if self.mark_orphans(run, settings, true).await? {
            return Ok(());
        }
        run.phase("uploads").await;
        let purged = self.purge_uploads(settings.upload_age, true).await?;
        run.report.upload_sessions = purged.sessions as u64;
        run.report.upload_files = purged.orphans as u64;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_shows_how_long_each_phase_took() {
        let report = GcReport {
            duration_ms: 12_345,
            phases: [("history", 40), ("mark", 9_800), ("sweep", 2_500)]
                .into_iter()
                .map(|(phase, ms)| PhaseTime {
                    phase: phase.into(),
                    ms,
                })
                .collect(),
            ..GcReport::default()
        };
        assert_eq!(
            report.timing(),
            "took 12.3 s: history 0.0 s, mark 9.8 s, sweep 2.5 s"
        );
        // Reports recorded before phases were timed still read.
        let old: GcReport = serde_json::from_str(
            &serde_json::to_string(&GcReport::default())
                .unwrap()
                .replace(",\"phases\":[]", ""),
        )
        .unwrap();
        assert!(old.phases.is_empty());
    }
}
