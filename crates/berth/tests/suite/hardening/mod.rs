//! Findings of an attack pass against berth (issue 14), each reproduced and held fixed:
//! changes to identities and access reach every instance within a bound, whichever door
//! made them; connections cannot exhaust the server; deleted identities leave nothing
//! behind; registry tokens grant exactly what they say; throttling cannot lock a user out;
//! password checks keep memory bounded; ambiguous manifests and overflowing ranges are
//! refused; token limits and policy agree on push implying pull; token signatures are
//! canonical.
//!
//! * `revocation`: changes to identities and access take effect on every instance within
//!   the bound, and deleted identities leave nothing behind (items 1 and 3);
//! * `connections`: idle connections cannot exhaust the server (item 2);
//! * `tokens`: what registry and access tokens grant, and their signatures (items 4, 9, 10);
//! * `logins`: throttling that cannot lock a user out, bounded memory (items 5 and 6);
//! * `input`: ambiguous manifests and overflowing ranges (items 7 and 8).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Berth, client};

mod connections;
mod input;
mod logins;
mod revocation;
mod tokens;

/// The bound README documents: a change takes effect on every instance within this long.
pub(super) const CHANGE_BOUND: Duration = Duration::from_secs(2);

/// Polls `probe` until it returns true; how long that took after `since`, or a failure
/// naming `what` if it did not within ten seconds.
pub(super) async fn time_until<F, Fut>(since: Instant, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if probe().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{what}: still in effect after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status of starting an upload to `repository` with `authorization`.
pub(super) async fn upload_status(berth: &Berth, repository: &str, authorization: &str) -> u16 {
    client()
        .post(berth.url(&format!("/v2/{repository}/blobs/uploads/")))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The repositories `/v2/_catalog` lists for `authorization` (`None` if it is refused).
pub(super) async fn catalog(berth: &Berth, authorization: &str) -> Option<Value> {
    let response = client()
        .get(berth.url("/v2/_catalog"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return None;
    }
    Some(response.json::<Value>().await.unwrap()["repositories"].clone())
}

/// Prints how long each change took to take effect (the figures the issue asks for) and
/// asserts each was within [`CHANGE_BOUND`].
pub(super) fn within_the_bound(setup: &str, delays: &[(&str, Duration)]) {
    for (change, delay) in delays {
        eprintln!("{setup}: {change} took effect after {delay:?}");
    }
    let slow: Vec<_> = delays
        .iter()
        .filter(|(_, delay)| *delay > CHANGE_BOUND)
        .collect();
    assert!(slow.is_empty(), "slower than {CHANGE_BOUND:?}: {slow:?}");
}

pub(super) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
