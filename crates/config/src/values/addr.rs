//! Addresses written with registry:2's syntax: the listen address and the public URL.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::schema::parsed_value;

/// The address the registry listens on, written as registry:2's `http.addr`: `:5000` (all
/// interfaces), `127.0.0.1:5000`, `[::1]:5000` or `localhost:5000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    written: String,
    addr: SocketAddr,
}

impl ListenAddr {
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

impl Default for ListenAddr {
    fn default() -> Self {
        ":5000"
            .parse()
            .expect("the default listen address is valid")
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid listen address {s:?}: {why}");
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected HOST:PORT or :PORT, e.g. \":5000\""))?;
        // u16::from_str accepts a leading '+', which no address syntax allows.
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the port must be a number from 0 to 65535"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
        let ip: IpAddr = if host.is_empty() {
            Ipv4Addr::UNSPECIFIED.into()
        } else if host.eq_ignore_ascii_case("localhost") {
            // Resolving through the system could yield ::1 or several addresses; registry:2
            // users mean the IPv4 loopback.
            Ipv4Addr::LOCALHOST.into()
        } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<Ipv6Addr>()
                .map_err(|_| invalid("not an IPv6 address between the brackets"))?
                .into()
        } else if host.contains(':') {
            return Err(invalid(
                "write IPv6 addresses in brackets, e.g. \"[::1]:5000\"",
            ));
        } else {
            host.parse::<Ipv4Addr>()
                .map_err(|_| invalid("the host must be an IP address or localhost"))?
                .into()
        };
        Ok(ListenAddr {
            written: s.to_owned(),
            addr: SocketAddr::new(ip, port),
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

parsed_value!(ListenAddr, "a listen address such as \":5000\"");

/// The registry's public base URL (registry:2's `http.host`), used for the URLs it returns
/// when the request's own Host is not what clients should use. Stored without a trailing
/// slash so that paths can be appended directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let url = http_url(s, "")?;
        let invalid = |why: &str| format!("invalid URL {s:?}: {why}");
        if url.query().is_some() {
            return Err(invalid("must not have a query"));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

parsed_value!(PublicUrl, "an absolute http(s) URL");

/// An absolute http(s) URL with a host and without credentials; `credentials` says where
/// they go instead.
fn http_url(s: &str, credentials: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    let invalid = |why: &str| format!("invalid URL {s:?}: {why}");
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(&format!(
            "must not contain a user name or password{credentials}"
        )));
    }
    Ok(url)
}

/// Where a notification or webhook endpoint receives events: an absolute http(s) URL with
/// a host, a query if the receiver wants one, and no credentials (URLs are logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl FromStr for EndpointUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let url = http_url(
            s,
            " (URLs are logged); send credentials in headers, e.g. Authorization",
        )?;
        if url.fragment().is_some() {
            return Err(format!(
                "invalid URL {s:?}: must not have a fragment (it is never sent)"
            ));
        }
        Ok(EndpointUrl(url))
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(EndpointUrl, "an absolute http(s) URL");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let cases: &[(&str, &str)] = &[
            (":5000", "0.0.0.0:5000"),
            (":0", "0.0.0.0:0"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("[::1]:5000", "[::1]:5000"),
            ("[::]:5000", "[::]:5000"),
            ("localhost:5000", "127.0.0.1:5000"),
            ("LOCALHOST:1", "127.0.0.1:1"),
        ];
        for (written, want) in cases {
            let addr: ListenAddr = written.parse().unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(addr.socket_addr().to_string(), *want, "{written}");
            assert_eq!(addr.to_string(), *written);
        }
        assert!(
            "localhost:5000"
                .parse::<ListenAddr>()
                .unwrap()
                .is_loopback()
        );
        assert!("[::1]:5000".parse::<ListenAddr>().unwrap().is_loopback());
        assert!(!":5000".parse::<ListenAddr>().unwrap().is_loopback());
        assert_eq!(ListenAddr::default().to_string(), ":5000");
    }

    #[test]
    fn bad_listen_addresses() {
        let cases: &[(&str, &str)] = &[
            ("abc", "expected HOST:PORT"),
            ("5000", "expected HOST:PORT"),
            (":", "port must be a number"),
            (":+5000", "port must be a number"),
            (":65536", "port must be a number"),
            ("example.com:5000", "IP address or localhost"),
            ("::1:5000", "brackets"),
            ("[::g]:5000", "IPv6"),
            ("256.0.0.1:5000", "IP address or localhost"),
        ];
        for (written, want) in cases {
            let err = written.parse::<ListenAddr>().unwrap_err();
            assert!(
                err.starts_with(&format!("invalid listen address {written:?}")),
                "{err}"
            );
            assert!(err.contains(want), "{written}: {err}");
        }
    }

    #[test]
    fn endpoint_urls() {
        let url: EndpointUrl = "https://hooks.example.com/in?token=x".parse().unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.com/in?token=x");
        let url: EndpointUrl = "http://10.0.0.7:8080".parse().unwrap();
        assert_eq!(url.to_string(), "http://10.0.0.7:8080/");
        let bad: &[(&str, &str)] = &[
            ("hooks.example.com/in", "relative URL"),
            ("ftp://example.com/in", "http:// or https://"),
            ("https://u:p@example.com/in", "send credentials in headers"),
            ("https://example.com/in#x", "fragment"),
        ];
        for (written, want) in bad {
            let err = written.parse::<EndpointUrl>().unwrap_err();
            assert!(err.contains(want), "{written}: {err}");
        }
    }

    #[test]
    fn public_urls() {
        let cases: &[(&str, &str)] = &[
            (
                "https://registry.example.com",
                "https://registry.example.com",
            ),
            (
                "https://registry.example.com/",
                "https://registry.example.com",
            ),
            (
                "https://example.com/registry/",
                "https://example.com/registry",
            ),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("HTTPS://Example.COM:443/x", "https://example.com/x"),
        ];
        for (written, want) in cases {
            let url: PublicUrl = written.parse().unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(url.as_str(), *want);
        }
        let bad: &[(&str, &str)] = &[
            ("registry.example.com", "relative URL"),
            ("ftp://example.com", "http:// or https://"),
            ("https://user:pw@example.com", "user name or password"),
            ("https://example.com/?a=b", "query"),
            ("https://example.com/#top", "fragment"),
            ("", "invalid URL"),
        ];
        for (written, want) in bad {
            let err = written.parse::<PublicUrl>().unwrap_err();
            assert!(err.contains(want), "{written}: {err}");
        }
    }
}
