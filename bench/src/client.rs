//! The load generator: plain HTTP/1.1 connections with keep-alive, one task per connection
//! issuing requests back to back, so "N connections" means exactly N sockets. Kept lean on
//! purpose: on a 2-core machine every cycle the client spends is taken from the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;

use crate::Result;
use crate::stats::percentile_us;
use crate::token_auth::TokenSource;

/// Where requests go, and how they are authorized (the token profile) or not.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tokens: Option<Arc<TokenSource>>,
}

impl Target {
    /// No authorization (the open profile; nginx).
    pub fn plain(addr: SocketAddr) -> Target {
        Target { addr, tokens: None }
    }
}

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    tokens: Option<Arc<TokenSource>>,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
}

impl Conn {
    pub async fn connect(target: &Target) -> Result<Conn> {
        let addr = target.addr;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        Conn::over(stream, target).await
    }

    /// A connection from the local address `from` (a loopback address of its own, so that
    /// the server sees many clients).
    pub async fn connect_from(target: &Target, from: std::net::IpAddr) -> Result<Conn> {
        let addr = target.addr;
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr} from {from}: {e}"))?;
        Conn::over(stream, target).await
    }

    async fn over(stream: TcpStream, target: &Target) -> Result<Conn> {
        let addr = target.addr;
        stream.set_nodelay(true)?;
        // writev: a pushed body is queued as the shared buffer's slice instead of being copied
        // into hyper's write buffer.
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(true)
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            // A connection error also fails the request in flight, which reports it.
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
            tokens: target.tokens.clone(),
        })
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response> {
        let mut request = Request::builder().method(method.clone()).uri(path);
        let h = request.headers_mut().expect("fresh builder");
        h.insert(http::header::HOST, self.host.clone());
        for (name, value) in headers {
            h.insert(name, value.clone());
        }
        if let Some(tokens) = &self.tokens
            && !h.contains_key(http::header::AUTHORIZATION)
        {
            h.insert(
                http::header::AUTHORIZATION,
                tokens.authorization(path).await?,
            );
        }
        // Always announce the length of a body-carrying request, even an empty one: PUT and
        // PATCH without Content-Length mean chunked transfer to hyper.
        if method == Method::PUT || method == Method::PATCH || method == Method::POST {
            h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let request = request.body(Full::new(body))?;
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the body to its end, counting bytes and hashing them when asked; never holds more
    /// than one frame.
    pub async fn drain(mut self, mut hasher: Option<&mut Sha256>) -> Result<u64> {
        let mut n = 0u64;
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                n += data.len() as u64;
                if let Some(h) = hasher.as_deref_mut() {
                    h.update(&data);
                }
            }
        }
        Ok(n)
    }

    /// The whole body, for small responses (manifests, listings, errors).
    pub async fn bytes(self) -> Result<Bytes> {
        Ok(self.body.collect().await?.to_bytes())
    }

    /// Fails with the body (an OCI error document, usually) unless the status is `want`.
    pub async fn expect(self, want: StatusCode, what: &str) -> Result<Response> {
        if self.status == want {
            return Ok(self);
        }
        let status = self.status;
        let body = self.bytes().await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        Err(format!("{what}: expected {want}, got {status}: {body}").into())
    }
}

/// One request, repeated by every connection of a load run.
pub struct RequestSpec {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub expect: StatusCode,
}

pub struct LoadSpec {
    pub conns: usize,
    /// Requests during the warm-up are sent but not counted: caches, connection setup and the
    /// server's thread pools settle first.
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Requests counted (after the warm-up).
    pub requests: u64,
    /// Every request sent, warm-up included: what the server did.
    pub all_requests: u64,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `spec.conns` connections send `request` back to back for warm-up plus duration. Requests
/// started after the warm-up are counted (each connection counts at least one, so a server
/// slower than the duration still yields a latency); the window ends at the later of the
/// duration's end and the last counted response.
pub async fn load(
    target: Target,
    spec: &LoadSpec,
    request: Arc<RequestSpec>,
) -> Result<LoadResult> {
    let start = Instant::now();
    let warm_end = start + spec.warmup;
    let end = warm_end + spec.duration;
    let mut tasks = Vec::with_capacity(spec.conns);
    for _ in 0..spec.conns {
        let (request, target) = (request.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(&target).await?;
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 14);
            let mut sent_total = 0u64;
            let mut last = Instant::now();
            loop {
                let sent = Instant::now();
                if sent >= end && !latencies.is_empty() {
                    break;
                }
                let response = conn
                    .send(
                        request.method.clone(),
                        &request.path,
                        &request.headers,
                        Bytes::new(),
                    )
                    .await?;
                let response = response
                    .expect(
                        request.expect,
                        &format!("{} {}", request.method, request.path),
                    )
                    .await?;
                response.drain(None).await?;
                sent_total += 1;
                last = Instant::now();
                if sent >= warm_end {
                    let us = (last - sent).as_micros().min(u128::from(u32::MAX)) as u32;
                    latencies.push(us);
                }
            }
            Ok::<_, crate::Error>((latencies, sent_total, last))
        }));
    }
    let mut all = Vec::new();
    let mut all_requests = 0;
    let mut last = end;
    for task in tasks {
        let (latencies, sent, done) = task.await??;
        all.extend(latencies);
        all_requests += sent;
        last = last.max(done);
    }
    all.sort_unstable();
    let seconds = (last - warm_end).as_secs_f64();
    Ok(LoadResult {
        requests: all.len() as u64,
        all_requests,
        seconds,
        requests_per_s: all.len() as f64 / seconds,
        p50_ms: percentile_us(&all, 0.50) / 1000.0,
        p99_ms: percentile_us(&all, 0.99) / 1000.0,
        max_ms: all.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0),
    })
}

/// The path (and query) of a `Location`, absolute (registry:2) or relative.
pub fn location_path(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => location.to_string(),
    }
}

pub fn header(name: &'static str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(value).expect("valid header value"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_paths() {
        assert_eq!(
            location_path("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=y"),
            "/v2/a/blobs/uploads/x?_state=y"
        );
        assert_eq!(
            location_path("/v2/a/blobs/uploads/x"),
            "/v2/a/blobs/uploads/x"
        );
    }
}
