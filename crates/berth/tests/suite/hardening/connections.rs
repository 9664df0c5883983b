//! Connections that send nothing cannot exhaust the server, and health checks get in.

use std::time::{Duration, Instant};

use crate::support::Berth;

/// The soft and hard open-file limits of a running process.
fn open_files_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Keeps `count` connections to `addr` open that never send a byte, opening a new one
/// whenever berth closes one, until `until`; returns how many berth closed.
async fn hold_idle_connections(addr: std::net::SocketAddr, count: usize, until: Instant) -> usize {
    use tokio::io::AsyncReadExt;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        tasks.spawn(async move {
            let mut closed = 0;
            while Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                let Ok(Ok(mut stream)) =
                    tokio::time::timeout(left, tokio::net::TcpStream::connect(addr)).await
                else {
                    continue;
                };
                let mut byte = [0u8; 1];
                let left = until.saturating_duration_since(Instant::now());
                if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(left, stream.read(&mut byte)).await
                {
                    closed += 1;
                }
            }
            closed
        });
    }
    let mut closed = 0;
    while let Some(result) = tasks.join_next().await {
        closed += result.unwrap();
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_exhaust_the_server() {
    // A low soft limit, as a default `ulimit -n` of 1024 is for a busy registry.
    let berth = Berth::builder().open_files(256, 512).start();
    let mut wrong = Vec::new();
    let (soft, hard) = open_files_limit(berth.pid());
    if soft != hard {
        wrong.push(format!(
            "the soft open-files limit stays {soft} below the hard {hard}"
        ));
    }

    // 600 connections that send nothing, more than the descriptors berth has, held (and
    // reopened when closed) for ten seconds while health checks come in.
    let until = Instant::now() + Duration::from_secs(10);
    let holder = tokio::spawn(hold_idle_connections(berth.addr, 600, until));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut answered = 0;
    let mut checks = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() + Duration::from_millis(3500) < until {
        checks += 1;
        let started = Instant::now();
        match health.get(berth.url("/healthz")).send().await {
            Ok(response) if response.status() == 200 => {
                answered += 1;
                slowest = slowest.max(started.elapsed());
            }
            other => wrong.push(format!(
                "/healthz under load after {:?}: {other:?}",
                started.elapsed()
            )),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let closed = holder.await.unwrap();
    eprintln!(
        "{answered} of {checks} health checks answered within 3 s (the slowest in {slowest:?}); berth closed {closed} idle connections"
    );
    if closed == 0 {
        wrong.push("no idle connection was closed".into());
    }
    let logs = berth.log_text();
    if !logs.contains("connection limit reached") {
        wrong.push("no log line says the connection limit was reached".into());
    }
    let descriptor_errors = logs.matches("Too many open files").count();
    if descriptor_errors > 2 {
        wrong.push(format!(
            "{descriptor_errors} log lines about running out of descriptors"
        ));
    }
    // Afterwards, all is well.
    let response = health.get(berth.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let berth = Berth::start();
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(berth.addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(berth.addr).await.unwrap();
    partial.write_all(b"G").await.unwrap();
    let mut byte = [0u8; 1];
    for (what, stream) in [("silent", &mut silent), ("one byte", &mut partial)] {
        let read = tokio::time::timeout(Duration::from_secs(45), stream.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the {what} connection is still open after {:?}",
            started.elapsed()
        );
    }
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(25)..Duration::from_secs(40)).contains(&elapsed),
        "closed after {elapsed:?}, not the header timeout (30 s)"
    );
}
