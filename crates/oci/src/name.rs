//! Repository names such as `library/alpine` or `team/app/api`.

use std::fmt;

use crate::error::{ErrorCode, RegistryError};

/// The longest repository name accepted. Docker clients refuse longer names (counting the
/// registry host too), and it keeps names well within index and path limits.
pub const MAX_NAME_LENGTH: usize = 255;

/// A validated repository name: slash-separated components of lowercase letters and digits,
/// joined inside a component by `.`, `_`, `__` or runs of `-`. It can never contain `..`,
/// an empty component, or anything that escapes a path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn parse(s: &str) -> Result<RepositoryName, RegistryError> {
        let invalid = |why: &str| {
            RegistryError::new(ErrorCode::NameInvalid, "invalid repository name")
                .with_detail(serde_json::json!({ "name": truncate_for_display(s), "reason": why }))
        };
        if s.is_empty() {
            return Err(invalid("name is empty"));
        }
        if s.len() > MAX_NAME_LENGTH {
            return Err(invalid("name is longer than 255 characters"));
        }
        for component in s.split('/') {
            if component.is_empty() {
                return Err(invalid("name has an empty path component"));
            }
            if !is_valid_component(component) {
                return Err(invalid(
                    "each path component must be lowercase letters and digits, separated by '.', '_', '__' or '-'",
                ));
            }
        }
        Ok(RepositoryName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of letters and digits.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // One separator, then another run must follow.
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// Error details echo what the client sent; keep a hostile 1 MB name out of responses and logs.
pub(crate) fn truncate_for_display(s: &str) -> String {
    const LIMIT: usize = 300;
    if s.len() <= LIMIT {
        return s.to_string();
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

serde_as_validated_text!(RepositoryName, |n| n.0.as_str());

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryName({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for good in [
            "alpine",
            "library/alpine",
            "team/app/api",
            "a",
            "0",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "foo-bar",
            "foo---bar",
            "a1/b2.c3_d4__e5-f6",
            "blobs/manifests/tags",
        ] {
            assert!(
                RepositoryName::parse(good).is_ok(),
                "{good:?} should be valid"
            );
        }
        assert!(RepositoryName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "",
            "Alpine",
            "UPPER/case",
            "..",
            "a/../b",
            "a/./b",
            "/a",
            "a/",
            "a//b",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a.",
            "_a",
            "a b",
            "a%2fb",
            "a:b",
            "a@b",
            "ä",
            "a\0b",
        ] {
            let err = RepositoryName::parse(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::NameInvalid, "{bad:?}");
        }
        assert!(RepositoryName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn error_details_are_truncated() {
        let long = "A".repeat(10_000);
        let err = RepositoryName::parse(&long).unwrap_err();
        assert!(err.body().to_string().len() < 1000);
    }
}
