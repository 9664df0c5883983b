//! The accept loop: TCP, optional TLS (rustls), HTTP/1.1 and HTTP/2, graceful shutdown.
//!
//! Each connection is served on its own task. On shutdown the listener closes first (no new
//! connections), then every connection is told to finish: HTTP/1 connections close after
//! their current request, HTTP/2 ones receive GOAWAY. Requests in flight get up to the drain
//! timeout to complete; whatever is still running then is cut off.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::urls::ConnectionInfo;

/// A client has this long to send its request headers (and to finish a TLS handshake).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

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

pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    drain_timeout: Duration,
}

impl Server {
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
        app: Router,
        drain_timeout: Duration,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            tls,
            app,
            drain_timeout,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
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

        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let info = ConnectionInfo {
                peer,
                tls: self.tls.is_some(),
            };
            let service = TowerToHyperService::new(self.app.clone().map_request(
                move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(info);
                    request
                },
            ));
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let served = match tls {
                    None => {
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
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
