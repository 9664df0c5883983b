//! `berth serve`: wires configuration, storage, metadata, the registry and the HTTP server
//! together, runs background upkeep, and shuts down cleanly on SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_api::server::{Server, tls_acceptor};
use berth_api::{AppState, HttpOptions, UrlPolicy};
use berth_auth::admin::Administration;
use berth_config::{AuthConfig, Config, TlsVersion};
use berth_registry::{Registry, Settings};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{ServeArgs, backends, first_run, scrub};

pub fn run(args: ServeArgs) -> ExitCode {
    let loaded = match crate::load_config(&args.config, args.addr.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config.clone();
    crate::run_with_runtime(&loaded, serve(config))
}

async fn serve(config: Config) -> Result<(), String> {
    let blobs = backends::open_blob_store(&config, backends::Reads::AsConfigured)?;
    let database = backends::open_database(&config).await?;
    let access = backends::open_access(&config, Arc::clone(&database.identity)).await?;
    let registry = Arc::new(Registry::new(
        blobs,
        database.meta,
        Settings {
            delete_enabled: config.storage.delete.enabled,
            read_only: config.storage.maintenance.readonly.enabled,
        },
    ));

    let tls = match &config.http.tls {
        Some(tls) => Some(tls_acceptor(
            &tls.certificate,
            &tls.key,
            tls.minimumtls == Some(TlsVersion::Tls13),
        )?),
        None => None,
    };
    let state = AppState {
        registry: Arc::clone(&registry),
        access: Arc::clone(&access),
        urls: UrlPolicy {
            public_base: config.http.host.as_ref().map(|h| h.as_str().to_string()),
            relative: config.http.relativeurls,
            trusted_proxies: config.http.trustedproxies.clone(),
        },
    };
    let options = HttpOptions {
        extra_headers: extra_headers(&config)?,
        access_log: !config.log.accesslog.disabled,
    };
    let app = berth_api::router(state, options);
    let addr = config.http.addr.socket_addr();
    let server = Server::bind(addr, tls, app, config.http.draintimeout)
        .await
        .map_err(|e| format!("listening on {}: {e}", config.http.addr))?;
    let local = server.local_addr().map_err(|e| e.to_string())?;
    if matches!(config.auth, AuthConfig::None) && !config.http.addr.is_loopback() {
        let warning = format!(
            "AUTHENTICATION IS OFF (auth: none) and berth listens on {local}: anyone who can reach it can push, pull and delete"
        );
        eprintln!("\n*** {warning} ***\n");
        tracing::warn!("{warning}");
    }
    if matches!(config.auth, AuthConfig::Berth(_)) {
        first_run::create_first_administrator(&database.identity, local, config.http.tls.is_some())
            .await?;
    }
    tracing::info!(
        addr = %local,
        tls = config.http.tls.is_some(),
        storage = %backends::describe_storage(&config),
        database = %config.redacted_database_url(),
        delete_enabled = config.storage.delete.enabled,
        "listening"
    );

    let purging = &config.storage.maintenance.uploadpurging;
    if purging.enabled {
        tokio::spawn(purge_uploads_periodically(
            Arc::clone(&registry),
            purging.age,
            purging.interval,
            purging.dryrun,
        ));
    }

    let scrub = &config.storage.scrub;
    if scrub.enabled {
        // Its own handle on the store: the scrub reads bytes, it never redirects.
        let store = backends::open_blob_store(&config, backends::Reads::Streamed)?;
        let settings = scrub::Settings {
            rate: Some(scrub.rate),
            reverify_after: scrub.reverify,
            max_blobs: u32::MAX,
        };
        tokio::spawn(scrub_periodically(
            Arc::clone(&database.inventory),
            store,
            settings,
            scrub.interval,
        ));
    }

    if let AuthConfig::Berth(berth) = &config.auth {
        tokio::spawn(prune_identity_periodically(
            Administration::new(Arc::clone(&database.identity)),
            berth.auditretention,
        ));
    }

    server.run(shutdown_signal()).await;
    access.flush_audit().await;
    tracing::info!("stopped");
    Ok(())
}

fn extra_headers(config: &Config) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, values) in &config.http.headers {
        let name =
            HeaderName::try_from(name.as_str()).map_err(|e| format!("http.headers.{name}: {e}"))?;
        for value in values {
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|e| format!("http.headers.{name}: {e}"))?;
            headers.append(name.clone(), value);
        }
    }
    Ok(headers)
}

/// Purges abandoned uploads shortly after start, then every `interval`.
async fn purge_uploads_periodically(
    registry: Arc<Registry>,
    age: Duration,
    interval: Duration,
    dry_run: bool,
) {
    let mut next = Duration::from_secs(60).min(interval);
    loop {
        tokio::time::sleep(next).await;
        next = interval;
        match registry.purge_uploads(age, dry_run).await {
            Ok(report) if report.sessions + report.orphans > 0 => tracing::info!(
                sessions = report.sessions,
                orphans = report.orphans,
                dry_run,
                "purged abandoned uploads"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging abandoned uploads failed"),
        }
    }
}

/// Verifies the blobs due for it ten minutes after start, then every `interval`.
async fn scrub_periodically(
    inventory: Arc<dyn berth_meta::BlobInventory>,
    store: Arc<dyn berth_storage::BlobStore>,
    settings: scrub::Settings,
    interval: Duration,
) {
    let mut next = Duration::from_secs(600).min(interval);
    loop {
        tokio::time::sleep(next).await;
        next = interval;
        match scrub::run(&inventory, &store, &settings, &|| false, &|_, _| {}).await {
            Ok(summary) => tracing::info!(
                verified = summary.verified,
                bytes = summary.bytes,
                quarantined = summary.quarantined.len(),
                missing = summary.missing.len(),
                "scrub finished"
            ),
            Err(e) => tracing::warn!(error = %e, "the scrub stopped"),
        }
    }
}

/// Deletes audit events older than `retention` (zero: none) and expired sessions, shortly
/// after start and then daily. Several instances doing it at once is harmless.
async fn prune_identity_periodically(admin: Administration, retention: Duration) {
    let mut next = Duration::from_secs(120);
    loop {
        tokio::time::sleep(next).await;
        next = Duration::from_secs(24 * 3600);
        if !retention.is_zero() {
            match admin.prune_audit(retention).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "deleted audit events past their retention"),
                Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
            }
        }
        match admin.prune_sessions().await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "deleted expired sessions"),
            Err(e) => tracing::warn!(error = %e, "pruning expired sessions failed"),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
