//! Failed logins: throttling that cannot lock a user out, and memory that stays bounded.

use std::time::Duration;

use serde_json::json;

use crate::access_control::{Registry, add_user, basic, create_token, password};

/// A client whose connections come from `address` (a loopback address of its own).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn failed_logins_from_one_address_do_not_lock_the_user_out_elsewhere() {
    let mut token = String::new();
    let registry = Registry::start(
        |data| {
            add_user(data, "alice", false);
            token = create_token(data, "user:alice", "ci", &[]).1;
        },
        &[],
    );
    let attacker = client_from("127.0.0.2");
    let wrong = basic("alice", "not alice's password");
    let right = basic("alice", &password("alice"));
    let mut throttled = false;
    for _ in 0..12 {
        let response = attacker
            .get(registry.url("/v2/"))
            .header("authorization", &wrong)
            .send()
            .await
            .unwrap();
        throttled |= response.status() == 429;
    }
    assert!(throttled, "the guessing address is throttled");
    let status = attacker
        .get(registry.url("/v2/"))
        .header("authorization", &right)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 429,
        "the guessing address stays throttled for alice"
    );

    // Alice, elsewhere, logs in everywhere; her access token works even from there.
    let alice = client_from("127.0.0.3");
    let mut locked_out = Vec::new();
    let v2 = alice
        .get(registry.url("/v2/"))
        .header("authorization", &right)
        .send()
        .await
        .unwrap();
    if v2.status() != 200 {
        locked_out.push(format!("/v2/: {}", v2.status()));
    }
    let token_endpoint = alice
        .get(registry.url("/token?service=berth"))
        .header("authorization", &right)
        .send()
        .await
        .unwrap();
    if token_endpoint.status() != 200 {
        locked_out.push(format!("/token: {}", token_endpoint.status()));
    }
    let session = alice
        .post(registry.url("/api/v1/session"))
        .json(&json!({"username": "alice", "password": password("alice")}))
        .send()
        .await
        .unwrap();
    if session.status() != 201 {
        locked_out.push(format!("/api/v1/session: {}", session.status()));
    }
    let with_token = attacker
        .get(registry.url("/v2/"))
        .header("authorization", basic("alice", &token))
        .send()
        .await
        .unwrap();
    if with_token.status() != 200 {
        locked_out.push(format!("access token: {}", with_token.status()));
    }
    assert!(locked_out.is_empty(), "{}", locked_out.join("\n"));
}

/// The resident memory of a process, in MiB.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failed_logins_leaves_memory_bounded() {
    let registry = Registry::start(|data| add_user(data, "alice", false), &[]);
    let pid = registry.berth.pid();
    // Warm up: one login of each kind.
    assert_eq!(
        registry
            .get("/v2/", Some(&basic("alice", &password("alice"))))
            .await
            .status(),
        200
    );
    let before = resident_mib(pid);
    // 160 failed logins, 16 at a time, each from an address of its own (so that none is
    // throttled and every one costs a password check).
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let url = registry.url("/v2/");
        tasks.spawn(async move {
            let from = client_from(&format!("127.0.1.{}", worker + 1));
            for attempt in 0..10 {
                let user = if attempt % 2 == 0 { "alice" } else { "nobody" };
                let status = from
                    .get(&url)
                    .header("authorization", basic(user, &format!("guess {attempt}")))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert!(status == 401 || status == 429, "{status}");
            }
        });
    }
    let mut peak = before;
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => done.unwrap().unwrap(),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        peak = peak.max(resident_mib(pid));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_mib(pid);
    eprintln!(
        "resident memory: {before:.1} MiB before 160 failed logins, peak {peak:.1} MiB, {after:.1} MiB after"
    );
    assert!(
        peak - before < 100.0 && after - before < 40.0,
        "memory grew from {before:.1} MiB to a peak of {peak:.1} MiB, {after:.1} MiB after"
    );
}
