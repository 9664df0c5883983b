//! A faulty path to a real upstream: an HTTP relay on loopback, run as a task of the test,
//! that forwards every request to the upstream and damages the answers it is told to
//! (a byte flipped in transit, a connection cut midway, a redirect loop, a slow-loris body,
//! a body padded past the manifest limit, a body held halfway until the test releases it),
//! or answers in the upstream's place as a failing or rate-limiting registry does (a 503, a
//! 429 with `Retry-After`, Docker Hub's `ratelimit-remaining` header). It records the
//! requests it relays.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// What the relay does to the answers of the requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relay unchanged.
    None,
    /// Flip one bit of the byte in the middle of the body.
    FlipByte,
    /// Send half the body, then break the connection; only the first time (later
    /// requests, such as a resuming `Range` request, are relayed unchanged).
    CutOnce,
    /// Answer `307` to another URL that answers `307` back.
    RedirectLoop,
    /// Send the headers, then one byte a second, for ever.
    SlowLoris,
    /// Relay the body padded with 4 MiB of spaces (still the same JSON), with its new
    /// `Content-Length` (`sized`) or without one (chunked).
    Padded { sized: bool },
    /// Send half the body, then wait for [`FaultyUpstream::release`]: the rest, or a
    /// broken connection.
    Hold,
    /// Answer `503` without asking the upstream.
    ServerError,
    /// Answer `429` with `Retry-After` (seconds) and `ratelimit-remaining: 0`, without asking
    /// the upstream.
    TooManyRequests { retry_after: u64 },
    /// Relay unchanged, with Docker Hub's `ratelimit-remaining: N;w=21600` added.
    RateLimitRemaining(i64),
}

impl Fault {
    /// Whether the fault is about the answer as a whole (its status or headers), and so
    /// applies to `HEAD` requests too; others damage a `GET`'s body.
    fn whole_answer(self) -> bool {
        matches!(
            self,
            Fault::ServerError | Fault::TooManyRequests { .. } | Fault::RateLimitRemaining(_)
        )
    }
}

/// What `Fault::Padded` adds.
const PADDING: usize = 4 * 1024 * 1024;

/// Which requests a fault applies to: `GET`s of blobs or of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Blobs,
    Manifests,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    fault: Mutex<(Fault, Target)>,
    cut: AtomicBool,
    /// `METHOD path [range]` of every request relayed.
    requests: Mutex<Vec<String>>,
    /// Slow-loris bodies still being sent (the peer has not gone away).
    dripping: AtomicUsize,
    /// Set once a held body has sent its first half.
    held: AtomicBool,
    /// What held bodies do next: wait (`None`), send the rest (`true`) or break (`false`).
    release: tokio::sync::watch::Sender<Option<bool>>,
}

pub struct FaultyUpstream {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyUpstream {
    /// A relay to `upstream` (`http://host:port`) that does `fault` to `target`.
    pub async fn start(upstream: &str, fault: Fault, target: Target) -> FaultyUpstream {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            fault: Mutex::new((fault, target)),
            cut: AtomicBool::new(false),
            requests: Mutex::default(),
            dripping: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            release: tokio::sync::watch::Sender::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(relay)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultyUpstream { base, shared, task }
    }

    pub fn set(&self, fault: Fault, target: Target) {
        *self.shared.fault.lock().unwrap() = (fault, target);
    }

    /// The requests relayed whose line contains `needle`.
    pub fn requests(&self, needle: &str) -> Vec<String> {
        let requests = self.shared.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits until a held body has sent its first half.
    pub async fn wait_held(&self) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !self.shared.held.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a held body sent its first half within 30 s");
    }

    /// Lets held bodies go on (`true`: the rest of the body; `false`: a broken connection).
    pub fn release(&self, rest: bool) {
        self.shared.release.send_replace(Some(rest));
    }

    /// Slow-loris bodies whose reader is still connected.
    pub fn dripping(&self) -> usize {
        self.shared.dripping.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let range = request
        .headers()
        .get("range")
        .map(|v| format!(" range={}", v.to_str().unwrap()))
        .unwrap_or_default();
    shared
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}{range}"));
    let (fault, target) = *shared.fault.lock().unwrap();
    let targeted = (method == "GET" || (method == "HEAD" && fault.whole_answer()))
        && match target {
            Target::Blobs => path.contains("/blobs/sha256:"),
            Target::Manifests => path.contains("/manifests/"),
        };
    let fault = if targeted { fault } else { Fault::None };
    match fault {
        Fault::ServerError => {
            return Response::builder()
                .status(503)
                .body(Body::from("down for maintenance"))
                .unwrap();
        }
        Fault::TooManyRequests { retry_after } => {
            return Response::builder()
                .status(429)
                .header("retry-after", retry_after)
                .header("ratelimit-remaining", "0;w=21600")
                .body(Body::from("toomanyrequests"))
                .unwrap();
        }
        _ => {}
    }
    if fault == Fault::RedirectLoop {
        // /x -> /x?bounce -> /x -> ...
        let location = match path.strip_suffix("?bounce") {
            Some(original) => original.to_string(),
            None => format!("{path}?bounce"),
        };
        return Response::builder()
            .status(307)
            .header("location", location)
            .body(Body::empty())
            .unwrap();
    }

