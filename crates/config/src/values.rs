//! Value types written with registry:2's syntax, and the serde glue that parses them.
//!
//! Each type parses from a string with `FromStr` (the error says what was wrong and what is
//! expected) so that file values and environment values go through the same code.

mod addr;
mod duration;
mod redact;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use berth_oci::Pattern;
use ipnet::IpNet;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

pub use addr::{EndpointUrl, ListenAddr, PublicUrl};
pub(crate) use duration::{duration, format_duration, parse_duration};
pub(crate) use redact::redact_url;

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

/// Reads sizes in bytes: an integer or a string of digits.
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

/// Reads a rate in bytes per second: an integer, or a size with a unit (`20MiB`).
pub(crate) fn byte_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    sized(d, "bytes per second, e.g. 20971520 or 20MiB")
}

/// Reads a size in bytes: an integer, or a size with a unit (`50GiB`).
pub(crate) fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    sized(d, "a number of bytes, e.g. 53687091200 or 50GiB")
}

fn sized<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<u64, D::Error> {
    struct Rate(&'static str);

    impl Visitor<'_> for Rate {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("invalid value {v}: must not be negative")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_byte_size(v).map_err(E::custom)
        }
    }

    d.deserialize_any(Rate(expecting))
}

/// Decodes a URL's percent-encoded user name or password.
pub fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads counts: an integer or a string of digits.
pub(crate) fn count<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    whole_number(d, "a whole number, e.g. 16")
}

/// Reads optional text where empty means unset, as registry:2 treats its
/// S3 credentials and endpoint (`REGISTRY_STORAGE_S3_ACCESSKEY=` in a compose file).
pub(crate) fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.filter(|t| !t.is_empty()))
}

/// Reads optional file paths where empty means unset, as in a compose
/// file's `KEY=${VALUE:-}`.
pub(crate) fn non_empty_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(non_empty(d)?.map(PathBuf::from))
}

/// Reads a key prefix inside a bucket: registry:2 users write "/registry",
/// object keys have no leading '/', and berth appends "/..." itself.
pub(crate) fn object_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(prefix.trim_matches('/').to_owned())
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

/// Reads one of `http.trustedproxies`: a CIDR or a bare IP address.
pub(crate) fn proxy<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    struct Proxy(IpNet);

    impl FromStr for Proxy {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            parse_proxy(s).map(Proxy)
        }
    }

    parsed(d, "an IP address or CIDR").map(|p: Proxy| p.0)
}

/// Reads a repository pattern (`team/**`, `library/*`).
pub(crate) fn pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
    struct Text(Pattern);

    impl FromStr for Text {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            Pattern::parse(s).map(Text).map_err(|e| e.to_string())
        }
    }

    parsed(d, "a repository pattern such as team/** or library/*").map(|p: Text| p.0)
}

/// Reads `http.headers`: registry:2 writes each header's values as a list;
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

/// Reads `log.fields`: registry:2 allows any scalar as a field value; they
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
