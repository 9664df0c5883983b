//! Value types written with registry:2's syntax, and the serde glue that parses them.
//!
//! Each type parses from a string with `FromStr` (the error says what was wrong and what is
//! expected) so that file values and environment values go through the same code.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, "a listen address such as \":5000\"")
    }
}

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
        let url = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        let invalid = |why: &str| format!("invalid URL {s:?}: {why}");
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be an http:// or https:// URL"));
        }
        if url.host().is_none() {
            return Err(invalid("has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not contain a user name or password"));
        }
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

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, "an absolute http(s) URL")
    }
}

/// Go's duration units, as registry:2 accepts them.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 MICRO SIGN
    ("μs", 1_000), // U+03BC GREEK SMALL LETTER MU
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration in Go's syntax (`"168h"`, `"1h30m"`, `"1.5h"`, `"500ms"`).
///
/// Written here rather than taken from humantime because humantime also accepts what Go
/// rejects (`"1 hour"`, `"2d"`, `"1M"` for months), and a registry:2 config must mean the
/// same thing in both. Negative and unit-less values are rejected, except `"0"`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {s:?}: {why}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    if rest.is_empty() {
        return Err(invalid("expected a number and a unit, e.g. \"10s\""));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (int, after) = split_digits(rest);
        let (frac, after) = match after.strip_prefix('.') {
            Some(after) => split_digits(after),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid("expected a number and a unit, e.g. \"10s\""));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid(
                "missing unit; use ns, us, ms, s, m or h (only \"0\" needs none)",
            ));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| invalid(&format!("unknown unit {unit:?}; use ns, us, ms, s, m or h")))?;
        let too_large = || invalid("too large");
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_large())?
        };
        let mut nanos = int.checked_mul(scale).ok_or_else(too_large)?;
        if !frac.is_empty() {
            // Digits past the 20th cannot change the result by a nanosecond for any unit here,
            // and keeping at most 20 keeps the arithmetic inside u128.
            let digits = &frac[..frac.len().min(20)];
            let numerator: u128 = digits.parse().map_err(|_| too_large())?;
            nanos += numerator * scale / 10u128.pow(digits.len() as u32);
        }
        total = total.checked_add(nanos).ok_or_else(too_large)?;
        // Go's time.Duration is an i64 of nanoseconds (about 292 years).
        if total > i64::MAX as u128 {
            return Err(too_large());
        }
        rest = after;
    }
    Ok(Duration::from_nanos(total as u64))
}

fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

/// Formats a duration in the syntax [`parse_duration`] reads, largest unit first: `"168h"`,
/// `"1h30m"`, `"1s500ms"`, `"0s"`.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let mut nanos = d.as_nanos();
    let mut out = String::new();
    for (unit, scale) in [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        let count = nanos / scale;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            nanos %= scale;
        }
    }
    out
}

/// Parses a boolean from an environment variable: true/false in any case, or 1/0.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// Parses a trusted proxy: a CIDR, or a bare IP address meaning that single host.
pub(crate) fn parse_proxy(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "invalid trusted proxy {s:?}: expected an IP address or a CIDR such as 10.0.0.0/8"
            )
        })
}

/// Deserializes any `FromStr` type from a string, reporting `expecting` on a wrong type.
pub(crate) fn parsed<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    struct Parsed<T>(&'static str, PhantomData<T>);

    impl<T: FromStr<Err = String>> Visitor<'_> for Parsed<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
    }

    d.deserialize_str(Parsed(expecting, PhantomData))
}

/// `deserialize_with` for durations: a Go-style string, or the integer 0.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct GoDuration;

    impl Visitor<'_> for GoDuration {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"10s\", \"1h30m\" or \"168h\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            // YAML turns `age: 0` into an integer; any other bare number lacks its unit.
            if v == 0 {
                Ok(Duration::ZERO)
            } else {
                Err(E::custom(format!(
                    "invalid duration {v}: missing unit; use ns, us, ms, s, m or h, e.g. \"{v}s\""
                )))
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            if v < 0 {
                Err(E::custom(format!(
                    "invalid duration {v}: must not be negative"
                )))
            } else {
                self.visit_u64(v as u64)
            }
        }
    }

    d.deserialize_any(GoDuration)
}

