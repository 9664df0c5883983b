//! `n` and `last` pagination of the catalog and tag lists.

use crate::error::{ErrorCode, RegistryError};

/// One page request: at most `limit` entries strictly after `after`, in lexical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `None` when the client did not give `n`.
    pub limit: Option<u32>,
    pub after: Option<String>,
}

impl Page {
    /// Parses the raw `n` and `last` query values. `validate_last` checks `last` against the
    /// grammar of what is listed (tags or repository names): a `last` that could never be
    /// listed is a client error, not an empty page.
    pub fn parse(
        n: Option<&str>,
        last: Option<&str>,
        validate_last: impl Fn(&str) -> Result<(), RegistryError>,
    ) -> Result<Page, RegistryError> {
        let limit = match n {
            None => None,
            Some(raw) => Some(parse_count(raw).ok_or_else(|| {
                RegistryError::new(
                    ErrorCode::PaginationNumberInvalid,
                    "invalid number of results requested",
                )
                .with_detail(serde_json::json!({ "n": crate::name::truncate_for_display(raw) }))
            })?),
        };
        let after = match last {
            None => None,
            Some(raw) => {
                validate_last(raw)?;
                Some(raw.to_string())
            }
        };
        Ok(Page { limit, after })
    }
}

/// A decimal count without sign or whitespace. Values over `u32::MAX` are clamped: asking for
/// "everything" by a huge `n` is reasonable, and the caller caps it anyway.
fn parse_count(raw: &str) -> Option<u32> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        raw.parse::<u64>()
            .map_or(u32::MAX, |v| v.min(u32::MAX as u64) as u32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &str) -> Result<(), RegistryError> {
        Ok(())
    }

    #[test]
    fn parses_n_and_last() {
        assert_eq!(
            Page::parse(None, None, ok).unwrap(),
            Page {
                limit: None,
                after: None
            }
        );
        let page = Page::parse(Some("10"), Some("v1"), ok).unwrap();
        assert_eq!(page.limit, Some(10));
        assert_eq!(page.after.as_deref(), Some("v1"));
        assert_eq!(Page::parse(Some("0"), None, ok).unwrap().limit, Some(0));
        assert_eq!(
            Page::parse(Some("99999999999"), None, ok).unwrap().limit,
            Some(u32::MAX)
        );
    }

    #[test]
    fn rejects_garbage_n() {
        for bad in ["", "-1", "abc", "1.5", " 1", "0x10", "1e3", &"9".repeat(30)] {
            let err = Page::parse(Some(bad), None, ok).unwrap_err();
            assert_eq!(err.code, ErrorCode::PaginationNumberInvalid, "{bad:?}");
        }
    }

    #[test]
    fn validates_last() {
        let err =
            Page::parse(None, Some("../x"), |s| crate::Tag::parse(s).map(|_| ())).unwrap_err();
        assert_eq!(err.code, ErrorCode::TagInvalid);
    }
}
