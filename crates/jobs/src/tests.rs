use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// Counts its passes; fails the passes listed in `fail`; a pass lasts `takes`.
struct Counter {
    passes: AtomicU32,
    fail_on: Vec<u32>,
    takes: Duration,
}

impl Counter {
    fn new() -> Arc<Counter> {
        Arc::new(Counter {
            passes: AtomicU32::new(0),
            fail_on: Vec::new(),
            takes: Duration::ZERO,
        })
    }
}

#[async_trait]
impl Job for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    async fn run(&self, context: &JobContext) -> Result<JobSummary, JobError> {
        let pass = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
        context.progress(format!("pass {pass} running"));
        if !context.sleep(self.takes).await {
            return Ok(format!("pass {pass} stopped early"));
        }
        if self.fail_on.contains(&pass) {
            Err(JobError::new(format!("pass {pass} failed")))
        } else {
            Ok(format!("pass {pass}"))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn runs_on_its_schedule_and_records_status() {
    let job = Counter::new();
    let mut runner = JobRunner::new();
    runner.add(
        job.clone(),
        Schedule::every(Duration::from_secs(60)).first_after(Duration::from_secs(5)),
    );
    let jobs = runner.start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(job.passes.load(Ordering::SeqCst), 0);
    let status = jobs.status("counter").unwrap();
    assert_eq!(status.runs, 0);
    assert!(status.next_run_at.is_some());

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job.passes.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(job.passes.load(Ordering::SeqCst), 2);

    let status = jobs.status("counter").unwrap();
    assert_eq!(status.runs, 2);
    assert_eq!(status.last_summary.as_deref(), Some("pass 2"));
    assert_eq!(status.last_error, None);
    assert!(!status.running);
    jobs.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_pass_is_recorded_and_retried_sooner() {
    let job = Arc::new(Counter {
        passes: AtomicU32::new(0),
        fail_on: vec![1],
        takes: Duration::ZERO,
    });
    let mut runner = JobRunner::new();
    runner.add(
        job.clone(),
        Schedule::every(Duration::from_secs(3600))
            .first_after(Duration::from_secs(1))
            .retry_after(Duration::from_secs(10)),
    );
    let jobs = runner.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = jobs.status("counter").unwrap();
    assert_eq!(status.failures, 1);
    assert_eq!(status.last_error.as_deref(), Some("pass 1 failed"));

    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = jobs.status("counter").unwrap();
    assert_eq!((status.runs, status.failures), (2, 1));
    assert_eq!(status.last_error, None, "a success clears the error");
    jobs.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_now_and_returns_the_result() {
    let job = Counter::new();
    let mut runner = JobRunner::new();
    runner.add(job.clone(), Schedule::on_demand());
    let jobs = runner.start();
    assert_eq!(
        jobs.run_once("counter").await.unwrap(),
        Ok("pass 1".to_string())
    );
    assert_eq!(
        jobs.run_once("nothing").await.unwrap_err(),
        UnknownJob("nothing".into())
    );
    assert_eq!(jobs.status("counter").unwrap().runs, 1);
}

#[tokio::test(start_paused = true)]
async fn one_pass_at_a_time_and_progress_is_visible() {
    let job = Arc::new(Counter {
        passes: AtomicU32::new(0),
        fail_on: Vec::new(),
        takes: Duration::from_secs(30),
    });
    let mut runner = JobRunner::new();
    runner.add(job.clone(), Schedule::on_demand());
    let jobs = runner.start();
    let first = tokio::spawn({
        let jobs = jobs.clone();
        async move { jobs.run_once("counter").await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = jobs.status("counter").unwrap();
    assert!(status.running);
    assert_eq!(status.progress.as_deref(), Some("pass 1 running"));
    // A second request waits for the first pass instead of running beside it.
    let second = jobs.run_once("counter").await.unwrap();
    assert_eq!(second, Ok("pass 2".to_string()));
    assert_eq!(first.await.unwrap().unwrap(), Ok("pass 1".to_string()));
}

#[tokio::test(start_paused = true)]
async fn wake_runs_a_job_before_its_time() {
    let job = Counter::new();
    let mut runner = JobRunner::new();
    runner.add(job.clone(), Schedule::every(Duration::from_secs(3600)));
    let jobs = runner.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job.passes.load(Ordering::SeqCst), 0);
    jobs.waker("counter").unwrap().wake();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(job.passes.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_a_running_pass_at_a_safe_point() {
    let job = Arc::new(Counter {
        passes: AtomicU32::new(0),
        fail_on: Vec::new(),
        takes: Duration::from_secs(3600),
    });
    let mut runner = JobRunner::new();
    runner.add(
        job.clone(),
        Schedule::every(Duration::from_secs(60)).first_after(Duration::ZERO),
    );
    let jobs = runner.start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(jobs.status("counter").unwrap().running);
    jobs.shutdown(Duration::from_secs(5)).await;
    let status = jobs.status("counter").unwrap();
    assert!(!status.running);
    assert_eq!(status.last_summary.as_deref(), Some("pass 1 stopped early"));
}

#[tokio::test(start_paused = true)]
async fn a_standalone_run_stops_when_asked() {
    let job = Counter {
        passes: AtomicU32::new(0),
        fail_on: Vec::new(),
        takes: Duration::from_secs(3600),
    };
    let result = run_standalone(&job, tokio::time::sleep(Duration::from_secs(2))).await;
    assert_eq!(result, Ok("pass 1 stopped early".to_string()));
}

#[test]
fn windows_parse_and_wrap_midnight() {
    let window: Window = "01:00-06:00".parse().unwrap();
    assert_eq!(window.to_string(), "01:00-06:00");
    let at = |h: u64, m: u64| UNIX_EPOCH + Duration::from_secs(86_400 * 100 + h * 3600 + m * 60);
    assert!(window.contains(at(1, 0)));
    assert!(window.contains(at(5, 59)));
    assert!(!window.contains(at(6, 0)));
    assert_eq!(window.wait_from(at(0, 30)), Duration::from_secs(30 * 60));
    assert_eq!(window.wait_from(at(7, 0)), Duration::from_secs(18 * 3600));

    let night: Window = "22:00-04:00".parse().unwrap();
    assert!(night.contains(at(23, 0)));
    assert!(night.contains(at(3, 0)));
    assert!(!night.contains(at(12, 0)));
    assert_eq!(night.wait_from(at(21, 0)), Duration::from_secs(3600));

    for bad in [
        "",
        "1:00-6:00",
        "01:00",
        "25:00-06:00",
        "01:60-02:00",
        "03:00-03:00",
        "a-b",
    ] {
        assert!(bad.parse::<Window>().is_err(), "{bad:?}");
    }
}

#[test]
fn a_schedule_with_a_window_waits_for_it() {
    let window: Window = "01:00-02:00".parse().unwrap();
    let schedule = Schedule::every(Duration::from_secs(3600)).within(Some(window));
    let midnight = UNIX_EPOCH + Duration::from_secs(86_400 * 100);
    assert_eq!(
        schedule.adjust_for_window(Duration::from_secs(600), midnight),
        Duration::from_secs(3600),
        "ten minutes after midnight is outside; wait for 01:00"
    );
    assert_eq!(
        schedule.adjust_for_window(Duration::from_secs(3900), midnight),
        Duration::from_secs(3900)
    );
}
