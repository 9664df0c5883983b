//! Value types written with registry:2's syntax, and the serde glue that parses them.
//!
//! Each type parses from a string with `FromStr` (the error says what was wrong and what is
//! expected) so that file values and environment values go through the same code.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
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

/// Parses a whole number written as digits only (an environment variable's text, or a
/// quoted YAML value): no sign, no separators, no unit.
pub(crate) fn parse_whole_number(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid number {s:?}: expected digits only (a whole number, no unit)"
        ));
    }
    s.parse()
        .map_err(|_| format!("invalid number {s:?}: too large"))
}

/// Deserializes a whole number written as an integer or as a string of digits (which is what
/// an environment variable gives), reporting `expecting` on a wrong type.
fn whole_number<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole<T>(&'static str, PhantomData<T>);

    impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("invalid number {v}: too large")))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "invalid number {v}: must not be negative"
                ))),
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            self.visit_u64(parse_whole_number(v).map_err(E::custom)?)
        }
    }

    d.deserialize_any(Whole(expecting, PhantomData))
}

/// `deserialize_with` for sizes in bytes: an integer or a string of digits.
pub(crate) fn byte_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole_number(d, "a whole number of bytes, e.g. 10485760")
}

/// Parses a number of bytes with an optional unit: `1048576`, `50MiB`, `1GB` (B, KiB, MiB,
/// GiB, TiB, or KB, MB, GB, TB in powers of ten).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid =
        || format!("invalid size {text:?}: expected a number of bytes such as 52428800 or 50MiB");
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// `deserialize_with` for a rate in bytes per second: an integer, or a size with a unit
/// (`20MiB`).
pub(crate) fn byte_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Rate;

    impl Visitor<'_> for Rate {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes per second, e.g. 20971520 or 20MiB")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("invalid rate {v}: must not be negative")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_byte_size(v).map_err(E::custom)
        }
    }

    d.deserialize_any(Rate)
}

/// Decodes a URL's percent-encoded user name or password.
pub fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `deserialize_with` for counts: an integer or a string of digits.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    whole_number(d, "a whole number, e.g. 16")
}

/// `deserialize_with` for optional text where empty means unset, as registry:2 treats its
/// S3 credentials and endpoint (`REGISTRY_STORAGE_S3_ACCESSKEY=` in a compose file).
pub(crate) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.filter(|t| !t.is_empty()))
}

/// `deserialize_with` for optional file paths where empty means unset, as in a compose
/// file's `KEY=${VALUE:-}`.
pub(crate) fn non_empty_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(non_empty(d)?.map(PathBuf::from))
}

/// `deserialize_with` for a key prefix inside a bucket: registry:2 users write "/registry",
/// object keys have no leading '/', and berth appends "/..." itself.
pub(crate) fn object_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(prefix.trim_matches('/').to_owned())
}

/// `url` with every password replaced by `***`: the one in its user information
/// (`postgres://user:***@host/db`) and a `password` query parameter (which libpq and sqlx
/// accept). Safe to log and to show in error messages, including for URLs too malformed to
/// parse: then anything that might be user information is redacted.
pub(crate) fn redact_url(url: &str) -> String {
    const MASK: &str = "***";
    let mut out = url.to_owned();

    // The query first, so that the offsets of the user information stay valid.
    let query_start = out.find(['?', '#']).unwrap_or(out.len());
    if out[query_start..].starts_with('?') {
        let query_end = out[query_start..]
            .find('#')
            .map_or(out.len(), |i| query_start + i);
        let query = &out[query_start + 1..query_end];
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| {
                let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
                let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                if decoded.eq_ignore_ascii_case("password") {
                    format!("{name}={MASK}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        out.replace_range(query_start + 1..query_end, &redacted.join("&"));
    }

    let Some(scheme_end) = out[..query_start].find("://") else {
        // Not an authority URL ("postgres:user:password@host" is one only to a human). Its
        // paths have no credentials when it is SQLite's; otherwise hide everything from the
        // first ':' to the last '@', which covers a password wherever it is.
        let sqlite = out
            .split_once(':')
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("sqlite"));
        if !sqlite
            && let Some(at) = out.rfind('@')
            && let Some(colon) = out[..at].find(':')
            && colon + 1 < at
        {
            out.replace_range(colon + 1..at, MASK);
        }
        return out;
    };
    let start = scheme_end + 3;
    let before_query = &out[start..query_start];
    // A URL's user information is what precedes the last '@' of the authority, which ends at
    // the first '/'. A password with an unencoded '/', '?' or '#' makes the URL malformed
    // (no parser reads it as the user meant); then take the last '@' of all instead.
    let authority = before_query
        .find('/')
        .map_or(before_query, |i| &before_query[..i]);
    let at = match authority.rfind('@') {
        Some(at) => Some(at),
        None if url::Url::parse(url).is_err() => out[start..].rfind('@'),
        None => None,
    };
    let Some(at) = at else {
        return out;
    };
    let userinfo = &out[start..start + at];
    if let Some(colon) = userinfo.find(':')
        && colon + 1 < userinfo.len()
    {
        out.replace_range(start + colon + 1..start + at, MASK);
    }
    out
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
    fn whole_numbers() {
        assert_eq!(parse_whole_number("0"), Ok(0));
        assert_eq!(parse_whole_number("10485760"), Ok(10_485_760));
        assert_eq!(parse_whole_number("007"), Ok(7));
        for bad in ["", "+1", "-1", "1.0", "1e6", " 1", "1_000", "10MiB"] {
            let err = parse_whole_number(bad).unwrap_err();
            assert!(err.contains("expected digits only"), "{bad}: {err}");
        }
        assert!(
            parse_whole_number("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn urls_are_redacted() {
        let cases: &[(&str, &str)] = &[
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:p%40w%2F@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("postgres://u:@h/db", "postgres://u:@h/db"),
            ("postgres://:pw@h", "postgres://:***@h"),
            // A raw '@' in the password: the user information ends at the last '@'.
            ("postgres://u:p@w@h/db", "postgres://u:***@h/db"),
            // A raw '/' makes the URL unparseable; the password is still hidden.
            ("postgres://u:p/w@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p?w@h/db", "postgres://u:***@h/db"),
            // '@' in a well-formed URL's path or query is not user information.
            ("postgres://h/d@b", "postgres://h/d@b"),
            (
                "postgres://h:5432/db?application_name=a@b",
                "postgres://h:5432/db?application_name=a@b",
            ),
            (
                "postgres://h/db?password=pw&sslmode=require",
                "postgres://h/db?password=***&sslmode=require",
            ),
            (
                "postgres://h/db?pass%77ord=pw",
                "postgres://h/db?pass%77ord=***",
            ),
            ("postgres://h/db?password", "postgres://h/db?password=***"),
            ("postgres://h/db#password=x", "postgres://h/db#password=x"),
            ("postgres:u:pw@h", "postgres:***@h"),
            ("u:pw@h/db", "u:***@h/db"),
            (
                "sqlite:///srv/a:b@c/berth.db",
                "sqlite:///srv/a:b@c/berth.db",
            ),
            ("sqlite:/srv/a:b@c/berth.db", "sqlite:/srv/a:b@c/berth.db"),
            ("sqlite:berth.db?mode=rwc", "sqlite:berth.db?mode=rwc"),
            ("sqlite:b.db?x=http://u:pw@h", "sqlite:b.db?x=http://u:pw@h"),
            ("postgres://u:p#w@h/db", "postgres://u:***@h/db"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), *want, "{url}");
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
