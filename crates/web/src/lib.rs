//! The web dashboard: server-rendered HTML pages, served by the same binary on the same
//! origin as `/v2/`, for the same accounts as `podman login`.
//!
//! * Pages are [maud] templates compiled into the binary; every value is HTML-escaped by
//!   the template engine. The stylesheet and the one small script (copy to clipboard) are
//!   embedded and served under content-hashed names with far-future caching.
//! * Every page works without JavaScript. Responses carry a strict Content-Security-Policy
//!   (no inline script or style), `X-Frame-Options: DENY` and `Referrer-Policy`.
//! * Sign-in makes a session ([`berth_auth::AccessService::begin_session`]) kept in an
//!   HttpOnly, SameSite=Strict cookie; every form carries the session's CSRF token, checked
//!   on every POST ([`session`]). A second factor (an authenticator app's code) comes
//!   between the password and the session when the user has one, or is enrolled there when
//!   `auth.berth.requiremfa` says the user must have one ([`second_factor`]). Passkeys
//!   (WebAuthn) sign in without a password or serve as that second factor ([`passkeys`]);
//!   they need the one script that is more than a convenience.
//! * What a page shows comes from typed [`berth_registry::Registry`] calls and from
//!   [`berth_auth::admin::Administration`]; their errors become error pages in one place
//!   ([`errors`]). A repository the viewer may not pull is the same 404 as one that does not
//!   exist.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get};
use berth_api::UrlPolicy;
use berth_auth::AccessService;
use berth_registry::Registry;
use http::{HeaderValue, header};

mod assets;
mod chart;
mod errors;
mod forms;
mod layout;
pub mod mail;
mod pages;
mod passkeys;
mod password_reset;
mod second_factor;
mod session;
mod single_sign_on;

pub use errors::WebError;

/// What every page handler shares.
pub struct WebState {
    pub registry: Arc<Registry>,
    pub access: Arc<AccessService>,
    /// Garbage collection, retention, immutability and quotas (the administration pages).
    pub lifecycle: Arc<berth_lifecycle::Lifecycle>,
    /// Remote and virtual repositories (their administration page).
    pub caches: Arc<berth_cache::admin::CacheAdmin>,
    pub urls: UrlPolicy,
    /// The mail server (`smtp`), when one is configured: password reset links.
    pub mailer: Option<Arc<mail::Mailer>>,
}

pub(crate) type Shared = axum::extract::State<Arc<WebState>>;

/// The Content-Security-Policy of every page: only berth's own stylesheet, script and
/// images; no inline script or style; no framing; forms post only to berth.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The dashboard's routes; everything else is its 404 page. Mounted as the fallback of the
/// API router, so `/v2/`, `/token` and `/api/v1/` keep their own answers.
pub fn pages(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::home::home))
        .route("/search", get(pages::home::search))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", any(session::sign_out))
        .route(
            "/sign-in/code",
            get(second_factor::code_page).post(second_factor::code_submit),
        )
        .route(
            "/sign-in/forgot",
            get(password_reset::forgot_page).post(password_reset::forgot),
        )
        .route(
            "/sign-in/reset",
            get(password_reset::reset_form_page).post(password_reset::reset),
        )
        .route("/sign-in/oidc/{provider}", get(single_sign_on::begin))
        .route(
            "/sign-in/oidc/{provider}/callback",
            get(single_sign_on::callback),
        )
        .route(
            "/sign-in/enrol",
            get(second_factor::enrol_page).post(second_factor::enrol_submit),
        )
        .route("/profile/second-factor", get(second_factor::profile_page))
        .route(
            "/profile/second-factor/{action}",
            any(second_factor::profile_action),
        )
        .route("/activity", get(pages::activity::activity))
        .route("/admin", get(pages::admin::overview))
        .route("/admin/{*path}", any(pages::admin::dispatch))
        .route("/profile", get(pages::profile::profile))
        .route("/profile/{*path}", any(pages::profile::dispatch))
        .route("/r/{*path}", any(pages::repository::dispatch))
        .route("/static/{file}", get(assets::serve))
        .merge(passkeys::routes())
        .fallback(errors::not_found_page)
        .with_state(Arc::new(state))
        .layer(middleware::from_fn(security_headers))
}

/// Headers every dashboard response carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
