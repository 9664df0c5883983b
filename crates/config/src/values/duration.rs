//! Durations in Go's syntax, as registry:2 writes them.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

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

/// Reads durations: a Go-style string, or the integer 0.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
