//! Headers berth sends that the configuration adds: registry:2's `http.headers` on every
//! response, and each notification or webhook endpoint's `headers` on every delivery.

use std::collections::BTreeMap;

use crate::schema::Problems;

/// Checks the headers at `path`: valid names and values, none that berth sets itself, each
/// name once.
pub(crate) fn check_headers(
    path: &str,
    headers: &BTreeMap<String, Vec<String>>,
    problems: &mut Problems,
) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, values) in headers {
        let path = format!("{path}.{name}");
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

/// Headers that HTTP itself must control: a fixed value would corrupt framing.
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
    // when berth builds its responses and requests.
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(format!("{name} is set by berth and cannot be configured"));
    }
    if values.is_empty() {
        return Err("needs at least one value".into());
    }
    for value in values {
        if http::HeaderValue::from_str(value).is_err() {
            // A credential is not quoted, as no secret is in an error message.
            let shown = if is_sensitive(name) {
                String::new()
            } else {
                format!(" {value:?}")
            };
            return Err(format!(
                "invalid header value{shown}: only visible ASCII, spaces and tabs are allowed"
            ));
        }
    }
    Ok(())
}

/// Whether a header usually carries a credential (`Authorization: Bearer ...`), so that its
/// values are shown only as set.
fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || ["token", "secret", "key", "password", "auth"]
        .iter()
        .any(|word| name.contains(word))
}

/// Headers as `explain` and `Debug` show an endpoint's: `{X-Team: [ci], Authorization: (set)}`.
pub(crate) fn show_headers(headers: &BTreeMap<String, Vec<String>>) -> String {
    let entries: Vec<String> = headers
        .iter()
        .map(|(name, values)| {
            if is_sensitive(name) {
                format!("{name}: (set)")
            } else {
                format!("{name}: [{}]", values.join(", "))
            }
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}
