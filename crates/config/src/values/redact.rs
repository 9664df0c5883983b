//! Hiding passwords in URLs.

/// `url` with every password replaced by `***`: the one in its user information
/// (`postgres://user:***@host/db`) and a `password` query parameter (which libpq and sqlx
/// accept). Safe to log and to show in error messages, including for URLs too malformed to
/// parse: then anything that might be user information is redacted.
pub(crate) fn redact_url(url: &str) -> String {
    const MASK: &str = "***";
    let mut out = url.to_owned();

    // The query first, so that the offsets of the user information stay valid.
    let query_start = out.find(['?', '#']).unwrap_or(out.len());
    if out[query_start..].starts_with('?') {
        let query_end = out[query_start..]
            .find('#')
            .map_or(out.len(), |i| query_start + i);
        let query = &out[query_start + 1..query_end];
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| {
                let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
                let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                if decoded.eq_ignore_ascii_case("password") {
                    format!("{name}={MASK}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        out.replace_range(query_start + 1..query_end, &redacted.join("&"));
    }

    let Some(scheme_end) = out[..query_start].find("://") else {
        // Not an authority URL ("postgres:user:password@host" is one only to a human). Its
        // paths have no credentials when it is SQLite's; otherwise hide everything from the
        // first ':' to the last '@', which covers a password wherever it is.
        let sqlite = out
            .split_once(':')
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("sqlite"));
        if !sqlite
            && let Some(at) = out.rfind('@')
            && let Some(colon) = out[..at].find(':')
            && colon + 1 < at
        {
            out.replace_range(colon + 1..at, MASK);
        }
        return out;
    };
    let start = scheme_end + 3;
    let before_query = &out[start..query_start];
    // A URL's user information is what precedes the last '@' of the authority, which ends at
    // the first '/'. A password with an unencoded '/', '?' or '#' makes the URL malformed
    // (no parser reads it as the user meant); then take the last '@' of all instead.
    let authority = before_query
        .find('/')
        .map_or(before_query, |i| &before_query[..i]);
    let at = match authority.rfind('@') {
        Some(at) => Some(at),
        None if url::Url::parse(url).is_err() => out[start..].rfind('@'),
        None => None,
    };
    let Some(at) = at else {
        return out;
    };
    let userinfo = &out[start..start + at];
    if let Some(colon) = userinfo.find(':')
        && colon + 1 < userinfo.len()
    {
        out.replace_range(start + colon + 1..start + at, MASK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let cases: &[(&str, &str)] = &[
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:p%40w%2F@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("postgres://u:@h/db", "postgres://u:@h/db"),
            ("postgres://:pw@h", "postgres://:***@h"),
            // A raw '@' in the password: the user information ends at the last '@'.
            ("postgres://u:p@w@h/db", "postgres://u:***@h/db"),
            // A raw '/' makes the URL unparseable; the password is still hidden.
            ("postgres://u:p/w@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p?w@h/db", "postgres://u:***@h/db"),
            // '@' in a well-formed URL's path or query is not user information.
            ("postgres://h/d@b", "postgres://h/d@b"),
            (
                "postgres://h:5432/db?application_name=a@b",
                "postgres://h:5432/db?application_name=a@b",
            ),
            (
                "postgres://h/db?password=pw&sslmode=require",
                "postgres://h/db?password=***&sslmode=require",
            ),
            (
                "postgres://h/db?pass%77ord=pw",
                "postgres://h/db?pass%77ord=***",
            ),
            ("postgres://h/db?password", "postgres://h/db?password=***"),
            ("postgres://h/db#password=x", "postgres://h/db#password=x"),
            ("postgres:u:pw@h", "postgres:***@h"),
            ("u:pw@h/db", "u:***@h/db"),
            (
                "sqlite:///srv/a:b@c/berth.db",
                "sqlite:///srv/a:b@c/berth.db",
            ),
            ("sqlite:/srv/a:b@c/berth.db", "sqlite:/srv/a:b@c/berth.db"),
            ("sqlite:berth.db?mode=rwc", "sqlite:berth.db?mode=rwc"),
            ("sqlite:b.db?x=http://u:pw@h", "sqlite:b.db?x=http://u:pw@h"),
            ("postgres://u:p#w@h/db", "postgres://u:***@h/db"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), *want, "{url}");
        }
    }
}
