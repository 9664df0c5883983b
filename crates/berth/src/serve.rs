//! `berth serve`: wires configuration, storage, metadata, the registry and the HTTP server
//! together, runs background upkeep, and shuts down cleanly on SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth_api::metrics::{MetricsEndpoint, RegistryMetrics};
use berth_api::server::{Server, tls_acceptor};
use berth_api::{AppState, Background, HttpOptions, UrlPolicy};
use berth_auth::admin::Administration;
use berth_config::{AuthConfig, Config, TlsVersion};
use berth_jobs::{JobRunner, Schedule};
use berth_lifecycle::Lifecycle;
use berth_registry::{Registry, Settings};
use berth_storage::BlobStore;
use berth_webhooks::admin::WebhookAdmin;
use berth_webhooks::{Delivery, Endpoints};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::instrumented::{MeasuredBlobStore, MeasuredMetadataStore};
use crate::jobs::{
    CACHE_EVICTION_JOB, CacheAnswersExpiry, CacheDefinitions, CacheEviction, DescribeManifests,
    GarbageCollection, GcResume, IdentityPrune, PULL_STATS_JOB, PullStatsFlush, Retention,
    TagHistoryExpiry, UploadPurge,
};
use crate::storage_gauges::StorageGauges;
use crate::{ServeArgs, backends, first_run, observability, scrub};
use berth_registry::pull_stats::PullStats;

