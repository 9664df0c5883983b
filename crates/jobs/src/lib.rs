//! Background work under one runner.
//!
//! Everything berth does on its own (purging abandoned uploads, pruning the audit log,
//! delivering webhooks, garbage collection, retention, cache refresh, scrubbing) is a [`Job`]:
//! a name, an async `run` that does one pass and says what it did, and a [`Schedule`]. The
//! [`JobRunner`] runs each job on its schedule, one run of a job at a time, records its
//! [`JobStatus`] (last run, next run, last error, progress), lets a caller run a job now
//! ([`RunningJobs::run_once`], for the CLI, the admin API and tests) or wake it early, and
//! stops them all on shutdown: a job sees the signal in its [`JobContext`] and ends its pass
//! at a safe point.
//!
//! Jobs decide for themselves what "one at a time" means across several berth instances
//! (a database lease or advisory lock); the runner only guarantees it inside one process.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

mod schedule;

pub use schedule::{Schedule, Window};

/// One pass of a job failed; the text is for people (logs, status, CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError(pub String);

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JobError {}

impl JobError {
    pub fn new(message: impl fmt::Display) -> JobError {
        JobError(message.to_string())
    }
}

/// What one pass did, in a line for people ("purged 3 uploads"); empty when it did nothing
/// worth logging.
pub type JobSummary = String;

/// A piece of background work. `run` does one pass; the runner calls it on the schedule.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// A stable name: `upload-purge`, `webhook-delivery`, `gc`. Shown in status and logs,
    /// used by `run_once` and in metrics.
    fn name(&self) -> &'static str;

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError>;
}

/// What a running pass can see and say: the shutdown signal and its progress.
#[derive(Clone)]
pub struct JobContext {
    shutdown: watch::Receiver<bool>,
    progress: Arc<Mutex<Option<String>>>,
}

