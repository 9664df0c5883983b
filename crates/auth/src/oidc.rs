//! OpenID Connect sign-in (`auth.berth.oidc`) with the `openidconnect` crate: discovery
//! (cached five minutes, so a provider's key rotation is followed), the authorization code
//! flow with PKCE (S256), `state` and `nonce`; the ID token's signature, issuer, audience,
//! expiry and nonce are checked before any claim is read. The dashboard keeps `state`, `nonce`
//! and the PKCE verifier on the server (`SsoRequest`), never in the browser.
//!
//! HTTP goes through berth's own `reqwest` client, which follows no redirect (the provider's
//! endpoints are taken from its discovery document only) and is bounded by `timeout`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreClient, CoreIdToken, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, TokenResponse,
};
use serde_json::Value;

use crate::external::{ExternalUser, GroupMapping};

/// A client made from a discovery document: its authorization endpoint is known, its token
/// and userinfo endpoints may be.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long a discovery document (and its keys) is used before it is fetched again.
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The most a provider's answer may hold.
const MAX_RESPONSE: usize = 1 << 20;

/// A provider as configured.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Its name in berth's URLs (`/sign-in/oidc/<name>`).
    pub name: String,
    /// What the button says: "Sign in with <title>".
    pub title: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub email_claim: String,
    pub display_name_claim: String,
    pub groups_claim: Option<String>,
    pub mapping: GroupMapping,
    /// PEM CA certificates for the provider's HTTPS; `None`: the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// Why a sign-in through a provider failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be reached or answers nonsense (503); the text is for the log.
    #[error("{0}")]
    Unavailable(String),
    /// The sign-in is refused: what the person is told, and the audit log records.
    #[error("{0}")]
    Refused(String),
}