pub fn run(args: ServeArgs) -> ExitCode {
    let loaded = match crate::load_config(&args.config, args.addr.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config.clone();
    crate::run_with_runtime(&loaded, serve(config))
}

async fn serve(config: Config) -> Result<(), String> {
    let blobs: Arc<dyn BlobStore> = Arc::new(MeasuredBlobStore::new(
        backends::open_blob_store(&config)?,
        backends::storage_kind(&config),
    ));
    let mut database = backends::open_database(&config).await?;
    let access = backends::open_access(&config, Arc::clone(&database.identity)).await?;
    let metrics = if config.metrics.enabled {
        Some(observability::install_metrics()?)
    } else {
        None
    };
    // Wrapped once the recorder is installed: the decorator registers its series at first use.
    database.meta = Arc::new(MeasuredMetadataStore::new(
        Arc::clone(&database.meta),
        database.engine.system(),
    ));
    let webhooks = Arc::new(Endpoints::new(
        observability::configured_webhooks(&config)?,
        Arc::clone(&database.webhooks),
    ));
    webhooks
        .refresh()
        .await
        .map_err(|e| format!("reading the webhooks defined through the API: {e}"))?;
    database.meta.route_events_to(webhooks.clone());
    let pull_stats = Arc::new(PullStats::new(Arc::clone(&database.meta)));
    let registry = Arc::new(
        Registry::new(
            Arc::clone(&blobs),
            Arc::clone(&database.meta),
            Settings {
                delete_enabled: config.storage.delete.enabled,
                read_only: config.storage.maintenance.readonly.enabled,
            },
        )
        .with_listener(Arc::new(RegistryMetrics::new(
            config.metrics.repositories.clone(),
        )))
        .with_listener(webhooks.clone())
        .with_listener(pull_stats.clone()),
    );

    let lifecycle = crate::lifecycle_commands::open(
        &config,
        &registry,
        &database,
        crate::lifecycle_commands::holder("serve"),
    );

    let tls = match &config.http.tls {
        Some(tls) => Some(tls_acceptor(
            &tls.certificate,
            &tls.key,
            tls.minimumtls == Some(TlsVersion::Tls13),
        )?),
        None => None,
    };
    let caches = Arc::new(berth_cache::catalog::Caches::new(
        &config,
        &registry,
        berth_cache::Shared {
            store: Arc::clone(&database.meta) as Arc<dyn berth_meta::CacheStore>,
            leases: matches!(database.engine, crate::backends::Engine::Postgres(_))
                .then(|| Arc::clone(&database.leases)),
            holder: crate::lifecycle_commands::holder("cache"),
        },
    )?);
    caches.refresh().await.map_err(|e| {
        format!("reading the remote and virtual repositories made through the API: {e}")
    })?;
    let cache_admin = Arc::new(berth_cache::admin::CacheAdmin::new(
        Arc::clone(&caches),
        Administration::serving(Arc::clone(&access)),
    ));
    let namespaces = Arc::clone(caches.namespaces());
    let urls = UrlPolicy {
        public_base: config.http.host.as_ref().map(|h| h.as_str().to_string()),
        relative: config.http.relativeurls,
        trusted_proxies: config.http.trustedproxies.clone(),
    };
    let mailer = match &config.smtp {
        Some(smtp) => Some(Arc::new(
            berth_web::mail::Mailer::new(&mail_settings(smtp)).map_err(|e| format!("smtp: {e}"))?,
        )),
        None => None,
    };
    let pages = berth_web::pages(berth_web::WebState {
        registry: Arc::clone(&registry),
        access: Arc::clone(&access),
        lifecycle: Arc::clone(&lifecycle),
        caches: Arc::clone(&cache_admin),
        urls: urls.clone(),
        mailer,
    });
    let background = Arc::new(std::sync::OnceLock::new());
    let state = AppState {
        registry: Arc::clone(&registry),
        namespaces,
        caches: Arc::clone(&cache_admin),
        lifecycle: Arc::clone(&lifecycle),
        access: Arc::clone(&access),
        urls,
        metrics: metrics.clone().map(|handle| MetricsEndpoint {
            handle,
            open: config.metrics.open || matches!(config.auth, AuthConfig::None),
        }),
        background: Arc::clone(&background),
    };
    let options = HttpOptions {
        extra_headers: extra_headers(&config)?,
        access_log: !config.log.accesslog.disabled,
        pages: Some(pages),
    };
    let app = berth_api::router(state, options);
    let addr = config.http.addr.socket_addr();
    let open_files = crate::limits::raise_open_files_limit();
    let max_connections = config
        .http
        .maxconnections
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .unwrap_or_else(|| crate::limits::default_max_connections(open_files));
    let server = Server::bind(addr, tls, app, config.http.draintimeout, max_connections)
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
        first_run::create_first_administrator(
            &Administration::serving(Arc::clone(&access)),
            &database.identity,
            local,
            config.http.tls.is_some(),
        )
        .await?;
    }
    tracing::info!(
        addr = %local,
        tls = config.http.tls.is_some(),
        storage = %backends::describe_storage(&config),
        database = %config.redacted_database_url(),
        delete_enabled = config.storage.delete.enabled,
        max_connections,
        open_files = open_files.unwrap_or_default(),
        "listening"
    );

    let mut jobs = upkeep_jobs(&config, &blobs, &registry, &access, &database, &lifecycle)?;
    let delivery = Arc::new(Delivery::new(
        Arc::clone(&webhooks),
        Arc::clone(&database.webhooks),
        Arc::clone(&database.leases),
        observability::instance(&config, local),
    ));
    jobs.add(
        delivery.clone(),
        Schedule::every(Duration::from_secs(1)).first_after(Duration::from_secs(1)),
    );
    if let Some(handle) = &metrics {
        jobs.add(
            Arc::new(observability::StoreGauges {
                meta: Arc::clone(&database.meta),
            }),
            Schedule::every(observability::StoreGauges::INTERVAL).first_after(Duration::ZERO),
        );
        jobs.add(
            Arc::new(StorageGauges::new(
                Arc::clone(&database.meta),
                config.metrics.repositories.clone(),
            )),
            Schedule::every(StorageGauges::INTERVAL).first_after(Duration::from_secs(30)),
        );
        jobs.add(
            Arc::new(observability::MetricsUpkeep {
                handle: handle.clone(),
            }),
            Schedule::every(observability::MetricsUpkeep::INTERVAL)
                .first_after(observability::MetricsUpkeep::INTERVAL),
        );
    }
    jobs.add(
        Arc::new(PullStatsFlush {
            stats: Arc::clone(&pull_stats),
        }),
        Schedule::every(Duration::from_secs(2)).first_after(Duration::from_secs(2)),
    );
    jobs.add(
        Arc::new(DescribeManifests {
            registry: Arc::clone(&registry),
        }),
        Schedule::every(Duration::from_secs(3600))
            .first_after(Duration::from_secs(30))
            .retry_after(Duration::from_secs(600)),
    );
    jobs.add(
        Arc::new(CacheDefinitions {
            caches: Arc::clone(&caches),
        }),
        Schedule::every(berth_cache::catalog::REFRESH).first_after(berth_cache::catalog::REFRESH),
    );
    jobs.add(
        Arc::new(CacheAnswersExpiry {
            caches: Arc::clone(&caches),
        }),
        Schedule::every(Duration::from_secs(3600)).first_after(Duration::from_secs(60)),
    );
    jobs.add(
        Arc::new(CacheEviction {
            caches: Arc::clone(&caches),
            pull_stats: Arc::clone(&pull_stats),
            leases: Arc::clone(&database.leases),
            holder: observability::instance(&config, local).id,
        }),
        Schedule::every(Duration::from_secs(60)).first_after(Duration::from_secs(10)),
    );
    let jobs = jobs.start();
    if let Some(waker) = jobs.waker(CACHE_EVICTION_JOB) {
        caches.when_filled(move || waker.wake());
    }
    if let Some(waker) = jobs.waker(berth_webhooks::delivery::JOB_NAME) {
        webhooks.set_waker(waker);
    }
    if let Some(waker) = jobs.waker(PULL_STATS_JOB) {
        pull_stats.when_full(move || waker.wake());
    }
    if let Some(waker) = jobs.waker("gc") {
        lifecycle.on_request(move || waker.wake());
    }
    let _ = background.set(Background {
        jobs: jobs.clone(),
        webhooks: Arc::new(WebhookAdmin::new(
            Arc::clone(&webhooks),
            Arc::clone(&database.webhooks),
            delivery,
            Administration::serving(Arc::clone(&access)),
        )),
    });

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let debug = match (&config.http.debug.addr, metrics) {
        (Some(addr), Some(handle)) if config.http.debug.prometheus.enabled => {
            let app = berth_api::metrics::debug_router(handle, &config.http.debug.prometheus.path);
            // A few scrapers at most: a small connection cap of its own.
            let debug = Server::bind(addr.socket_addr(), None, app, Duration::from_secs(1), 64)
                .await
                .map_err(|e| format!("listening on http.debug.addr {addr}: {e}"))?;
            let debug_local = debug.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(
                addr = %debug_local,
                path = %config.http.debug.prometheus.path,
                "serving metrics on the debug listener"
            );
            let mut stopping = stopping.clone();
            Some(tokio::spawn(debug.run(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            })))
        }
        _ => None,
    };
    server
        .run(async {
            shutdown_signal().await;
            let _ = stop.send(true);
        })
        .await;
    if let Some(debug) = debug {
        let _ = debug.await;
    }
    jobs.shutdown(Duration::from_secs(10)).await;
    if let Err(e) = pull_stats.flush().await {
        tracing::warn!(error = %e, "writing the last pull counts failed");
    }
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