/// `deserialize_with` for `http.trustedproxies`: a list of CIDRs or bare IP addresses.
pub(crate) fn trusted_proxies<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    // A newtype per element so that an error names the element's index.
    struct Proxy(IpNet);

    impl FromStr for Proxy {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            parse_proxy(s).map(Proxy)
        }
    }

    impl<'de> Deserialize<'de> for Proxy {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            parsed(d, "an IP address or CIDR")
        }
    }

    let proxies = Vec::<Proxy>::deserialize(d)?;
    Ok(proxies.into_iter().map(|p| p.0).collect())
}

/// `deserialize_with` for `http.headers`: registry:2 writes each header's values as a list;
/// a single string is accepted as a one-value list because it cannot mean anything else.
pub(crate) fn headers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    struct Values(Vec<String>);

    impl<'de> Deserialize<'de> for Values {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct OneOrMany;

            impl<'de> Visitor<'de> for OneOrMany {
                type Value = Values;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a list of header values")
                }

                fn visit_str<E: de::Error>(self, v: &str) -> Result<Values, E> {
                    Ok(Values(vec![v.to_owned()]))
                }

                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                    let mut values = Vec::new();
                    while let Some(v) = seq.next_element::<String>()? {
                        values.push(v);
                    }
                    Ok(Values(values))
                }
            }

            d.deserialize_any(OneOrMany)
        }
    }

    let map = BTreeMap::<String, Values>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// `deserialize_with` for `log.fields`: registry:2 allows any scalar as a field value; they
/// are all logged as text.
pub(crate) fn string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Scalar(String);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct ScalarVisitor;

            impl Visitor<'_> for ScalarVisitor {
                type Value = Scalar;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }

                fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_owned()))
                }

                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }

                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }

                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }

                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
            }

            d.deserialize_any(ScalarVisitor)
        }
    }

    struct Fields;

    impl<'de> Visitor<'de> for Fields {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of field names to values")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, Scalar>()? {
                out.insert(k, v.0);
            }
            Ok(out)
        }
    }

    d.deserialize_map(Fields)
}

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

    #[test]
    fn durations_in_go_syntax() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("168h", Duration::from_secs(168 * 3600)),
            ("10s", Duration::from_secs(10)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1m0.5s", Duration::from_millis(60_500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("+10s", Duration::from_secs(10)),
            ("3us", Duration::from_micros(3)),
            ("3µs", Duration::from_micros(3)),
            ("3μs", Duration::from_micros(3)),
            ("7ns", Duration::from_nanos(7)),
            ("2h45m30s", Duration::from_secs(2 * 3600 + 45 * 60 + 30)),
            ("0.000000001s", Duration::from_nanos(1)),
        ];
        for (written, want) in cases {
            assert_eq!(parse_duration(written), Ok(*want), "{written}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "expected a number"),
            ("10", "missing unit"),
            ("-1h", "negative"),
            ("1 h", "unknown unit"),
            ("1d", "unknown unit"),
            ("1hour", "unknown unit"),
            ("h", "expected a number"),
            ("1h-5m", "unknown unit \"h-\""),
            ("1.h.5", "missing unit"),
            ("3000000h", "too large"),
            ("99999999999999999999999999999999999999999h", "too large"),
        ];
        for (written, want) in bad {
            let err = parse_duration(written).unwrap_err();
            assert!(err.contains(want), "{written}: {err}");
        }
    }

    #[test]
    fn durations_format_back_to_go_syntax() {
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(168 * 3600), "168h"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_nanos(1_001), "1us1ns"),
        ] {
            assert_eq!(format_duration(d), want);
            assert_eq!(parse_duration(want), Ok(d));
        }
    }

    #[test]
    fn booleans_from_strings() {
        for (s, want) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("True", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("0", Some(false)),
            ("yes", None),
            ("", None),
            ("t", None),
        ] {
            assert_eq!(parse_bool(s), want, "{s}");
        }
    }

    #[test]
    fn trusted_proxy_entries() {
        assert_eq!(parse_proxy("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_proxy("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(parse_proxy("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_proxy("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert!(
            parse_proxy("10.0.0.0/33")
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
        assert!(parse_proxy("proxy.local").is_err());
    }
}
