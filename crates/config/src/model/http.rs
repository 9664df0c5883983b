//! `http`: the HTTP server.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::headers::check_headers;
use crate::schema::{Problems, ignored, join, net, parsed_value, section, unsupported};
use crate::values::{ListenAddr, PublicUrl};

section! {
    #[derive(Clone, PartialEq)]
    pub struct HttpConfig {
        addr: ListenAddr, "address to listen on; \":5000\" means all interfaces";
        host: Option<PublicUrl>,
            "public base URL for the URLs berth returns; unset uses each request's Host";
        relativeurls: bool, "return relative URLs in Location headers";
        tls: Option<TlsConfig>, "serve HTTPS with this certificate; plain HTTP when unset";
        /// How long a graceful shutdown waits for requests in flight.
        draintimeout: Duration = Duration::from_secs(30),
            "how long shutdown waits for requests in flight";
        /// berth's own key.
        trustedproxies: Vec<IpNet>,
            "peers whose X-Forwarded-Proto and X-Forwarded-Host are honoured";
        /// registry:2's `http.headers`.
        headers: BTreeMap<String, Vec<String>>, "extra headers added to every response";
        /// berth's own key.
        maxconnections: Option<u64>,
            "connections served at once; unset: what the open-file limit allows (at most 10000)";
        /// registry:2's `http.debug`: a second listener, for metrics.
        debug: DebugConfig, "a separate listener for metrics (registry:2's debug server)";
    }
    validate = HttpConfig::validate;
    registry2 = [
        net("net", "berth always listens on TCP"),
        unsupported("prefix", "berth serves the registry API at /v2/ only"),
        ignored(
            "secret",
            "berth keeps upload state in its database, so there is nothing to sign",
        ),
        ignored("http2", "berth does not make HTTP/2 configurable"),
    ];
}

impl HttpConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        check_headers(&join(path, "headers"), &self.headers, problems);
        if self.maxconnections == Some(0) {
            problems.add(
                join(path, "maxconnections"),
                "must be at least 1 (it is how many connections berth serves at once)",
            );
        }
        if let Some(debug) = &self.debug.addr
            && shares_port(debug, &self.addr)
        {
            problems.add(
                join(path, "debug.addr"),
                format!(
                    "{debug} takes the port of http.addr ({}); the debug listener needs a port of its own",
                    self.addr
                ),
            );
        }
    }
}

/// Whether two listeners would ask for the same port (port 0 picks a free one each time).
fn shares_port(a: &ListenAddr, b: &ListenAddr) -> bool {
    let (a, b) = (a.socket_addr(), b.socket_addr());
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

section! {
    /// registry:2's `http.debug`: a second listener, kept off the public one, that serves
    /// metrics. Unlike registry:2's it serves no profiling or `/debug/vars`.
    #[derive(Clone, PartialEq)]
    pub struct DebugConfig {
        addr: Option<ListenAddr>,
            "address of the debug listener, e.g. \"localhost:5001\"; unset: no debug listener";
        prometheus: PrometheusConfig, "Prometheus metrics on the debug listener";
    }
}

section! {
    #[derive(Clone, PartialEq)]
    pub struct PrometheusConfig {
        enabled: bool, "serve Prometheus metrics on the debug listener";
        path: String = "/metrics".to_owned(), "the path of the metrics on the debug listener";
    }
    validate = PrometheusConfig::validate;
}

impl PrometheusConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        let valid = self.path.starts_with('/')
            && !self
                .path
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
        if !valid {
            problems.add(
                join(path, "path"),
                format!(
                    "invalid path {:?}: expected an absolute URL path such as /metrics",
                    self.path
                ),
            );
        }
    }
}

section! {
    /// Serve HTTPS. Both paths are required; an empty path means "not given" and is rejected
    /// by validation, which names the missing key.
    #[derive(Clone, PartialEq)]
    pub struct TlsConfig {
        certificate: PathBuf, "PEM certificate chain file to serve HTTPS with";
        key: PathBuf, "PEM private key file of the certificate";
        minimumtls: Option<TlsVersion>, "lowest TLS version accepted: tls1.2 or tls1.3";
    }
    validate = TlsConfig::validate;
    registry2 = [
        unsupported("clientcas", "berth cannot verify client certificates"),
        unsupported(
            "letsencrypt",
            "obtain the certificate elsewhere (e.g. certbot, cert-manager) and set certificate and key",
        ),
        unsupported("ciphersuites", "berth uses the TLS library's default cipher suites"),
    ];
}

impl TlsConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        // File existence is checked when the server starts: the files may be mounted after
        // the configuration is checked.
        if self.certificate.as_os_str().is_empty() {
            problems.add(join(path, "certificate"), "required when http.tls is set");
        }
        if self.key.as_os_str().is_empty() {
            problems.add(join(path, "key"), "required when http.tls is set");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        }
    }
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tls1.2" => Ok(TlsVersion::Tls12),
            "tls1.3" => Ok(TlsVersion::Tls13),
            "tls1.0" | "tls1.1" => Err(format!(
                "{s} is not supported: berth accepts TLS 1.2 and 1.3 only; use tls1.2 or tls1.3"
            )),
            _ => Err(format!(
                "invalid TLS version {s:?}: expected tls1.2 or tls1.3"
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(TlsVersion, "a TLS version");
