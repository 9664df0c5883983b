//! Webhook delivery against a real HTTP receiver and a real SQLite outbox: order per
//! endpoint, retries with backoff while the receiver fails, dead letters after the maximum
//! age and their replay, signatures, redirects refused, slow endpoints timed out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use berth_jobs::{Job, JobContext};
use berth_meta::events::{Event, EventKind, Origin, OutboxRouter};
use berth_meta::webhooks::WebhookStore;
use berth_meta::{MetadataStore, SqliteStore};
use berth_oci::{Algorithm, Digest, RepositoryName};
use berth_webhooks::{Delivery, EndpointSpec, Endpoints, Instance, Source};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;

/// What the receiver does with the next request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    Fail,
    Redirect,
    Hang,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    attempts: Arc<Mutex<u32>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap) {
    *receiver.attempts.lock().unwrap() += 1;
    let mode = *receiver.mode.lock().unwrap();
    let mut out = HeaderMap::new();
    match mode {
        Mode::Accept => {
            receiver.received.lock().unwrap().push((headers, body));
            (StatusCode::NO_CONTENT, out)
        }
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, out),
        Mode::Redirect => {
            out.insert("location", "http://elsewhere.example/".parse().unwrap());
            (StatusCode::TEMPORARY_REDIRECT, out)
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::NO_CONTENT, out)
        }
    }
}

async fn start_receiver() -> (Receiver, SocketAddr) {
    let receiver = Receiver {
        mode: Arc::new(Mutex::new(Mode::Accept)),
        received: Arc::new(Mutex::new(Vec::new())),
        attempts: Arc::new(Mutex::new(0)),
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, addr)
}

const SECRET: &str = "a-long-enough-shared-secret";

struct Setup {
    store: Arc<SqliteStore>,
    endpoints: Arc<Endpoints>,
    delivery: Delivery,
    _dir: tempfile::TempDir,
}

async fn setup(receiver: SocketAddr, spec: EndpointSpec) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let spec = EndpointSpec {
        url: format!("http://{receiver}/hook"),
        secret: Some(SECRET.into()),
        ..spec
    };
    let endpoint = spec.validate("ci", Source::Config).unwrap();
    let endpoints = Arc::new(Endpoints::new(vec![endpoint], store.clone()));
    store.route_events_to(endpoints.clone() as Arc<dyn OutboxRouter>);
    let delivery = Delivery::new(
        endpoints.clone(),
        store.clone(),
        store.clone(),
        Instance {
            id: "test-instance".into(),
            addr: "localhost:5000".into(),
            public_base: None,
            tls: false,
        },
    );
    Setup {
        store,
        endpoints,
        delivery,
        _dir: dir,
    }
}

fn origin() -> Arc<Origin> {
    Arc::new(Origin {
        actor: "alice".into(),
        ..Origin::default()
    })
}

/// Commits `n` blob pushes in repository `repo` and returns their events.
async fn push_blobs(store: &SqliteStore, repo: &str, n: usize) -> Vec<Event> {
    let repository = RepositoryName::parse(repo).unwrap();
    let mut events = Vec::new();
    for i in 0..n {
        let digest = Digest::of(Algorithm::Sha256, format!("{repo}-{i}").as_bytes());
        events.extend(
            store
                .link_blob(&repository, &digest, i as u64, &origin())
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == EventKind::BlobPushed),
        );
    }
    events
}

async fn run_pass(delivery: &Delivery) -> String {
    let (_stop, shutdown) = watch::channel(false);
    delivery
        .run(&JobContext::standalone(shutdown))
        .await
        .unwrap()
}