/// Where to send the browser, and what to keep on the server until the callback.
#[derive(Debug, Clone)]
pub struct Begun {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

pub struct OidcProvider {
    settings: OidcSettings,
    http: Http,
    discovered: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("name", &self.settings.name)
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// `openidconnect`'s HTTP client: berth's `reqwest` client (owned, so that the futures it
/// makes are `Send` for any borrow).
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// One HTTP exchange for `openidconnect`.
async fn send(
    http: &reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let mut answer = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE as u64)
    {
        return Err(HttpError("the provider's answer is too large".into()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    if body.len() > MAX_RESPONSE {
        return Err(HttpError("the provider's answer is too large".into()));
    }
    answer
        .body(body.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

impl OidcProvider {
    /// Checks the settings; nothing is contacted yet.
    pub fn new(settings: OidcSettings) -> Result<OidcProvider, String> {
        IssuerUrl::new(settings.issuer.clone()).map_err(|e| format!("issuer: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout);
        if let Some(pem) = &settings.ca_pem {
            for certificate in
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("cafile: {e}"))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| e.to_string())?;
        Ok(OidcProvider {
            settings,
            http: Http(http),
            discovered: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn title(&self) -> &str {
        &self.settings.title
    }

    pub fn mapping(&self) -> &GroupMapping {
        &self.settings.mapping
    }

    /// `source` of this provider's users: `oidc:<name>`.
    pub fn source(&self) -> String {
        format!("oidc:{}", self.settings.name)
    }

    /// The provider's discovery document and keys, fetched at most every five minutes.
    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        {
            let cached = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((metadata, at)) = cached.as_ref()
                && at.elapsed() < DISCOVERY_LIFETIME
            {
                return Ok(metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Unavailable(format!("issuer: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(format!("discovery: {}", chain(&e))))?;
        *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// berth's client at the provider, as discovered, coming back to `redirect`.
    async fn client(&self, redirect: &str) -> Result<DiscoveredClient, OidcError> {
        let metadata = self.metadata().await?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect.to_string())
                .map_err(|e| OidcError::Unavailable(format!("redirect URL: {e}")))?,
        ))
    }

    /// Starts a sign-in: the provider's authorization URL, with a fresh state, nonce and
    /// PKCE challenge whose verifier the caller keeps.
    pub async fn begin(&self, redirect: &str) -> Result<Begun, OidcError> {
        let client = self.client(redirect).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Begun {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges `code` (with the PKCE verifier), checks the ID token
    /// (signature, issuer, audience, expiry, `nonce`) and reads the user from its claims.
    pub async fn finish(
        &self,
        redirect: &str,
        code: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<ExternalUser, OidcError> {
        let client = self.client(redirect).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Unavailable(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(answer) => OidcError::Refused(format!(
                    "the provider refused the sign-in: {}",
                    answer.error()
                )),
                RequestTokenError::Parse(e, _) => {
                    OidcError::Refused(format!("the provider's token response is invalid: {e}"))
                }
                other => OidcError::Unavailable(format!("token endpoint: {}", chain(&other))),
            })?;
        let token = response
            .id_token()
            .ok_or_else(|| OidcError::Refused("the provider's answer holds no ID token".into()))?;
        let claims = verified_claims(
            &token.to_string(),
            &client.id_token_verifier(),
            &Nonce::new(nonce.to_string()),
        )?;
        self.user_from(&claims)
    }

    /// The user an ID token's verified claims describe.
    fn user_from(&self, claims: &Value) -> Result<ExternalUser, OidcError> {
        let s = &self.settings;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let subject =
            text("sub").ok_or_else(|| OidcError::Refused("the ID token has no subject".into()))?;
        let login = text(&s.username_claim).ok_or_else(|| {
            OidcError::Refused(format!(
                "the ID token has no {:?} claim to name the user",
                s.username_claim
            ))
        })?;
        // An address the provider says it has not verified is not taken.
        let email = text(&s.email_claim)
            .filter(|_| claims.get("email_verified").and_then(Value::as_bool) != Some(false));
        let groups = match s.groups_claim.as_deref().and_then(|name| claims.get(name)) {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(ExternalUser {
            source: self.source(),
            subject,
            login,
            email,
            display_name: text(&s.display_name_claim),
            groups,
        })
    }
}

/// An error with its causes, for the log.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks an ID token (signature with the provider's keys, issuer, audience, expiry, nonce)
/// and returns its claims as JSON. Unsigned tokens (`alg: none`) are refused.
pub fn verified_claims(
    raw: &str,
    verifier: &openidconnect::IdTokenVerifier<openidconnect::core::CoreJsonWebKey>,
    nonce: &Nonce,
) -> Result<Value, OidcError> {
    let token: CoreIdToken = raw
        .parse()
        .map_err(|e| OidcError::Refused(format!("the ID token is malformed: {e}")))?;
    token
        .claims(verifier, nonce)
        .map_err(|e| OidcError::Refused(format!("the ID token is not valid: {}", chain(&e))))?;
    // Verified: its payload can be read as it is (any claim, by its configured name).
    let payload = raw
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::Refused("the ID token is malformed".into()))?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .map_err(|_| OidcError::Refused("the ID token is malformed".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| OidcError::Refused("the ID token's claims are not JSON".into()))
}

#[cfg(test)]
mod tests {
    //! ID tokens a real provider would not send, checked by [`verified_claims`]: signed with
    //! the client secret (HS256) so that the test can forge each flaw.

    use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
    use openidconnect::{ClientId, ClientSecret, IdTokenVerifier};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "the client secret of berth at the provider";
    const ISSUER: &str = "https://sso.example.com";

    fn verifier() -> IdTokenVerifier<'static, openidconnect::core::CoreJsonWebKey> {
        IdTokenVerifier::new_confidential_client(
            ClientId::new("berth".into()),
            ClientSecret::new(SECRET.into()),
            IssuerUrl::new(ISSUER.into()).unwrap(),
            CoreJsonWebKeySet::new(Vec::new()),
        )
        .set_allowed_algs([CoreJwsSigningAlgorithm::HmacSha256])
    }

    fn now() -> i64 {
        berth_meta::now_millis() / 1000
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": "berth",
            "sub": "user-1",
            "preferred_username": "dana",
            "groups": ["ops"],
            "nonce": "the-nonce",
            "iat": now(),
            "exp": now() + 300,
        })
    }

    fn signed(claims: &Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn check(token: &str) -> Result<Value, OidcError> {
        verified_claims(token, &verifier(), &Nonce::new("the-nonce".into()))
    }

    fn refused(token: &str, what: &str) {
        match check(token) {
            Err(OidcError::Refused(why)) => {
                assert!(why.contains("ID token"), "{what}: {why}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }

    #[test]
    fn a_valid_id_token_gives_its_claims() {
        let claims = check(&signed(&claims(), SECRET)).unwrap();
        assert_eq!(claims["preferred_username"], "dana");
        assert_eq!(claims["groups"], json!(["ops"]));
    }

    #[test]
    fn wrong_nonce_issuer_audience_expiry_signature_or_none_are_refused() {
        let with = |key: &str, value: Value| {
            let mut claims = claims();
            claims[key] = value;
            signed(&claims, SECRET)
        };
        refused(&with("nonce", json!("another-nonce")), "wrong nonce");
        refused(
            &with("iss", json!("https://evil.example.com")),
            "wrong issuer",
        );
        refused(&with("aud", json!("another-client")), "wrong audience");
        refused(&with("exp", json!(now() - 3600)), "expired");
        refused(
            &signed(&claims(), "another secret"),
            "another key's signature",
        );
        let b64 = |v: &Value| data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes());
        let unsigned = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
        refused(&unsigned, "unsigned (alg none)");
        refused("not a token", "malformed");
    }
}