impl JobContext {
    /// A context for running a job outside a runner (the command line), stopped by
    /// `shutdown` becoming true.
    pub fn standalone(shutdown: watch::Receiver<bool>) -> JobContext {
        JobContext {
            shutdown,
            progress: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether berth is shutting down: a long pass stops at the next safe point.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves when shutdown begins.
    pub async fn shutting_down(&self) {
        let mut shutdown = self.shutdown.clone();
        // An error means the runner is gone, which is a shutdown too.
        let _ = shutdown.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration`, or less if shutdown begins; `false` when it was cut short.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.shutting_down() => false,
        }
    }

    /// Replaces the progress line shown in the job's status while it runs.
    pub fn progress(&self, text: impl Into<String>) {
        *lock(&self.progress) = Some(text.into());
    }
}

/// A job's state, as the CLI, the admin API, metrics and the dashboard show it. Times are
/// Unix milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct JobStatus {
    pub name: String,
    /// A pass is running now.
    pub running: bool,
    /// Passes finished since start, successful or not.
    pub runs: u64,
    pub failures: u64,
    pub last_started_at: Option<i64>,
    pub last_finished_at: Option<i64>,
    pub last_duration_ms: Option<u64>,
    pub last_summary: Option<String>,
    /// The error of the last pass, `None` if it succeeded.
    pub last_error: Option<String>,
    pub next_run_at: Option<i64>,
    /// What the running pass last reported.
    pub progress: Option<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Entry {
    job: Arc<dyn Job>,
    schedule: Schedule,
    status: Mutex<JobStatus>,
    progress: Arc<Mutex<Option<String>>>,
    /// One pass at a time, whether scheduled or asked for.
    turn: tokio::sync::Mutex<()>,
    wake: Notify,
}

impl Entry {
    async fn run_pass(&self, shutdown: &watch::Receiver<bool>) -> Result<JobSummary, JobError> {
        let _turn = self.turn.lock().await;
        let started = now_millis();
        {
            let mut status = lock(&self.status);
            status.running = true;
            status.last_started_at = Some(started);
        }
        *lock(&self.progress) = None;
        let context = JobContext {
            shutdown: shutdown.clone(),
            progress: Arc::clone(&self.progress),
        };
        let clock = std::time::Instant::now();
        let result = self.job.run(&context).await;
        let duration = clock.elapsed();
        let mut status = lock(&self.status);
        status.running = false;
        status.runs += 1;
        status.last_finished_at = Some(now_millis());
        status.last_duration_ms = Some(duration.as_millis() as u64);
        status.progress = None;
        let name = self.job.name();
        let outcome = if result.is_ok() { "success" } else { "failure" };
        metrics::counter!("berth_job_runs_total", "job" => name, "outcome" => outcome).increment(1);
        metrics::histogram!("berth_job_duration_seconds", "job" => name)
            .record(duration.as_secs_f64());
        match &result {
            Ok(summary) => {
                metrics::gauge!("berth_job_last_success_timestamp_seconds", "job" => name)
                    .set(status.last_finished_at.unwrap_or_default() as f64 / 1000.0);
                status.last_error = None;
                status.last_summary = Some(summary.clone());
                if !summary.is_empty() {
                    tracing::info!(
                        job = self.job.name(),
                        duration_ms = duration.as_millis() as u64,
                        "{summary}"
                    );
                }
            }
            Err(e) => {
                status.failures += 1;
                status.last_error = Some(e.0.clone());
                tracing::warn!(job = self.job.name(), error = %e, "background job failed");
            }
        }
        result
    }

    fn status(&self) -> JobStatus {
        let mut status = lock(&self.status).clone();
        if status.running {
            status.progress = lock(&self.progress).clone();
        }
        status
    }
}

/// Collects jobs and their schedules before they start.
#[derive(Default)]
pub struct JobRunner {
    entries: Vec<Arc<Entry>>,
}

impl JobRunner {
    pub fn new() -> JobRunner {
        JobRunner::default()
    }

    /// Adds a job. Names must be unique.
    pub fn add(&mut self, job: Arc<dyn Job>, schedule: Schedule) -> &mut Self {
        assert!(
            self.entries.iter().all(|e| e.job.name() != job.name()),
            "two jobs named {}",
            job.name()
        );
        let status = JobStatus {
            name: job.name().to_string(),
            ..JobStatus::default()
        };
        self.entries.push(Arc::new(Entry {
            job,
            schedule,
            status: Mutex::new(status),
            progress: Arc::new(Mutex::new(None)),
            turn: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        }));
        self
    }

    /// Starts every scheduled job on the current Tokio runtime.
    pub fn start(self) -> RunningJobs {
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut entries = BTreeMap::new();
        for entry in self.entries {
            if entry.schedule.is_scheduled() {
                tasks.push(tokio::spawn(scheduled(
                    Arc::clone(&entry),
                    shutdown.clone(),
                )));
            }
            entries.insert(entry.job.name(), entry);
        }
        RunningJobs {
            inner: Arc::new(Inner {
                entries,
                stop,
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        }
    }
}

/// Runs one job on its schedule until shutdown.
async fn scheduled(entry: Arc<Entry>, shutdown: watch::Receiver<bool>) {
    let mut delay = entry.schedule.first_delay();
    loop {
        let delay_with_window = entry.schedule.adjust_for_window(delay, SystemTime::now());
        lock(&entry.status).next_run_at = Some(now_millis() + delay_with_window.as_millis() as i64);
        let mut stop = shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(delay_with_window) => {}
            () = entry.wake.notified() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let result = entry.run_pass(&shutdown).await;
        delay = entry.schedule.next_delay(result.is_ok());
    }
}

struct Inner {
    entries: BTreeMap<&'static str, Arc<Entry>>,
    stop: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The started jobs: status, run now, wake, shut down. Cheap to clone.
#[derive(Clone)]
pub struct RunningJobs {
    inner: Arc<Inner>,
}

/// `run_once` was asked for a job that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownJob(pub String);

impl fmt::Display for UnknownJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no job named {:?}", self.0)
    }
}

impl RunningJobs {
    /// Every job's status, by name.
    pub fn statuses(&self) -> Vec<JobStatus> {
        self.inner.entries.values().map(|e| e.status()).collect()
    }

    pub fn status(&self, name: &str) -> Option<JobStatus> {
        self.inner.entries.get(name).map(|e| e.status())
    }

    /// Runs a pass of `name` now and returns its result; waits for a pass already running
    /// to finish first.
    pub async fn run_once(&self, name: &str) -> Result<Result<JobSummary, JobError>, UnknownJob> {
        let entry = self
            .inner
            .entries
            .get(name)
            .ok_or_else(|| UnknownJob(name.to_string()))?;
        Ok(entry.run_pass(&self.inner.shutdown).await)
    }

    /// Makes a scheduled job run soon instead of at its next time (new work arrived).
    pub fn wake(&self, name: &str) {
        if let Some(entry) = self.inner.entries.get(name) {
            entry.wake.notify_one();
        }
    }

    /// A cheap handle that wakes one job, for code that produces its work.
    pub fn waker(&self, name: &str) -> Option<JobWaker> {
        self.inner.entries.get(name).map(|entry| JobWaker {
            entry: Arc::clone(entry),
        })
    }

    /// Signals every job to stop and waits up to `grace` for running passes to end.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.inner.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.tasks));
        let all = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("background jobs did not stop within {grace:?}; leaving them");
        }
    }
}

/// Wakes one job early; see [`RunningJobs::waker`].
#[derive(Clone)]
pub struct JobWaker {
    entry: Arc<Entry>,
}

impl JobWaker {
    pub fn wake(&self) {
        self.entry.wake.notify_one();
    }
}

/// Runs one pass of `job` outside a runner (the command line), stopping it at a safe point
/// when `stop` resolves (Ctrl-C).
pub async fn run_standalone(
    job: &dyn Job,
    stop: impl Future<Output = ()>,
) -> Result<JobSummary, JobError> {
    let (sender, receiver) = watch::channel(false);
    let context = JobContext::standalone(receiver);
    let run = job.run(&context);
    tokio::pin!(run);
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = &mut run => return result,
            () = &mut stop, if !stopping => {
                stopping = true;
                let _ = sender.send(true);
            }
        }
    }
}

#[cfg(test)]
mod tests;
