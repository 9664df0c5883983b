//! The accept loop: TCP, optional TLS (rustls), HTTP/1.1 and HTTP/2, graceful shutdown, and
//! the limits that keep idle or hostile clients from exhausting the process.
//!
//! Each connection is served on its own task. On shutdown the listener closes first (no new
//! connections), then every connection is told to finish: HTTP/1 connections close after
//! their current request, HTTP/2 ones receive GOAWAY. Requests in flight get up to the drain
//! timeout to complete; whatever is still running then is cut off.
//!
//! Limits:
//!
//! * at most `max_connections` connections are open at once. At the cap the loop stops
//!   accepting (new connections wait in the kernel's queue) and says so in the log, once
//!   per minute while it lasts;
//! * a connection must complete its first request's headers within [`HEADER_TIMEOUT`] of
//!   being accepted (hyper's own timeout only starts once it has seen the protocol, so a
//!   connection that never sends a byte would otherwise stay forever); at the cap, within
//!   [`TIMEOUT_AT_CAPACITY`], so that idle connections make room for real requests (health
//!   checks included) within a second or two;
//! * a failing `accept` (out of file descriptors) backs off, from 10 ms up to a second,
//!   and is logged at most every ten seconds.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::urls::ConnectionInfo;

/// A client has this long from connecting to send its first request's headers (including a
/// TLS handshake), and this long for the headers of each later request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The same, while the server is at its connection cap.
pub const TIMEOUT_AT_CAPACITY: Duration = Duration::from_secs(1);
/// How often a connection still waiting for its first request checks its deadline.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Builds a TLS acceptor from PEM files: a certificate chain and its private key.
pub fn tls_acceptor(
    certificate: &Path,
    key: &Path,
    tls13_only: bool,
) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("reading certificate {}: {e}", certificate.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {}", certificate.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading private key {}: {e}", key.display()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
        &[&rustls::version::TLS13]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("certificate and key do not form a usable pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections open, against the cap.
struct Capacity {
    permits: Arc<Semaphore>,
    max: usize,
    /// Set while the accept loop waits for a connection to close.
    full: AtomicBool,
}

impl Capacity {
    fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    drain_timeout: Duration,
    capacity: Arc<Capacity>,
}

impl Server {
    /// Listens on `addr`; serves at most `max_connections` connections at once.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
        app: Router,
        drain_timeout: Duration,
        max_connections: usize,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let max = max_connections.max(1);
        Ok(Server {
            listener,
            tls,
            app,
            drain_timeout,
            capacity: Arc::new(Capacity {
                permits: Arc::new(Semaphore::new(max)),
                max,
                full: AtomicBool::new(false),
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A slot for one more connection: at once, or after waiting (and saying so) for one to
    /// close. `None` when `shutdown` came first.
    async fn slot(
        &self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        last_warning: &mut Option<Instant>,
    ) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.capacity.permits).try_acquire_owned() {
            return Some(permit);
        }
        self.capacity.full.store(true, Ordering::Relaxed);
        if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(
                max_connections = self.capacity.max,
                "connection limit reached: {} connections are open; new connections wait until one closes, and connections without a request are closed after {:?} (http.maxconnections)",
                self.capacity.max,
                TIMEOUT_AT_CAPACITY
            );
            *last_warning = Some(Instant::now());
        }
        let permit = tokio::select! {
            permit = Arc::clone(&self.capacity.permits).acquire_owned() => permit.ok(),
            () = shutdown => None,
        };
        self.capacity.full.store(false, Ordering::Relaxed);
        permit
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        let mut last_warning = None;
        let mut accept_errors = AcceptErrors::default();

        loop {
            let Some(permit) = self.slot(&mut shutdown, &mut last_warning).await else {
                break;
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        let pause = accept_errors.failed(&e);
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            accept_errors.succeeded();
            let _ = stream.set_nodelay(true);
            let info = ConnectionInfo {
                peer,
                tls: self.tls.is_some(),
            };
            let requested = Arc::new(AtomicBool::new(false));
            let seen = Arc::clone(&requested);
            let service = TowerToHyperService::new(self.app.clone().map_request(
                move |mut request: Request<Incoming>| {
                    seen.store(true, Ordering::Relaxed);
                    request.extensions_mut().insert(info);
                    request
                },
            ));
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            let capacity = Arc::clone(&self.capacity);
            tokio::spawn(async move {
                let _permit = permit;
                let accepted = Instant::now();
                let serve = async {
                    match tls {
                        None => {
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(connection.into_owned()).await
                        }
                        Some(acceptor) => {
                            let stream = match acceptor.accept(stream).await {
                                Ok(stream) => stream,
                                Err(e) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return Ok(());
                                }
                            };
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(connection.into_owned()).await
                        }
                    }
                };
                tokio::select! {
                    served = serve => if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    },
                    () = first_request_overdue(accepted, &requested, &capacity) => {
                        tracing::debug!(%peer, "closed a connection that sent no request in time");
                    }
                }
            });
        }

        drop(self.listener);
        tracing::info!(timeout = ?self.drain_timeout, "shutting down: no new connections, draining requests in flight");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections drained"),
            () = tokio::time::sleep(self.drain_timeout) => {
                tracing::warn!("drain timeout elapsed; cutting the remaining connections");
            }
        }
    }
}

/// Completes when a connection accepted at `accepted` has had no request for too long:
/// [`HEADER_TIMEOUT`], or [`TIMEOUT_AT_CAPACITY`] while the server is full. Never completes
/// once a request arrived (hyper's header timeout takes over).
async fn first_request_overdue(accepted: Instant, requested: &AtomicBool, capacity: &Capacity) {
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        if requested.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        let waited = accepted.elapsed();
        if waited >= HEADER_TIMEOUT || (capacity.is_full() && waited >= TIMEOUT_AT_CAPACITY) {
            return;
        }
    }
}

/// Failing accepts: how long to pause, and a log line at most every ten seconds.
#[derive(Default)]
struct AcceptErrors {
    consecutive: u32,
    since_logged: u64,
    logged_at: Option<Instant>,
}

impl AcceptErrors {
    fn failed(&mut self, error: &io::Error) -> Duration {
        self.consecutive += 1;
        self.since_logged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(error = %error, failures = self.since_logged, "accepting connections fails; backing off");
            self.logged_at = Some(Instant::now());
            self.since_logged = 0;
        }
        Duration::from_millis(10)
            .saturating_mul(1 << self.consecutive.min(7))
            .min(Duration::from_secs(1))
    }

    fn succeeded(&mut self) {
        self.consecutive = 0;
    }
}
