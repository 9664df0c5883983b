//! The upstream registry, as a client of its `/v2/` API: failover over its URLs, Basic and
//! Docker token authentication (a token per repository scope, cached until it expires),
//! `429 Retry-After` respected, bounded timeouts.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_oci::Digest;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::challenge;
use crate::stats::{CacheStats, Counter};

/// How long connecting to an upstream may take before the next URL is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A token is renewed this long before it expires, so that it never expires in flight.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime of a token whose response does not say (the token specification's default).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

/// A user name and password for the upstream; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// How the upstream's certificate is checked: against the system's roots plus, if given,
/// the CA certificates of a PEM file; or not at all (`insecure`, for tests and labs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure: bool,
}

/// Why the upstream could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No URL could be reached (refused, timed out, TLS failure, broken transfer).
    #[error("{upstream} could not be reached: {cause}")]
    Unreachable { upstream: String, cause: String },
    /// The upstream answered with an error status (5xx, 429, or refused our credentials).
    #[error("{upstream} answered {status}")]
    Status { upstream: String, status: u16 },
    /// The upstream sent something wrong (digest mismatch, oversized or invalid manifest).
    #[error("{upstream} sent invalid content: {why}")]
    Invalid { upstream: String, why: String },
    /// The upstream answered 429: berth does not call it until its `Retry-After` (1 s when
    /// it gave none) has passed.
    #[error("{upstream} asked berth to slow down (429); try again in {retry_after}s")]
    BackingOff { upstream: String, retry_after: u64 },
    /// berth's own cap on requests to the upstream (`ratelimit`) was reached.
    #[error(
        "the requests to {upstream} are capped at {per_second} a second; try again in {retry_after}s"
    )]
    Throttled {
        upstream: String,
        per_second: u32,
        retry_after: u64,
    },
}

/// Which scheme the upstream asked for, learnt from its first `401`.
#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

#[derive(Default)]
struct AuthState {
    scheme: Option<Scheme>,
    /// Tokens by scope, with when they stop being used.
    tokens: HashMap<String, (String, Instant)>,
    /// Until when the upstream asked us (429 Retry-After) not to call.
    blocked_until: Option<Instant>,
}

pub struct Upstream {
    client: reqwest::Client,
    /// berth's cap on requests to the upstream, if any.
    cap: Option<crate::ratecap::RateCap>,
    /// How long the upstream may stay silent (or, for a blob, nearly so); a whole manifest,
    /// HEAD or token request may take twice this.
    timeout: Duration,
    urls: Vec<Url>,
    credentials: Option<Credentials>,
    state: Mutex<AuthState>,
    stats: Arc<CacheStats>,
}

/// A successful upstream answer, and which URL gave it (for logs and errors).
pub struct Answer {
    pub response: Response,
    pub upstream: String,
}

