//! Garbage collection on demand, and the record of runs.

use std::sync::{Arc, Mutex};

use berth_auth::admin::{Actor, timestamp};
use berth_meta::gc::{GcRunRecord, GcRunStatus};
use berth_registry::gc::{GcError, GcMode, GcObserver, GcReport, GcRequest};
use serde::Serialize;

use crate::{Lifecycle, LifecycleError, LifecycleResult};

/// A run as the CLI, the admin API and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GcRunView {
    pub id: i64,
    pub status: GcRunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `schedule`, `cli`, `api`.
    pub trigger: String,
    pub actor: String,
    /// The instance that ran it.
    pub instance: String,
    /// While it runs: how far it got.
    pub progress: Option<GcReport>,
    /// When it ended: what it freed.
    pub report: Option<GcReport>,
    pub error: Option<String>,
}

impl GcRunView {
    fn of(record: GcRunRecord) -> GcRunView {
        let parse = |json: Option<String>| json.and_then(|j| serde_json::from_str(&j).ok());
        GcRunView {
            id: record.id,
            status: record.status,
            started_at: timestamp(record.started_at),
            finished_at: record.finished_at.map(timestamp),
            trigger: record.trigger,
            actor: record.actor,
            instance: record.holder,
            progress: parse(record.progress),
            report: parse(record.report),
            error: record.error,
        }
    }
}

/// Where garbage collection stands.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GcStatus {
    /// A run in progress (on any instance).
    pub running: Option<GcRunView>,
    /// The latest run that ended.
    pub last: Option<GcRunView>,
    /// Blobs whose deletion began and did not end (an interrupted run); the next run, or the
    /// background resume within a minute, finishes them.
    pub pending_deletions: u64,
    pub pending_bytes: u64,
}

/// Hands the run's id over as soon as it has one.
struct Announce(Mutex<Option<tokio::sync::oneshot::Sender<i64>>>);

impl GcObserver for Announce {
    fn progress(&self, report: &GcReport) {
        if let Some(run) = report.run
            && let Some(sender) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = sender.send(run);
        }
    }

    fn stopping(&self) -> bool {
        false
    }
}

impl Lifecycle {
    /// Runs a garbage collection now and waits for it. A dry run changes nothing (and is
    /// not audited: it leaves no trace at all).
    pub async fn collect_garbage(
        &self,
        actor: &Actor,
        mode: GcMode,
        trigger: &str,
        observer: &dyn GcObserver,
    ) -> LifecycleResult<GcReport> {
        let request = GcRequest {
            mode,
            trigger: trigger.to_string(),
            actor: actor.name(),
        };
        let result = self
            .registry
            .collect_garbage(&*self.leases, &self.holder, &self.gc, &request, observer)
            .await;
        if mode != GcMode::DryRun {
            let what = match mode {
                GcMode::Resume => "finish interrupted garbage collection",
                _ => "collect garbage",
            };
            match &result {
                Ok(report) => {
                    let detail = format!("{what}: {}", report.summary());
                    self.record(actor, "gc", "allowed", &detail).await;
                }
                Err(e) => {
                    self.record(actor, "gc", "failed", &format!("{what}: {e}"))
                        .await
                }
            }
        }
        result.map_err(|e| match e {
            GcError::Busy => LifecycleError::Conflict(e.to_string()),
            GcError::Failed { ref report, .. } => LifecycleError::GcFailed {
                message: e.to_string(),
                report: report.clone(),
            },
        })
    }

    /// Starts a garbage collection in the background and returns its run's id as soon as
    /// it is recorded; its progress and outcome are in [`Lifecycle::gc_run`].
    pub async fn start_garbage_collection(
        self: &Arc<Self>,
        actor: Actor,
        trigger: &str,
    ) -> LifecycleResult<i64> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let this = Arc::clone(self);
        let trigger = trigger.to_string();
        let task = tokio::spawn(async move {
            let announce = Announce(Mutex::new(Some(sender)));
            this.collect_garbage(&actor, GcMode::Full, &trigger, &announce)
                .await
        });
        tokio::select! {
            biased;
            Ok(id) = receiver => Ok(id),
            finished = task => match finished {
                Ok(Ok(report)) => report
                    .run
                    .ok_or_else(|| LifecycleError::Invalid("the run was not recorded".into())),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(LifecycleError::Invalid(format!("the collection ended abruptly: {e}"))),
            },
        }
    }

    /// Recorded runs, newest first, before id `before`.
    pub async fn gc_runs(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> LifecycleResult<Vec<GcRunView>> {
        Ok(self
            .meta
            .gc_runs(before, limit.clamp(1, 1000))
            .await?
            .into_iter()
            .map(GcRunView::of)
            .collect())
    }

    pub async fn gc_run(&self, id: i64) -> LifecycleResult<GcRunView> {
        self.meta
            .gc_run(id)
            .await?
            .map(GcRunView::of)
            .ok_or_else(|| LifecycleError::NotFound(format!("no garbage collection run {id}")))
    }

    /// Whether a collection that did not fail started (on any instance) within `within`.
    pub async fn collected_within(&self, within: std::time::Duration) -> LifecycleResult<bool> {
        let since = berth_meta::now_millis() - within.as_millis() as i64;
        Ok(self
            .meta
            .gc_runs(None, 20)
            .await?
            .iter()
            .any(|r| r.status != GcRunStatus::Failed && r.started_at >= since))
    }

    pub async fn gc_status(&self) -> LifecycleResult<GcStatus> {
        let runs = self.meta.gc_runs(None, 20).await?;
        let running = runs
            .iter()
            .find(|r| r.status == GcRunStatus::Running)
            .cloned()
            .map(GcRunView::of);
        let last = runs
            .into_iter()
            .find(|r| r.status != GcRunStatus::Running)
            .map(GcRunView::of);
        let pending = self.meta.pending_blob_deletions().await?;
        Ok(GcStatus {
            running,
            last,
            pending_deletions: pending.marked + pending.deleting,
            pending_bytes: pending.bytes,
        })
    }
}
