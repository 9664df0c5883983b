//! Glob patterns over repository names ([`Pattern`]) and over tags ([`TagPattern`]).
//!
//! Components are separated by `/`. In a component, `*` matches any run of characters other
//! than `/`. A component that is exactly `**` matches any number of components, none
//! included. So `library/*` matches `library/alpine` but not `library/a/b`; `team-a/**`
//! matches `team-a`, `team-a/api` and `team-a/x/y`; `*/public-*` matches `x/public-web`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid repository pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: &'static str,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let invalid = |reason| PatternError {
            pattern: text.to_string(),
            reason,
        };
        if text.is_empty() || text.len() > 255 {
            return Err(invalid("a pattern is 1 to 255 characters"));
        }
        for component in text.split('/') {
            if component.is_empty() {
                return Err(invalid("empty path component"));
            }
            if component.contains("**") && component != "**" {
                return Err(invalid("`**` must be a whole path component"));
            }
            let allowed = |c: char| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '*')
            };
            if !component.chars().all(allowed) {
                return Err(invalid(
                    "only lowercase letters, digits, '.', '_', '-', '*' and '/' are allowed",
                ));
            }
        }
        Ok(Pattern {
            text: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, repository: &str) -> bool {
        let pattern: Vec<&str> = self.text.split('/').collect();
        let name: Vec<&str> = repository.split('/').collect();
        matches_components(&pattern, &name)
    }
}

fn matches_components(pattern: &[&str], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|skip| matches_components(rest, &name[skip..])),
        Some((first, rest)) => match name.split_first() {
            Some((component, name_rest)) => {
                matches_glob(first.as_bytes(), component.as_bytes())
                    && matches_components(rest, name_rest)
            }
            None => false,
        },
    }
}

/// `*` matching within one component, iteratively with backtracking to the last star.
fn matches_glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A glob over tags: `*` matches any run of tag characters, everything else itself; so
/// `v*` matches `v1` and `v1.2.3`, `*-release` matches `2024-release`, `*` every tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagPattern {
    text: String,
}

impl TagPattern {
    pub fn parse(text: &str) -> Result<TagPattern, PatternError> {
        let invalid = |reason| PatternError {
            pattern: text.to_string(),
            reason,
        };
        if text.is_empty() || text.len() > 128 {
            return Err(invalid("a tag pattern is 1 to 128 characters"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*');
        if !text.chars().all(allowed) {
            return Err(invalid(
                "only letters, digits, '_', '.', '-' and '*' are allowed in a tag pattern",
            ));
        }
        Ok(TagPattern {
            text: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, tag: &str) -> bool {
        matches_glob(self.text.as_bytes(), tag.as_bytes())
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn single_component_stars() {
        assert!(matches("library/*", "library/alpine"));
        assert!(!matches("library/*", "library/a/b"));
        assert!(!matches("library/*", "library"));
        assert!(matches("*/public-*", "x/public-web"));
        assert!(matches("*/public-*", "x/public-"));
        assert!(!matches("*/public-*", "x/private-web"));
        assert!(!matches("*/public-*", "a/b/public-x"));
        assert!(matches("*", "alpine"));
        assert!(!matches("*", "a/b"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(matches("a*b*c", "abc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("exact/name", "exact/name"));
        assert!(!matches("exact/name", "exact/names"));
    }

    #[test]
    fn double_stars_span_components() {
        assert!(matches("team-a/**", "team-a"));
        assert!(matches("team-a/**", "team-a/api"));
        assert!(matches("team-a/**", "team-a/x/y/z"));
        assert!(!matches("team-a/**", "team-ab/api"));
        assert!(matches("**", "anything/at/all"));
        assert!(matches("**/tools", "tools"));
        assert!(matches("**/tools", "a/b/tools"));
        assert!(matches("a/**/z", "a/z"));
        assert!(matches("a/**/z", "a/b/c/z"));
        assert!(!matches("a/**/z", "a/b/c"));
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "a**",
            "Upper",
            "a b",
            "a/../b?",
            &"a".repeat(256),
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tag_patterns() {
        let tag = |pattern: &str, tag: &str| TagPattern::parse(pattern).unwrap().matches(tag);
        assert!(tag("*", "latest"));
        assert!(tag("v*", "v1.2.3"));
        assert!(!tag("v*", "1.2.3"));
        assert!(tag("*-release", "2024-release"));
        assert!(!tag("*-release", "2024-release-candidate"));
        assert!(tag("1.*.*", "1.2.3"));
        assert!(!tag("latest", "Latest"), "tags are case-sensitive");
        for bad in ["", "a/b", "v?", "a b", "*)(uid=*", &"a".repeat(129)] {
            assert!(TagPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