impl Upstream {
    pub fn new(
        urls: Vec<Url>,
        credentials: Option<Credentials>,
        tls: &UpstreamTls,
        timeout: Duration,
        rate_limit: Option<u32>,
        stats: Arc<CacheStats>,
    ) -> Result<Upstream, String> {
        if urls.is_empty() {
            return Err("a remote needs at least one upstream URL".into());
        }
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &tls.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("reading the CA file {}: {e}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("the CA file {}: {e}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!(
                    "the CA file {} holds no PEM certificate",
                    path.display()
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .danger_accept_invalid_certs(tls.insecure)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!(
                "berth/",
                env!("CARGO_PKG_VERSION"),
                " (pull-through cache)"
            ))
            .build()
            .map_err(|e| format!("building the upstream HTTP client: {e}"))?;
        Ok(Upstream {
            client,
            cap: rate_limit.map(crate::ratecap::RateCap::new),
            timeout,
            urls,
            credentials,
            state: Mutex::new(AuthState::default()),
            stats,
        })
    }

    /// The first URL, naming the upstream in messages.
    pub fn describe(&self) -> &str {
        self.urls[0].as_str()
    }

    /// The URLs, in failover order.
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// How long the upstream may stay silent, or send a blob at a crawl (see `flight`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long a whole manifest, HEAD or token request may take.
    fn request_timeout(&self) -> Duration {
        self.timeout * 2
    }

    /// The registries this upstream serves, as containerd's `?ns=` names them: each URL's
    /// host (with its port when not the scheme's default), and `docker.io` for Docker Hub's
    /// registry hosts.
    pub fn mirrored_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        for url in &self.urls {
            let Some(host) = url.host_str() else { continue };
            let host = host.to_ascii_lowercase();
            if matches!(host.as_str(), "registry-1.docker.io" | "index.docker.io") {
                hosts.push("docker.io".to_owned());
            }
            hosts.push(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            });
        }
        hosts.dedup();
        hosts
    }

    /// `HEAD /v2/<name>/manifests/<reference>`: the digest the upstream holds, `None` if it
    /// holds nothing there.
    pub async fn manifest_digest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        let path = format!("{name}/manifests/{reference}");
        let Some(answer) = self
            .request(
                Method::HEAD,
                name,
                &path,
                Some(MANIFEST_ACCEPT),
                Shape::Bounded,
            )
            .await?
        else {
            return Ok(None);
        };
        let digest = answer
            .response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        match digest {
            Some(digest) => Ok(Some(digest)),
            None => Err(UpstreamError::Invalid {
                upstream: answer.upstream,
                why: "a manifest HEAD without a valid Docker-Content-Digest".into(),
            }),
        }
    }

    /// `GET /v2/<name>/manifests/<reference>`, accepting every manifest type berth stores.
    pub async fn manifest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<Option<Answer>, UpstreamError> {
        let path = format!("{name}/manifests/{reference}");
        self.request(
            Method::GET,
            name,
            &path,
            Some(MANIFEST_ACCEPT),
            Shape::Bounded,
        )
        .await
    }

    /// `HEAD /v2/<name>/blobs/<digest>`: the blob's size.
    pub async fn blob_size(
        &self,
        name: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, UpstreamError> {
        let path = format!("{name}/blobs/{digest}");
        let Some(answer) = self
            .request(Method::HEAD, name, &path, None, Shape::Bounded)
            .await?
        else {
            return Ok(None);
        };
        content_length(&answer).map(Some)
    }

    /// `GET /v2/<name>/blobs/<digest>`: the response, whose body the caller streams (no
    /// overall deadline: a large blob takes as long as it takes, but never stalls longer
    /// than the read timeout).
    pub async fn blob(&self, name: &str, digest: &Digest) -> Result<Option<Answer>, UpstreamError> {
        let path = format!("{name}/blobs/{digest}");
        self.request(Method::GET, name, &path, None, Shape::Stream)
            .await
    }

    /// `GET /v2/<name>/blobs/<digest>` with `Range: bytes=<offset>-`: the rest of a blob
    /// whose transfer broke. The caller checks that the answer is that range (`206`).
    pub async fn blob_from(
        &self,
        name: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<Option<Answer>, UpstreamError> {
        let path = format!("{name}/blobs/{digest}");
        self.request(Method::GET, name, &path, None, Shape::From(offset))
            .await
    }

    /// One request (see `try_urls`); a failure of the upstream is remembered for the
    /// admin API.
    async fn request(
        &self,
        method: Method,
        name: &str,
        path: &str,
        accept: Option<&str>,
        shape: Shape,
    ) -> Result<Option<Answer>, UpstreamError> {
        let answer = self.try_urls(method, name, path, accept, shape).await;
        if let Err(e) = &answer
            && !matches!(
                e,
                UpstreamError::Throttled { .. } | UpstreamError::BackingOff { .. }
            )
        {
            self.stats.note_error(e.to_string());
        }
        answer
    }

    /// One request, tried on each URL in order until one answers. A 404 is `None`; 5xx,
    /// 429 and unreachable URLs move on to the next; other statuses are final.
    async fn try_urls(
        &self,
        method: Method,
        name: &str,
        path: &str,
        accept: Option<&str>,
        shape: Shape,
    ) -> Result<Option<Answer>, UpstreamError> {
        if let Some(error) = self.backing_off() {
            return Err(error);
        }
        if let Some(cap) = &self.cap {
            cap.admit()
                .await
                .map_err(|retry_after| UpstreamError::Throttled {
                    upstream: self.describe().to_string(),
                    per_second: cap.per_second(),
                    retry_after,
                })?;
        }
        let scope = format!("repository:{name}:pull");
        let mut last = None;
        for base in &self.urls {
            let upstream = base.as_str().trim_end_matches('/').to_string();
            let url = format!("{upstream}/v2/{path}");
            let response = match self
                .send_authorized(&method, &url, &scope, accept, shape)
                .await
            {
                Ok(response) => response,
                Err(cause) => {
                    tracing::warn!(%upstream, %cause, "upstream unreachable");
                    last = Some(UpstreamError::Unreachable { upstream, cause });
                    continue;
                }
            };
            self.note_rate_limit(response.headers());
            let status = response.status();
            if status.is_success() {
                return Ok(Some(Answer { response, upstream }));
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.note_retry_after(response.headers());
            }
            let error = UpstreamError::Status {
                upstream: upstream.clone(),
                status: status.as_u16(),
            };
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                tracing::warn!(%upstream, %status, "upstream failed");
                last = Some(error);
                continue;
            }
            return Err(error);
        }
        let last = last.expect("at least one URL");
        if matches!(last, UpstreamError::Status { status: 429, .. })
            && let Some(error) = self.backing_off()
        {
            return Err(error);
        }
        Err(last)
    }

    /// While a 429's `Retry-After` lasts: the error that says for how much longer.
    fn backing_off(&self) -> Option<UpstreamError> {
        let left = self
            .lock()
            .blocked_until?
            .checked_duration_since(Instant::now())?;
        Some(UpstreamError::BackingOff {
            upstream: self.describe().to_string(),
            retry_after: left.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    /// Sends with what the upstream is known to want; on a `401`, learns its challenge
    /// and sends once more.
    async fn send_authorized(
        &self,
        method: &Method,
        url: &str,
        scope: &str,
        accept: Option<&str>,
        shape: Shape,
    ) -> Result<Response, String> {
        let mut retried = false;
        loop {
            let authorization = self.authorization(scope).await?;
            let mut request = self.client.request(method.clone(), url);
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            match shape {
                Shape::Bounded => request = request.timeout(self.request_timeout()),
                Shape::Stream => {}
                Shape::From(offset) => {
                    request = request.header(header::RANGE, format!("bytes={offset}-"));
                }
            }
            self.stats.add(Counter::UpstreamRequest, 1);
            let response = request.send().await.map_err(describe_error)?;
            if response.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(response);
            }
            let learnt = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(challenge::parse)
                .find_map(|c| scheme_of(&c));
            match learnt {
                Some(scheme) => {
                    let mut state = self.lock();
                    state.scheme = Some(scheme);
                    state.tokens.clear();
                }
                None => return Ok(response),
            }
            retried = true;
        }
    }

    /// The `Authorization` value for a request in `scope`: Basic credentials, or a token
    /// (fetched if none is cached for the scope), or nothing before the upstream asked.
    async fn authorization(&self, scope: &str) -> Result<Option<String>, String> {
        let scheme = {
            let state = self.lock();
            if let Some((token, until)) = state.tokens.get(scope)
                && Instant::now() < *until
            {
                return Ok(Some(format!("Bearer {token}")));
            }
            state.scheme.clone()
        };
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(self.credentials.as_ref().map(basic)),
            Some(Scheme::Bearer { realm, service }) => {
                let (token, lifetime) = self.fetch_token(&realm, service.as_deref(), scope).await?;
                let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
                self.lock()
                    .tokens
                    .insert(scope.to_string(), (token.clone(), until));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// The Docker token protocol: `GET realm?service=...&scope=...`, with Basic
    /// credentials when configured (anonymous otherwise).
    async fn fetch_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), String> {
        let mut url = realm.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.client.get(url).timeout(self.request_timeout());
        if let Some(credentials) = &self.credentials {
            request = request.header(header::AUTHORIZATION, basic(credentials));
        }
        self.stats.add(Counter::UpstreamRequest, 1);
        let response = request.send().await.map_err(describe_error)?;
        if !response.status().is_success() {
            return Err(format!(
                "the token service {realm} answered {}",
                response.status()
            ));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| format!("the token service {realm} sent an unreadable answer: {e}"))?;
        let token = body
            .token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("the token service {realm} sent no token"))?;
        let lifetime = body.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok((token, Duration::from_secs(lifetime)))
    }

    fn note_rate_limit(&self, headers: &HeaderMap) {
        // Docker Hub: `ratelimit-remaining: 76;w=21600`.
        if let Some(remaining) = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            self.stats.set_rate_limit_remaining(remaining);
        }
    }

    fn note_retry_after(&self, headers: &HeaderMap) {
        let seconds = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .min(3600);
        self.lock().blocked_until = Some(Instant::now() + Duration::from_secs(seconds));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What kind of request: bounded in time (manifests, HEADs), or a blob's body that takes
/// as long as it takes while it keeps coming, from the start or from an offset.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Bounded,
    Stream,
    From(u64),
}

/// Every manifest type berth stores, so that the cache holds what any client may ask for
/// (each client's own `Accept` is applied when the cached manifest is served).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.artifact.manifest.v1+json";

fn scheme_of(challenge: &challenge::Challenge) -> Option<Scheme> {
    match challenge.scheme.as_str() {
        "basic" => Some(Scheme::Basic),
        "bearer" => Some(Scheme::Bearer {
            realm: Url::parse(challenge.param("realm")?).ok()?,
            service: challenge.param("service").map(str::to_string),
        }),
        _ => None,
    }
}

fn basic(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", data_encoding::BASE64.encode(pair.as_bytes()))
}

/// The size an answer declares; a blob without one cannot be served with a length.
pub fn content_length(answer: &Answer) -> Result<u64, UpstreamError> {
    answer
        .response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| UpstreamError::Invalid {
            upstream: answer.upstream.clone(),
            why: "a blob response without Content-Length".into(),
        })
}

/// A transport error's text with its causes (reqwest's own message is terse).
pub fn describe_error(error: reqwest::Error) -> String {
    if error.is_redirect() {
        return "it redirected in a loop (or more than 10 times)".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
