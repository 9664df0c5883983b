//! The token-auth profile (`--profile token`): the harness acts as a Docker token-protocol
//! client. berth issues the tokens for itself and for the official registry, which trusts
//! them through `auth.token` (berth as registry:2's token server), so both registries verify
//! the same kind of bearer token on every request.
//!
//! Tokens are fetched once per scope (a repository with pull, push and delete; the catalog)
//! and cached for the run (berth's token lifetime is set to an hour), as a client would keep
//! them: the workloads then measure what a registry does to check a token on each request,
//! not the token endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use http::HeaderValue;

use crate::client::{Conn, Target};
use crate::{Result, api};

/// The user the harness creates in berth (an administrator: it may do everything).
pub const USER: &str = "bench";
/// Its password (the registries only listen on loopback, for the length of a run).
pub const PASSWORD: &str = "bench-password-not-secret";
/// berth's default `auth.berth.service` and `issuer`, which the official registry is told.
pub const SERVICE: &str = "berth";

/// Bearer tokens from one token endpoint, cached by scope.
pub struct TokenSource {
    endpoint: SocketAddr,
    basic: HeaderValue,
    cache: Mutex<HashMap<String, HeaderValue>>,
}

impl TokenSource {
    /// Tokens from berth's `/token` at `endpoint`, for [`USER`].
    pub fn new(endpoint: SocketAddr) -> TokenSource {
        let credentials = data_encoding::BASE64.encode(format!("{USER}:{PASSWORD}").as_bytes());
        TokenSource {
            endpoint,
            basic: HeaderValue::from_str(&format!("Basic {credentials}"))
                .expect("base64 is a valid header value"),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The `Authorization` value for a request to `path_and_query`.
    /// The administrator's Basic credentials, for the admin API.
    pub fn basic(&self) -> HeaderValue {
        self.basic.clone()
    }

    pub async fn authorization(&self, path_and_query: &str) -> Result<HeaderValue> {
        let scopes = scopes_for(path_and_query);
        let key = scopes.join(" ");
        if let Some(value) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(value.clone());
        }
        // Boxed: fetching sends a request, and sending a request may fetch a token.
        let value = Box::pin(self.fetch(&scopes)).await?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, value.clone());
        Ok(value)
    }

    async fn fetch(&self, scopes: &[String]) -> Result<HeaderValue> {
        let mut path = format!("/token?service={SERVICE}");
        for scope in scopes {
            path.push_str("&scope=");
            path.push_str(scope);
        }
        let mut conn = Conn::connect(&Target::plain(self.endpoint)).await?;
        let json = api::get_json(
            &mut conn,
            &path,
            &[(http::header::AUTHORIZATION, self.basic.clone())],
        )
        .await?;
        let token = json["token"]
            .as_str()
            .ok_or_else(|| format!("GET {path}: no token in {json}"))?;
        Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
    }
}

/// The scopes a client asks for before a request to `path_and_query`: everything on the
/// repository it names (and pull on the repository a mount takes from), the catalog, or
/// nothing (the base endpoint only needs a valid token).
fn scopes_for(path_and_query: &str) -> Vec<String> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    if rest.starts_with("_catalog") {
        return vec!["registry:catalog:*".into()];
    }
    // The last marker ends the name: names may contain `tags` or `blobs` as components,
    // what follows the marker never contains one.
    let name_end = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|marker| rest.rfind(marker))
        .max();
    let Some(name_end) = name_end else {
        return Vec::new();
    };
    let mut scopes = vec![format!("repository:{}:pull,push,delete", &rest[..name_end])];
    if let Some(from) = query.split('&').find_map(|pair| pair.strip_prefix("from=")) {
        scopes.push(format!("repository:{from}:pull"));
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_path() {
        assert_eq!(
            scopes_for("/v2/bench/pull/blobs/sha256:abc"),
            ["repository:bench/pull:pull,push,delete"]
        );
        assert_eq!(
            scopes_for("/v2/cat/r000001/blobs/uploads/?mount=sha256:abc&from=bench/small"),
            [
                "repository:cat/r000001:pull,push,delete",
                "repository:bench/small:pull"
            ]
        );
        assert_eq!(
            scopes_for("/v2/a/manifests/latest"),
            ["repository:a:pull,push,delete"]
        );
        assert_eq!(scopes_for("/v2/_catalog?n=100"), ["registry:catalog:*"]);
        assert_eq!(
            scopes_for("/v2/bench/tags/blobs/uploads/"),
            ["repository:bench/tags:pull,push,delete"]
        );
        assert_eq!(
            scopes_for("/v2/bench/tags/tags/list?n=100"),
            ["repository:bench/tags:pull,push,delete"]
        );
        assert!(scopes_for("/v2/").is_empty());
    }
}
