//! The HTTP face of berth.
//!
//! * [`router`] builds the application: `/v2/` (the OCI distribution API, authenticated and
//!   authorized per request), `/token` (the Docker token endpoint), `/healthz`, `/readyz`,
//!   `/api/v1/` (the admin API, described by `openapi.yaml`), and the web dashboard for
//!   every other path, with the access log and configured extra headers around it.
//! * [`server::Server`] accepts connections (plain or TLS) and drains them on shutdown.
//!
//! Handlers are thin: they parse the request into domain values ([`endpoint::Endpoint`],
//! digests, ranges), call [`berth_registry::Registry`], and render the result or the OCI
//! error.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use berth_auth::AccessService;
use berth_registry::{Namespaces, Registry};
use http::{HeaderMap, StatusCode};

mod access_log;
pub mod admin_api;
mod auth;
mod blobs;
pub mod endpoint;
mod error_response;
mod health;
mod listing;
mod manifests;
pub mod metrics;
pub mod operation;
mod process_metrics;
pub mod server;
mod token;
mod uploads;
pub mod urls;
mod v2;

pub use urls::{ConnectionInfo, UrlPolicy};

/// What every handler shares.
pub struct AppState {
    /// The local registry: every write, listings, and reads of names no namespace mounts.
    pub registry: Arc<Registry>,
    /// Which read path serves a repository name (the local registry, or a pull-through
    /// cache mounted at a prefix), and which names take no writes.
    pub namespaces: Arc<Namespaces>,
    /// Remote and virtual repositories: the write path of those made through the API.
    pub caches: Arc<berth_cache::admin::CacheAdmin>,
    /// Garbage collection, retention, immutability and quotas (the admin API's door to them).
    pub lifecycle: Arc<berth_lifecycle::Lifecycle>,
    pub access: Arc<AccessService>,
    pub urls: UrlPolicy,
    /// `GET /metrics` on this listener, when metrics are served here.
    pub metrics: Option<metrics::MetricsEndpoint>,
    /// Webhooks and jobs, set once they run (after the listener is bound).
    pub background: Arc<OnceLock<Background>>,
}

/// What runs beside the request handlers, as the admin API manages it.
pub struct Background {
    pub jobs: berth_jobs::RunningJobs,
    pub webhooks: Arc<berth_webhooks::admin::WebhookAdmin>,
}

/// Options of the HTTP layer itself.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// Headers added to every response (`http.headers`).
    pub extra_headers: HeaderMap,
    pub access_log: bool,
    /// The web dashboard (`berth-web`), answering every path the API does not.
    pub pages: Option<Router>,
}

pub fn router(state: AppState, options: HttpOptions) -> Router {
    let activity = Arc::clone(state.registry.client_activity());
    let state = Arc::new(state);
    let app = Router::new()
        .route("/v2", any(v2::handle))
        .route("/v2/", any(v2::handle))
        .route("/v2/{*rest}", any(v2::handle))
        .route("/token", get(token::get).post(token::post))
        .route("/auth/certificate.pem", get(token::certificate))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .merge(admin_api::routes());
    let app = match options.pages {
        Some(pages) => app.fallback_service(pages),
        None => app.fallback(not_found),
    };
    let mut app = app.with_state(state);
    if !options.extra_headers.is_empty() {
        let extra = Arc::new(options.extra_headers);
        app = app.layer(middleware::from_fn(move |request: Request, next: Next| {
            let extra = Arc::clone(&extra);
            async move {
                let mut response = next.run(request).await;
                for (name, value) in extra.iter() {
                    response.headers_mut().append(name, value.clone());
                }
                response
            }
        }));
    }
    let log = options.access_log;
    app.layer(middleware::from_fn(move |request: Request, next: Next| {
        access_log::observe_request(log, Arc::clone(&activity), request, next)
    }))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
