//! Content negotiation for manifest GETs.
//!
//! A registry stores one manifest per digest and cannot convert it, so negotiation is a yes
//! or no question: does any `Accept` header admit the stored media type?

/// Whether the `Accept` header values (one entry per header line; each may hold a
/// comma-separated list) admit `media_type`. No `Accept` header at all admits everything, as
/// HTTP says. `type/*` and `*/*` match, and `q=0` excludes.
pub fn accepts<'a>(accept_headers: impl IntoIterator<Item = &'a str>, media_type: &str) -> bool {
    let mut any_header = false;
    let mut best: Option<(u8, bool)> = None; // (specificity, acceptable) of the most specific match
    for header in accept_headers {
        any_header = true;
        for entry in header.split(',') {
            let mut parts = entry.split(';');
            let range = parts.next().unwrap_or("").trim();
            if range.is_empty() {
                continue;
            }
            let zero_quality = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            let Some(specificity) = match_specificity(range, media_type) else {
                continue;
            };
            // RFC 9110: the most specific matching range decides.
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, !zero_quality));
            }
        }
    }
    if !any_header {
        return true;
    }
    best.is_some_and(|(_, acceptable)| acceptable)
}

fn match_specificity(range: &str, media_type: &str) -> Option<u8> {
    if range == "*/*" {
        return Some(0);
    }
    let (range_type, range_subtype) = range.split_once('/')?;
    let (media_main, _) = media_type.split_once('/')?;
    if range_subtype == "*" {
        return range_type.eq_ignore_ascii_case(media_main).then_some(1);
    }
    range.eq_ignore_ascii_case(media_type).then_some(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    #[test]
    fn no_header_accepts_everything() {
        assert!(accepts([], OCI_INDEX));
    }

    #[test]
    fn exact_and_listed_types() {
        assert!(accepts([OCI_MANIFEST], OCI_MANIFEST));
        assert!(!accepts([OCI_MANIFEST], OCI_INDEX));
        let docker_style = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json;q=0.5";
        assert!(accepts([docker_style], OCI_INDEX));
        assert!(
            accepts(["application/json", OCI_INDEX], OCI_INDEX),
            "several header lines"
        );
    }

    #[test]
    fn wildcards_and_zero_quality() {
        assert!(accepts(["*/*"], OCI_INDEX));
        assert!(accepts(["application/*"], OCI_INDEX));
        assert!(!accepts(["text/*"], OCI_INDEX));
        assert!(!accepts([format!("{OCI_INDEX};q=0").as_str()], OCI_INDEX));
        assert!(
            !accepts([format!("*/*, {OCI_INDEX}; q=0").as_str()], OCI_INDEX),
            "specific q=0 beats */*"
        );
        assert!(accepts(
            [format!("*/*;q=0, {OCI_INDEX}").as_str()],
            OCI_INDEX
        ));
    }
}