    let mut forwarded = shared
        .client
        .request(method.clone(), format!("{}{path}", shared.upstream));
    for (name, value) in request.headers() {
        if name != "host" {
            forwarded = forwarded.header(name, value);
        }
    }
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap();
    let answer = match forwarded.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    let length = answer.content_length().unwrap_or(0);
    for (name, value) in answer.headers() {
        let padded = matches!(fault, Fault::Padded { .. }) && name == "content-length";
        if name != "transfer-encoding" && name != "connection" && !padded {
            response = response.header(name, value);
        }
    }
    if let Fault::RateLimitRemaining(remaining) = fault {
        response = response.header("ratelimit-remaining", format!("{remaining};w=21600"));
    }
    if let Fault::Padded { sized } = fault {
        let mut padded = answer.bytes().await.unwrap().to_vec();
        padded.resize(padded.len() + PADDING, b' ');
        if sized {
            response = response.header("content-length", padded.len());
        }
        let body = futures_util::stream::iter(
            padded
                .chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        return response.body(Body::from_stream(body)).unwrap();
    }
    let upstream = answer
        .bytes_stream()
        .map(|c| c.map_err(std::io::Error::other));
    let body = match fault {
        Fault::FlipByte => Body::from_stream(flip_at(upstream, length / 2)),
        Fault::CutOnce if !shared.cut.swap(true, Ordering::SeqCst) => {
            Body::from_stream(cut_at(upstream, length / 2))
        }
        Fault::SlowLoris => Body::from_stream(drip(Arc::clone(&shared))),
        Fault::Hold => Body::from_stream(hold_at(upstream, length / 2, Arc::clone(&shared))),
        _ => Body::from_stream(upstream),
    };
    response.body(body).unwrap()
}

type Chunks = std::io::Result<Bytes>;

/// The stream with the byte at `offset` changed.
fn flip_at(upstream: impl Stream<Item = Chunks>, offset: u64) -> impl Stream<Item = Chunks> {
    upstream.scan(0u64, move |position, chunk| {
        let start = *position;
        let chunk = chunk.map(|chunk| {
            *position += chunk.len() as u64;
            if (start..*position).contains(&offset) {
                let mut changed = chunk.to_vec();
                changed[(offset - start) as usize] ^= 0x01;
                Bytes::from(changed)
            } else {
                chunk
            }
        });
        std::future::ready(Some(chunk))
    })
}

/// The stream's first `offset` bytes, then an error (the connection breaks).
fn cut_at(upstream: impl Stream<Item = Chunks>, offset: u64) -> impl Stream<Item = Chunks> {
    upstream
        .scan(0u64, move |position, chunk| {
            if *position >= offset {
                return std::future::ready(None);
            }
            let chunk = chunk.map(|chunk| {
                let keep = (offset - *position).min(chunk.len() as u64);
                *position += keep;
                chunk.slice(..keep as usize)
            });
            std::future::ready(Some(chunk))
        })
        .chain(futures_util::stream::once(async {
            Err(std::io::Error::other("connection cut by the test"))
        }))
}

/// The stream's first `offset` bytes, then (once released) the rest or an error.
fn hold_at(
    upstream: impl Stream<Item = Chunks> + Send + 'static,
    offset: u64,
    shared: Arc<Shared>,
) -> impl Stream<Item = Chunks> {
    struct Holding<S> {
        upstream: std::pin::Pin<Box<S>>,
        position: u64,
        /// The part of a chunk past `offset`, sent once released.
        kept: Option<Bytes>,
        released: bool,
        ended: bool,
    }
    let state = Holding {
        upstream: Box::pin(upstream),
        position: 0,
        kept: None,
        released: false,
        ended: false,
    };
    futures_util::stream::unfold(state, move |mut state| {
        let shared = Arc::clone(&shared);
        async move {
            if state.ended {
                return None;
            }
            if !state.released && state.position >= offset {
                shared.held.store(true, Ordering::SeqCst);
                let mut release = shared.release.subscribe();
                let rest = release.wait_for(Option::is_some).await.unwrap().unwrap();
                if !rest {
                    state.ended = true;
                    let cut = std::io::Error::other("connection cut by the test");
                    return Some((Err(cut), state));
                }
                state.released = true;
                if let Some(kept) = state.kept.take() {
                    return Some((Ok(kept), state));
                }
            }
            let mut chunk = match state.upstream.next().await? {
                Ok(chunk) => chunk,
                Err(e) => {
                    state.ended = true;
                    return Some((Err(e), state));
                }
            };
            if !state.released && state.position + chunk.len() as u64 > offset {
                let keep = (offset - state.position) as usize;
                state.kept = Some(chunk.split_off(keep));
            }
            state.position += chunk.len() as u64;
            Some((Ok(chunk), state))
        }
    })
}

/// One byte a second until the reader goes away; counted in `dripping` meanwhile.
fn drip(shared: Arc<Shared>) -> impl Stream<Item = Chunks> {
    struct Dripping(Arc<Shared>);
    impl Drop for Dripping {
        fn drop(&mut self) {
            self.0.dripping.fetch_sub(1, Ordering::SeqCst);
        }
    }
    shared.dripping.fetch_add(1, Ordering::SeqCst);
    let guard = Dripping(shared);
    futures_util::stream::unfold(guard, |guard| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some((Ok(Bytes::from_static(b"{")), guard))
    })
}
