//! Byte ranges: the `Range` header of blob GETs and the `Content-Range` of upload chunks.

use crate::error::{ErrorCode, RegistryError};

/// A non-empty, satisfiable range of a blob, both ends inclusive as in HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The value of a `Content-Range` response header for this range of a `size`-byte blob.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }

    /// Interprets a request's `Range` header against a blob of `size` bytes (RFC 9110 §14).
    ///
    /// * `Ok(None)`: serve the whole blob. This is also the answer for headers the RFC says
    ///   to ignore: other units, malformed values, and multiple ranges (which berth, like
    ///   most registries, does not serve as multipart).
    /// * `Ok(Some(range))`: serve that range with 206.
    /// * `Err(_)`: the range cannot be satisfied; answer 416 with `Content-Range: bytes */size`.
    pub fn from_range_header(value: &str, size: u64) -> Result<Option<ByteRange>, RegistryError> {
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return Ok(None);
        };
        if spec.contains(',') {
            return Ok(None);
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Ok(None);
        };
        let unsatisfiable = || {
            RegistryError::new(ErrorCode::RangeInvalid, "requested range not satisfiable")
                .with_detail(serde_json::json!({ "range": value, "size": size }))
                .with_header("content-range", format!("bytes */{size}"))
        };
        let range = match (parse_position(first), parse_position(last)) {
            // bytes=-N: the last N bytes.
            (None, Some(suffix)) if first.is_empty() => {
                if suffix == 0 || size == 0 {
                    return Err(unsatisfiable());
                }
                ByteRange {
                    start: size.saturating_sub(suffix),
                    end: size - 1,
                }
            }
            // bytes=A-: from A to the end.
            (Some(start), None) if last.is_empty() => {
                if start >= size {
                    return Err(unsatisfiable());
                }
                ByteRange {
                    start,
                    end: size - 1,
                }
            }
            // bytes=A-B
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    return Err(unsatisfiable());
                }
                ByteRange {
                    start,
                    end: end.min(size - 1),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(range))
    }
}

/// A position in a `Range` header: digits, saturating at `u64::MAX` (RFC 9110 puts no limit
/// on their number; a position past any blob's end is as good as `u64::MAX`).
fn parse_position(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// The largest offset an upload may reach: sizes are stored as signed 64-bit integers.
const MAX_UPLOAD_OFFSET: u64 = i64::MAX as u64;

/// A position in an upload's `Content-Range`: digits that fit what an upload can hold.
fn parse_offset(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&offset| offset < MAX_UPLOAD_OFFSET)
}

/// The `Content-Range` of an upload chunk: the offsets, inclusive, the chunk occupies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
}

impl ContentRange {
    /// Accepts the specification's `<start>-<end>` and the spellings clients use in practice:
    /// `bytes <start>-<end>/<total or *>` (RFC 9110) and `bytes=<start>-<end>`.
    pub fn parse(value: &str) -> Result<ContentRange, RegistryError> {
        let invalid = || {
            RegistryError::new(ErrorCode::BlobUploadInvalid, "invalid Content-Range header")
                .with_detail(serde_json::json!({
                    "content-range": crate::name::truncate_for_display(value),
                    "expected": "<start>-<end>",
                }))
        };
        let mut spec = value.trim();
        if let Some(rest) = spec
            .strip_prefix("bytes=")
            .or_else(|| spec.strip_prefix("bytes "))
        {
            spec = rest;
        }
        if let Some((range, _total)) = spec.split_once('/') {
            spec = range;
        }
        let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
        // Offsets past what a blob can hold are refused here, so that no length or end
        // computed from them can overflow.
        let start = parse_offset(start).ok_or_else(invalid)?;
        let end = parse_offset(end).ok_or_else(invalid)?;
        Ok(ContentRange { start, end })
    }

    /// The chunk length the range announces; `None` when `end < start`, which no chunk can
    /// satisfy.
    pub fn len(&self) -> Option<u64> {
        self.end.checked_sub(self.start).map(|d| d + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.len().is_none()
    }
}

/// The `Range` header value of an upload that holds `size` bytes. Like the official registry,
/// an empty upload reports `0-0`: clients treat the value as "resume at end + 1" only when
/// the upload is non-empty, so this is what they expect.
pub fn upload_range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(header: &str, size: u64) -> Result<Option<(u64, u64)>, u16> {
        ByteRange::from_range_header(header, size)
            .map(|r| r.map(|r| (r.start, r.end)))
            .map_err(|e| e.status)
    }

    #[test]
    fn satisfiable_ranges() {
        assert_eq!(range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(range("bytes=10-", 1000), Ok(Some((10, 999))));
        assert_eq!(range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(range("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(range("bytes=990-5000", 1000), Ok(Some((990, 999))));
        assert_eq!(range("bytes=999-999", 1000), Ok(Some((999, 999))));
        // Numbers past u64: a suffix longer than the blob is the whole blob, an end past it
        // is clipped (RFC 9110 14.1.2), never an overflow.
        for whole in [
            "bytes=-18446744073709551615",
            "bytes=-99999999999999999999999",
            "bytes=0-99999999999999999999999",
            "bytes=0-18446744073709551615",
        ] {
            assert_eq!(range(whole, 1000), Ok(Some((0, 999))), "{whole}");
        }
        assert_eq!(
            ByteRange { start: 0, end: 99 }.content_range(1000),
            "bytes 0-99/1000"
        );
    }

    #[test]
    fn unsatisfiable_ranges_are_416() {
        assert_eq!(range("bytes=1000-", 1000), Err(416));
        assert_eq!(range("bytes=1000-2000", 1000), Err(416));
        assert_eq!(range("bytes=-0", 1000), Err(416));
        assert_eq!(range("bytes=0-0", 0), Err(416));
        assert_eq!(range("bytes=18446744073709551615-", 1000), Err(416));
        assert_eq!(range("bytes=99999999999999999999999-", 1000), Err(416));
        let err = ByteRange::from_range_header("bytes=5000-", 1000).unwrap_err();
        assert_eq!(
            err.headers,
            vec![("content-range", "bytes */1000".to_string())]
        );
    }

    #[test]
    fn ignorable_ranges_serve_everything() {
        for header in [
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=",
            "bytes=-",
            "bytes=0-1,5-6",
            "garbage",
        ] {
            assert_eq!(range(header, 1000), Ok(None), "{header:?}");
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            ContentRange::parse("0-1023").unwrap(),
            ContentRange {
                start: 0,
                end: 1023
            }
        );
        assert_eq!(
            ContentRange::parse("bytes 10-19/*").unwrap(),
            ContentRange { start: 10, end: 19 }
        );
        assert_eq!(
            ContentRange::parse("bytes=10-19").unwrap(),
            ContentRange { start: 10, end: 19 }
        );
        assert_eq!(ContentRange::parse("5-4").unwrap().len(), None);
        assert_eq!(ContentRange::parse("0-0").unwrap().len(), Some(1));
        for bad in [
            "",
            "-",
            "abc",
            "1-",
            "-1",
            "1--2",
            "+1-2",
            "1-2-3",
            // Past what an upload can hold: refused, never wrapped around.
            "0-18446744073709551615",
            "0-99999999999999999999999",
            "18446744073709551615-18446744073709551615",
            "0-9223372036854775807",
        ] {
            assert_eq!(
                ContentRange::parse(bad).unwrap_err().code,
                ErrorCode::BlobUploadInvalid,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_range() {
        assert_eq!(upload_range_header(0), "0-0");
        assert_eq!(upload_range_header(1), "0-0");
        assert_eq!(upload_range_header(100), "0-99");
    }
}
