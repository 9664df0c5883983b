//! Building the URLs berth hands to clients in `Location` and `Link` headers.
//!
//! Behind a TLS-terminating reverse proxy the request berth sees is plain HTTP to some
//! internal address, while the client must be sent to the public `https://` name. In order
//! of preference berth uses: the configured public URL (`http.host`); relative URLs when
//! configured (`http.relativeurls`), which every current client resolves against the URL it
//! requested; otherwise the request's own `Host`, with the scheme and host from
//! `X-Forwarded-Proto`/`X-Forwarded-Host` only if the connection comes from a trusted proxy.
//! Forwarded headers from anyone else are ignored: honouring them would let any client make
//! berth send other clients' uploads to a host of its choosing.

use std::net::IpAddr;

use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;

/// Facts about the connection a request arrived on, attached by the server loop.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionInfo {
    pub peer: std::net::SocketAddr,
    pub tls: bool,
}

#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    /// `http.host`, without a trailing slash.
    pub public_base: Option<String>,
    pub relative: bool,
    pub trusted_proxies: Vec<IpNet>,
}

impl UrlPolicy {
    fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    /// The absolute base (`https://host[:port]`) for this request, or "" for relative URLs.
    pub fn base(&self, parts: &Parts) -> String {
        if self.relative && self.public_base.is_none() {
            return String::new();
        }
        self.absolute_base(parts)
    }

    /// The absolute base even when relative URLs are configured, for what must be absolute
    /// (the token endpoint in a `WWW-Authenticate` challenge). "" only when the request has
    /// no usable host.
    pub fn absolute_base(&self, parts: &Parts) -> String {
        if let Some(base) = &self.public_base {
            return base.clone();
        }
        let connection = parts.extensions.get::<ConnectionInfo>();
        let own_scheme = if connection.is_some_and(|c| c.tls) {
            "https"
        } else {
            "http"
        };
        let trusted = connection.is_some_and(|c| self.is_trusted(c.peer.ip()));
        let headers = &parts.headers;
        let forwarded = |name: &str| trusted.then(|| first_value(headers, name)).flatten();
        let scheme = match forwarded("x-forwarded-proto") {
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
            _ => own_scheme,
        };
        let host = forwarded("x-forwarded-host")
            .or_else(|| first_value(headers, "host"))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .filter(|h| is_valid_host(h));
        match host {
            Some(host) => format!("{scheme}://{host}"),
            // No usable host: a relative URL is still correct for the client.
            None => String::new(),
        }
    }

    /// An absolute (or relative, see [`UrlPolicy::base`]) URL for `path`.
    pub fn url(&self, parts: &Parts, path: &str) -> String {
        format!("{}{path}", self.base(parts))
    }
}

/// The first comma-separated value of a header (proxies append to `X-Forwarded-*` lists).
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .split(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A host with an optional port, nothing that could smuggle a path or a second header.
fn is_valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], peer: &str, tls: bool) -> Parts {
        let mut builder = http::Request::builder().uri("/v2/");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectionInfo {
            peer: peer.parse().unwrap(),
            tls,
        });
        parts
    }

    #[test]
    fn configured_host_wins() {
        let policy = UrlPolicy {
            public_base: Some("https://registry.example.com".into()),
            ..Default::default()
        };
        let p = parts(
            &[("host", "internal:5000"), ("x-forwarded-host", "evil.com")],
            "10.0.0.1:1",
            false,
        );
        assert_eq!(policy.url(&p, "/v2/a"), "https://registry.example.com/v2/a");
    }

    #[test]
    fn relative_urls() {
        let policy = UrlPolicy {
            relative: true,
            ..Default::default()
        };
        assert_eq!(
            policy.url(&parts(&[("host", "x")], "1.2.3.4:1", false), "/v2/a"),
            "/v2/a"
        );
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let policy = UrlPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        };
        let headers = [
            ("host", "berth:5000"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "registry.example.com, proxy2"),
        ];
        assert_eq!(
            policy.url(&parts(&headers, "10.1.2.3:4000", false), "/v2/a"),
            "https://registry.example.com/v2/a"
        );
        assert_eq!(
            policy.url(&parts(&headers, "192.168.1.1:4000", false), "/v2/a"),
            "http://berth:5000/v2/a"
        );
        assert_eq!(
            policy.url(&parts(&headers, "192.168.1.1:4000", true), "/v2/a"),
            "https://berth:5000/v2/a"
        );
    }

    #[test]
    fn hostile_hosts_fall_back_to_relative() {
        let policy = UrlPolicy::default();
        let p = parts(&[("host", "evil.com/phish?x=")], "1.2.3.4:1", false);
        assert_eq!(policy.url(&p, "/v2/a"), "/v2/a");
    }
}
