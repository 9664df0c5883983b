//! Garbage collection on demand, and the record of runs.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

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

/// A collection asked for on demand (the admin API), waiting for the `gc` job to start it.
pub(crate) struct Requested {
    actor: Actor,
    trigger: String,
    /// Told the run's id as soon as it is recorded (or why it could not start).
    answer: tokio::sync::oneshot::Sender<LifecycleResult<i64>>,
}

/// Collections asked for and not started yet, and how to wake the job that starts them.
#[derive(Default)]
pub(crate) struct Requests {
    queue: Mutex<Vec<Requested>>,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// How long a request waits for the job to start it: longer means a collection is already
/// running in this instance.
const START_WAIT: Duration = Duration::from_secs(10);

/// Tells the requesters the run's id as soon as it has one, and passes the rest on.
struct Announce<'a> {
    waiting: Mutex<Vec<Requested>>,
    inner: &'a dyn GcObserver,
}

impl GcObserver for Announce<'_> {
    fn progress(&self, report: &GcReport) {
        if let Some(run) = report.run {
            for requested in lock(&self.waiting).drain(..) {
                let _ = requested.answer.send(Ok(run));
            }
        }
        self.inner.progress(report);
    }

    fn stopping(&self) -> bool {
        self.inner.stopping()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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
        // One run at a time in this instance too: the `gc` lease is re-entrant for its holder,
        // so the gc-resume job, finding the deletions of a collection under way pending,
        // took that collection for a dead one (it recorded it interrupted and swept beside it).
        let _one_at_a_time = match mode {
            GcMode::DryRun => None,
            _ => Some(self.collecting.try_lock().map_err(|_| {
                LifecycleError::Conflict(
                    "garbage collection is already running on this instance".into(),
                )
            })?),
        };
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

    /// Asks the `gc` job (see [`Lifecycle::on_request`]) to collect garbage now, and returns
    /// the run's id as soon as it is recorded; its progress and outcome are in
    /// [`Lifecycle::gc_run`]. A collection already running (here or on another instance) is a
    /// conflict.
    pub async fn start_garbage_collection(
        &self,
        actor: Actor,
        trigger: &str,
    ) -> LifecycleResult<i64> {
        let Some(wake) = self.requests.wake.get() else {
            return Err(LifecycleError::Conflict(
                "garbage collection on demand needs a serving berth (or run berth gc)".into(),
            ));
        };
        let (answer, receiver) = tokio::sync::oneshot::channel();
        lock(&self.requests.queue).push(Requested {
            actor,
            trigger: trigger.to_string(),
            answer,
        });
        wake();
        match tokio::time::timeout(START_WAIT, receiver).await {
            Ok(Ok(answer)) => answer,
            // Dropped unanswered (shutdown), or still waiting behind a running collection
            // (the request is dropped with the receiver: the job skips it).
            Ok(Err(_)) | Err(_) => Err(LifecycleError::Conflict(
                "garbage collection is already running; see GET /api/v1/gc".into(),
            )),
        }
    }

    /// Lets the `gc` job hear of collections asked for on demand: `wake` makes it run soon.
    pub fn on_request(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.requests.wake.set(Box::new(wake));
    }

    /// For the `gc` job: runs the collection asked for on demand, if any (one run answers
    /// every request waiting), under the first requester's name. `None`: nothing was asked.
    pub async fn run_requested(
        &self,
        observer: &dyn GcObserver,
    ) -> Option<LifecycleResult<GcReport>> {
        let waiting: Vec<Requested> = lock(&self.requests.queue)
            .drain(..)
            .filter(|r| !r.answer.is_closed())
            .collect();
        let first = waiting.first()?;
        let (actor, trigger) = (first.actor.clone(), first.trigger.clone());
        let announce = Announce {
            waiting: Mutex::new(waiting),
            inner: observer,
        };
        let result = self
            .collect_garbage(&actor, GcMode::Full, &trigger, &announce)
            .await;
        // Those not told a run id: it never started.
        for requested in lock(&announce.waiting).drain(..) {
            let outcome = match &result {
                Err(LifecycleError::Conflict(why)) => Err(LifecycleError::Conflict(why.clone())),
                _ => Err(LifecycleError::Conflict(
                    "the collection could not start; see GET /api/v1/gc".into(),
                )),
            };
            let _ = requested.answer.send(outcome);
        }
        Some(result)
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
