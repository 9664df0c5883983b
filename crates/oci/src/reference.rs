//! Tags and manifest references (`<tag>` or `<digest>` in `/v2/<name>/manifests/<reference>`).

use std::fmt;

use crate::digest::Digest;
use crate::error::{ErrorCode, RegistryError};
use crate::name::truncate_for_display;

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Tag, RegistryError> {
        let bytes = s.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes[1..]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(Tag(s.to_string()))
        } else {
            Err(RegistryError::new(ErrorCode::TagInvalid, "invalid tag").with_detail(serde_json::json!({
                "tag": truncate_for_display(s),
                "reason": "a tag is 1 to 128 characters of [A-Za-z0-9_.-] and must not start with '.' or '-'",
            })))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

serde_as_validated_text!(Tag, |t| t.0.as_str());

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

/// What a manifest request names: a tag, or the manifest's digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A tag cannot contain `:`, so anything with one must be a valid digest.
    pub fn parse(s: &str) -> Result<Reference, RegistryError> {
        if s.contains(':') {
            Ok(Reference::Digest(Digest::parse(s)?))
        } else {
            Ok(Reference::Tag(Tag::parse(s)?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for good in ["latest", "v1.2.3", "_x", "A-b_c.d", "0", &"a".repeat(128)] {
            assert!(Tag::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a:b",
            "a b",
            "ü",
            &"a".repeat(129),
        ] {
            assert_eq!(
                Tag::parse(bad).unwrap_err().code,
                ErrorCode::TagInvalid,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn references() {
        assert!(matches!(
            Reference::parse("latest").unwrap(),
            Reference::Tag(_)
        ));
        let digest = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            Reference::parse(&digest).unwrap(),
            Reference::Digest(_)
        ));
        assert_eq!(
            Reference::parse("sha256:totallywrong").unwrap_err().code,
            ErrorCode::DigestInvalid
        );
        assert_eq!(
            Reference::parse("md5:abc").unwrap_err().code,
            ErrorCode::DigestInvalid
        );
        assert_eq!(
            Reference::parse("../x").unwrap_err().code,
            ErrorCode::TagInvalid
        );
    }
}