/// The background jobs of a serving instance.
fn upkeep_jobs(
    config: &Config,
    blobs: &Arc<dyn BlobStore>,
    registry: &Arc<Registry>,
    access: &Arc<berth_auth::AccessService>,
    database: &backends::Database,
    lifecycle: &Arc<Lifecycle>,
) -> Result<JobRunner, String> {
    let mut jobs = JobRunner::new();
    // Every instance ticks; the job runs a collection when one is asked for (the admin API
    // wakes it) or, if enabled, when a scheduled one is due (see there).
    let tick = config
        .gc
        .interval
        .clamp(Duration::from_secs(60), Duration::from_secs(600));
    jobs.add(
        Arc::new(GarbageCollection {
            lifecycle: Arc::clone(lifecycle),
            scheduled: config.gc.enabled,
            interval: config.gc.interval,
            window: config.gc.window.map(|w| w.0),
        }),
        Schedule::every(tick).first_after(tick.min(Duration::from_secs(120))),
    );
    jobs.add(
        Arc::new(GcResume {
            lifecycle: Arc::clone(lifecycle),
        }),
        Schedule::every(Duration::from_secs(60)).first_after(Duration::from_secs(30)),
    );
    jobs.add(
        Arc::new(Retention {
            lifecycle: Arc::clone(lifecycle),
        }),
        Schedule::every(Duration::from_secs(24 * 3600)).first_after(Duration::from_secs(3600)),
    );
    jobs.add(
        Arc::new(TagHistoryExpiry {
            lifecycle: Arc::clone(lifecycle),
        }),
        Schedule::every(Duration::from_secs(3600)).first_after(Duration::from_secs(300)),
    );
    let purging = &config.storage.maintenance.uploadpurging;
    if purging.enabled {
        jobs.add(
            Arc::new(UploadPurge {
                registry: Arc::clone(registry),
                age: purging.age,
                dry_run: purging.dryrun,
            }),
            Schedule::every(purging.interval)
                .first_after(Duration::from_secs(60).min(purging.interval)),
        );
    }
    if let AuthConfig::Berth(berth) = &config.auth {
        jobs.add(
            Arc::new(IdentityPrune {
                admin: Administration::serving(Arc::clone(access)),
                audit_retention: berth.auditretention,
            }),
            Schedule::every(Duration::from_secs(24 * 3600))
                .first_after(Duration::from_secs(120))
                .retry_after(Duration::from_secs(3600)),
        );
    }
    let scrub = &config.storage.scrub;
    if scrub.enabled {
        jobs.add(
            Arc::new(scrub::ScrubJob {
                inventory: Arc::clone(&database.inventory),
                store: Arc::clone(blobs),
                settings: scrub::Settings {
                    rate: Some(scrub.rate),
                    reverify_after: scrub.reverify,
                    max_blobs: u32::MAX,
                },
            }),
            Schedule::every(scrub.interval)
                .first_after(Duration::from_secs(600).min(scrub.interval)),
        );
    }
    Ok(jobs)
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

/// The mail server's settings for the dashboard's mailer.
fn mail_settings(smtp: &berth_config::SmtpConfig) -> berth_web::mail::MailSettings {
    use berth_config::SmtpSecurity;
    use berth_web::mail::{MailSecurity, MailSettings};
    MailSettings {
        host: smtp.host.clone(),
        port: smtp.effective_port(),
        security: match smtp.security {
            SmtpSecurity::Starttls => MailSecurity::StartTls,
            SmtpSecurity::Tls => MailSecurity::Tls,
            SmtpSecurity::None => MailSecurity::None,
        },
        credentials: smtp.user.clone().zip(smtp.password.clone()),
        from: smtp.from.clone(),
    }
}
