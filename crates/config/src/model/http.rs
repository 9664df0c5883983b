//! `http`: the HTTP server.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::schema::{Problems, ignored, net, parsed_value, section, unsupported};
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
    }
    validate = HttpConfig::validate;
    registry2 = [
        net("net", "berth always listens on TCP"),
        unsupported("prefix", "berth serves the registry API at /v2/ only"),
        ignored(
            "secret",
            "berth keeps upload state in its database, so there is nothing to sign",
        ),
        ignored("debug", "berth has no debug server; metrics will come later"),
        ignored("http2", "berth does not make HTTP/2 configurable"),
    ];
}

impl HttpConfig {
    fn validate(&self, problems: &mut Problems) {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, values) in &self.headers {
            let path = format!("http.headers.{name}");
            if let Err(why) = check_header(name, values) {
                problems.add(path, why);
            } else if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
                problems.add(
                    path,
                    format!("duplicate of header {first}; header names ignore case"),
                );
            }
        }
    }
}

/// Response headers the server itself must control: a fixed value would corrupt framing.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn check_header(name: &str, values: &[String]) -> Result<(), String> {
    // Checked with the http crate so that whatever passes here converts without error
    // when the server builds its responses.
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(format!(
            "{name} is set by the server and cannot be configured"
        ));
    }
    if values.is_empty() {
        return Err("needs at least one value".into());
    }
    for value in values {
        http::HeaderValue::from_str(value).map_err(|_| {
            format!(
                "invalid header value {value:?}: only visible ASCII, spaces and tabs are allowed"
            )
        })?;
    }
    Ok(())
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
    fn validate(&self, problems: &mut Problems) {
        // File existence is checked when the server starts: the files may be mounted after
        // the configuration is checked.
        if self.certificate.as_os_str().is_empty() {
            problems.add("http.tls.certificate", "required when http.tls is set");
        }
        if self.key.as_os_str().is_empty() {
            problems.add("http.tls.key", "required when http.tls is set");
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
