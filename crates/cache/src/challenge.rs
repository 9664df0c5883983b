//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), as registries send them:
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."`
//! or `Basic realm="..."`.

use std::collections::BTreeMap;

/// One challenge: its scheme (lower case) and parameters (names in lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// The challenges of one header value, in order. Quoted values may hold commas and escaped
/// quotes; a malformed tail ends the parse with what was read so far.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut challenges = Vec::new();
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        let scheme_end = rest.find([' ', ',']).unwrap_or(rest.len());
        let scheme = &rest[..scheme_end];
        rest = rest[scheme_end..].trim_start_matches([' ', ',']);
        if scheme.is_empty() {
            break;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        // Parameters until the next token that is not followed by `=` (the next scheme).
        while let Some(eq) = rest.find('=') {
            let name = rest[..eq].trim();
            if name.is_empty() || name.contains([' ', ',']) {
                break;
            }
            let after = rest[eq + 1..].trim_start();
            let (value, remaining) = match after.strip_prefix('"') {
                Some(quoted) => match quoted_string(quoted) {
                    Some(parsed) => parsed,
                    None => return finish(challenges, challenge),
                },
                None => {
                    let end = after.find(',').unwrap_or(after.len());
                    (after[..end].trim().to_string(), &after[end..])
                }
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
            rest = remaining.trim_start_matches([' ', ',']);
        }
        challenges.push(challenge);
    }
    challenges
}

fn finish(mut challenges: Vec<Challenge>, last: Challenge) -> Vec<Challenge> {
    challenges.push(last);
    challenges
}

/// The text of a quoted string whose opening quote was consumed, and what follows it.
fn quoted_string(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer_challenge() {
        let parsed = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].scheme, "bearer");
        assert_eq!(
            parsed[0].param("realm"),
            Some("https://auth.docker.io/token")
        );
        assert_eq!(parsed[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            parsed[0].param("scope"),
            Some("repository:library/alpine:pull,push")
        );
    }

    #[test]
    fn basic_and_several_challenges_and_escapes() {
        let parsed =
            parse(r#"Basic realm="a \"b\", c", Bearer realm=x, error="insufficient_scope""#);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].scheme, "basic");
        assert_eq!(parsed[0].param("realm"), Some(r#"a "b", c"#));
        assert_eq!(parsed[1].scheme, "bearer");
        assert_eq!(parsed[1].param("realm"), Some("x"));
        assert_eq!(parsed[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for input in [
            "",
            "Bearer",
            "Bearer realm=\"unterminated",
            "=,,=",
            "Basic ,,, realm",
        ] {
            let _ = parse(input);
        }
        assert_eq!(parse("Bearer")[0].scheme, "bearer");
    }
}