fn received_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            json["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn committed_changes_are_delivered_in_order_and_signed() {
    let (receiver, addr) = start_receiver().await;
    let setup = setup(addr, EndpointSpec::default()).await;
    let events = push_blobs(&setup.store, "team/app", 5).await;
    assert_eq!(
        setup.store.outbox_head("ci", 100).await.unwrap().len(),
        6,
        "5 blob pushes and the repository's creation"
    );
    let summary = run_pass(&setup.delivery).await;
    assert!(summary.contains("delivered"), "{summary}");
    assert!(setup.store.outbox_head("ci", 100).await.unwrap().is_empty());

    let ids = received_ids(&receiver);
    let blob_ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let delivered_blobs: Vec<String> = ids
        .iter()
        .filter(|id| blob_ids.contains(id))
        .cloned()
        .collect();
    assert_eq!(
        delivered_blobs, blob_ids,
        "blob events arrive in commit order"
    );

    for (headers, body) in receiver.received.lock().unwrap().iter() {
        assert_eq!(headers["content-type"], "application/cloudevents+json");
        let id = headers["webhook-id"].to_str().unwrap();
        let timestamp = headers["webhook-timestamp"].to_str().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        let expected = format!(
            "v1,{}",
            data_encoding::BASE64.encode(&mac.finalize().into_bytes())
        );
        assert_eq!(headers["webhook-signature"].to_str().unwrap(), expected);
    }
    let log = setup.store.deliveries("ci", None, 100).await.unwrap();
    assert_eq!(log.len(), ids.len());
    assert!(
        log.iter()
            .all(|d| d.status == Some(204) && d.error.is_none())
    );
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_later_and_keeps_its_order() {
    let (receiver, addr) = start_receiver().await;
    let setup = setup(
        addr,
        EndpointSpec {
            backoff: Some("200ms".into()),
            ..EndpointSpec::default()
        },
    )
    .await;
    *receiver.mode.lock().unwrap() = Mode::Fail;
    push_blobs(&setup.store, "retry/app", 3).await;
    let summary = run_pass(&setup.delivery).await;
    assert!(summary.contains("1 failed"), "{summary}");
    assert_eq!(
        *receiver.attempts.lock().unwrap(),
        1,
        "the head failed; the rest waits behind it"
    );
    let head = setup.store.outbox_head("ci", 10).await.unwrap();
    assert_eq!(head.len(), 4);
    assert_eq!(head[0].attempts, 1);
    assert_eq!(head[0].last_error.as_deref(), Some("HTTP 500"));
    assert!(head[0].next_attempt_at > berth_meta::now_millis());

    // Before the retry time nothing is attempted.
    run_pass(&setup.delivery).await;
    assert_eq!(*receiver.attempts.lock().unwrap(), 1);

    *receiver.mode.lock().unwrap() = Mode::Accept;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run_pass(&setup.delivery).await;
    assert!(setup.store.outbox_head("ci", 10).await.unwrap().is_empty());
    let kinds: Vec<String> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds[0], "dev.berth.repository.created");
    assert!(
        kinds[1..].iter().all(|k| k == "dev.berth.blob.pushed"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn past_the_maximum_age_deliveries_become_dead_letters_that_can_be_replayed() {
    let (receiver, addr) = start_receiver().await;
    let setup = setup(
        addr,
        EndpointSpec {
            maxage: Some("1ms".into()),
            ..EndpointSpec::default()
        },
    )
    .await;
    *receiver.mode.lock().unwrap() = Mode::Fail;
    push_blobs(&setup.store, "dead/app", 2).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let summary = run_pass(&setup.delivery).await;
    assert!(summary.contains("3 given up"), "{summary}");
    let dead = setup.store.dead_letters(Some("ci"), 10).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));

    *receiver.mode.lock().unwrap() = Mode::Accept;
    let replayed = setup.store.replay_dead_letters("ci", None).await.unwrap();
    assert_eq!(replayed, 3);
    run_pass(&setup.delivery).await;
    let ids = received_ids(&receiver);
    let dead_ids: Vec<String> = dead.iter().map(|d| d.event.id.clone()).collect();
    assert_eq!(
        ids, dead_ids,
        "replayed in their original order, with their original ids"
    );
    assert!(setup.store.dead_letters(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn redirects_are_not_followed_and_slow_endpoints_time_out() {
    let (receiver, addr) = start_receiver().await;
    let setup = setup(
        addr,
        EndpointSpec {
            timeout: Some("300ms".into()),
            ..EndpointSpec::default()
        },
    )
    .await;
    let endpoint = setup.endpoints.get("ci").unwrap();
    let event = Delivery::test_event("alice");

    *receiver.mode.lock().unwrap() = Mode::Redirect;
    let outcome = setup.delivery.send(&endpoint, &event).await;
    assert!(!outcome.ok);
    assert_eq!(outcome.attempt.status, Some(307));
    assert!(outcome.attempt.error.unwrap().contains("not followed"));

    *receiver.mode.lock().unwrap() = Mode::Hang;
    let started = std::time::Instant::now();
    let outcome = setup.delivery.send(&endpoint, &event).await;
    assert!(!outcome.ok);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(outcome.attempt.error.unwrap().contains("no answer within"));
}

#[tokio::test]
async fn pulls_reach_only_endpoints_that_asked_for_them() {
    use berth_registry::events::EventSink;
    let (receiver, addr) = start_receiver().await;
    let setup = setup(
        addr,
        EndpointSpec {
            events: vec!["manifest.pulled".into()],
            repositories: vec!["public/**".into()],
            ..EndpointSpec::default()
        },
    )
    .await;
    let pulled = |repo: &str| {
        Event::new(
            EventKind::ManifestPulled,
            &RepositoryName::parse(repo).unwrap(),
            &origin(),
        )
    };
    setup.endpoints.publish(&pulled("public/app"));
    setup.endpoints.publish(&pulled("private/app"));
    push_blobs(&setup.store, "public/app", 1).await;
    run_pass(&setup.delivery).await;
    let types: BTreeMap<String, usize> =
        receiver
            .received
            .lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut m, (_, b)| {
                let t = serde_json::from_str::<serde_json::Value>(b).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string();
                *m.entry(t).or_default() += 1;
                m
            });
    assert_eq!(
        types,
        BTreeMap::from([("dev.berth.manifest.pulled".to_string(), 1)])
    );
}
