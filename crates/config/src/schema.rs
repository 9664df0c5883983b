//! The table of every configuration key: berth's own, the registry:2 keys it accepts but
//! ignores, and the registry:2 features it does not have yet.
//!
//! The table is not written here: `section!` and `choice!` (in `macros.rs`) build it from the
//! model's sections, one entry per field, with the registry:2 keys each section lists beside
//! its fields. The loader walks the file against it (so that every unknown key is reported,
//! not only the first), maps environment variable names onto it, and `explain` takes each
//! key's one-line meaning from it.

mod macros;
mod value;

pub(crate) use macros::{choice, key_option, section};
pub(crate) use value::{
    ConfigValue, DebugField, NoSettings, Problems, Section, Via, explain_field, parsed_value,
};

use crate::model::Config;

/// What a key is.
pub(crate) enum Kind {
    /// A mapping of further keys.
    Section(&'static [Key]),
    /// A value; `EnvValue` says how an environment variable's text becomes a YAML value.
    Leaf(EnvValue),
    /// A mapping whose keys are chosen by the user (`log.fields`, `http.headers`).
    Map(MapKind),
    /// A list of sections, each with these keys (`notifications.endpoints`): `Vec<T>` of a
    /// `section!`. Only the file can set it; paths name elements as `key[0].name`.
    List(&'static [Key]),
    /// A mapping from names the user chooses to sections with these keys (`webhooks`):
    /// `BTreeMap<String, T>` of a `section!`. Only the file can set it; paths name entries
    /// as `key.name.key`.
    Named(&'static [Key]),
    /// A choice of one mode among several, each with its own section of keys, as registry:2
    /// writes `auth`: the mode's name as a string (`auth: none`), or a mapping whose only key
    /// is the mode (`auth: {htpasswd: {realm: ..., path: ...}}`). The keys here are the
    /// modes: sections, or `Unsupported` for registry:2 modes berth does not have.
    Choice(&'static [Key]),
    /// A registry:2 key that means nothing for berth: accepted, with the doc as the warning
    /// (no warning when the doc is empty).
    Ignored,
    /// registry:2's `http.net`: "tcp" is what berth does anyway, "unix" is not supported.
    Net,
    /// A registry:2 feature berth does not have yet; ignoring it would change behaviour or
    /// security, so it is an error. The doc says what berth does instead.
    Unsupported,
    /// A registry:2 setting berth does not have, whose listed values (compared ignoring case;
    /// "" also matches an empty value, "false" also 0) ask for what berth does anyway: those
    /// are accepted with the doc as the warning, any other value is `Unsupported`. registry:2
    /// files often spell out such defaults (`encrypt: false`), and they must not be errors.
    UnsupportedUnless(&'static [&'static str]),
}

#[derive(Clone, Copy)]
pub(crate) enum EnvValue {
    Text,
    Bool,
    /// A comma-separated list.
    List,
}

#[derive(Clone, Copy)]
pub(crate) enum MapKind {
    /// `REGISTRY_LOG_FIELDS_SERVICE` sets field `service`.
    Fields,
    /// `REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS` sets header `X-Frame-Options` to one value.
    Headers,
}

pub(crate) struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// The one-line meaning shown by `explain`, or the reason for `Ignored`/`Unsupported`.
    pub doc: &'static str,
    /// A credential: `explain` shows only whether it is set, and no error message quotes it.
    pub secret: bool,
}

impl Key {
    const fn other(name: &'static str, kind: Kind, doc: &'static str) -> Key {
        Key {
            name,
            kind,
            doc,
            secret: false,
        }
    }
}

/// A registry:2 key that means nothing for berth: accepted, with `why` as the warning (none
/// when `why` is empty).
pub(crate) const fn ignored(name: &'static str, why: &'static str) -> Key {
    Key::other(name, Kind::Ignored, why)
}

/// A registry:2 feature berth does not have yet: an error, explained by `why`.
pub(crate) const fn unsupported(name: &'static str, why: &'static str) -> Key {
    Key::other(name, Kind::Unsupported, why)
}

/// A registry:2 setting berth does not have, harmless at the `harmless` values.
pub(crate) const fn unsupported_unless(
    name: &'static str,
    harmless: &'static [&'static str],
    why: &'static str,
) -> Key {
    Key::other(name, Kind::UnsupportedUnless(harmless), why)
}

/// registry:2's `http.net`.
pub(crate) const fn net(name: &'static str, why: &'static str) -> Key {
    Key::other(name, Kind::Net, why)
}

/// Every key, from the model's sections.
pub(crate) static ROOT: &[Key] = Config::KEYS;

pub(crate) fn find<'a>(keys: &'a [Key], name: &str) -> Option<&'a Key> {
    keys.iter().find(|k| k.name == name)
}

/// The keys below a key: a section's keys, a choice's modes, or the keys of each element
/// of a list or map of sections.
pub(crate) fn children(key: &Key) -> &'static [Key] {
    match key.kind {
        Kind::Section(children)
        | Kind::Choice(children)
        | Kind::List(children)
        | Kind::Named(children) => children,
        _ => &[],
    }
}

/// One step of the path to a value in the file: a key, or an element of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// The path `steps` lead to, written as problems name it: `notifications.endpoints[0].url`.
pub(crate) fn path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The key a value at `steps` belongs to: list indices, the names of a map of sections'
/// entries and the names of a map's entries lead to the list's or map's key itself.
pub(crate) fn key_at(steps: &[Step]) -> Option<&'static Key> {
    let mut keys = ROOT;
    let mut found: Option<&'static Key> = None;
    // Whether the next key is an entry's name rather than a key of the table.
    let mut entry_name = false;
    for step in steps {
        match step {
            Step::Index(_) => {}
            Step::Key(_) if entry_name => entry_name = false,
            Step::Key(name) => {
                let key = find(keys, name)?;
                keys = children(key);
                entry_name = matches!(key.kind, Kind::Named(_) | Kind::Map(_));
                found = Some(key);
            }
        }
    }
    found
}

/// The key at a dotted path of the table, e.g. "http.tls.key", "auth.htpasswd.realm", or
/// "webhooks.url" for the `url` of every webhook (entries' names and indices left out).
pub(crate) fn at(path: &str) -> Option<&'static Key> {
    let mut keys = ROOT;
    let mut found = None;
    for name in path.split('.') {
        let key = find(keys, name)?;
        keys = children(key);
        found = Some(key);
    }
    found
}

/// The names of the keys berth accepts among `keys`, or of the modes among a choice's.
pub(crate) fn accepted(keys: &[Key]) -> Vec<&'static str> {
    keys.iter()
        .filter(|k| {
            !matches!(
                k.kind,
                Kind::Ignored | Kind::Unsupported | Kind::UnsupportedUnless(_) | Kind::Net
            )
        })
        .map(|k| k.name)
        .collect()
}

/// The message for a mode that is not among a choice's `modes`.
pub(crate) fn unknown_mode(modes: &[Key], name: &str) -> String {
    let accepted = accepted(modes);
    format!(
        "unknown mode {name:?}; expected one of {}{}",
        accepted.join(", "),
        suggestion(&accepted, name)
    )
}

/// The error for a mode that a choice does not have: registry:2's modes that berth lacks are
/// "not supported yet", any other name is unknown.
pub(crate) fn not_a_mode(modes: &[Key], name: &str) -> String {
    match find(modes, name) {
        Some(key) if !matches!(key.kind, Kind::Section(_)) => {
            format!("not supported yet: {}", key.doc)
        }
        _ => unknown_mode(modes, name),
    }
}

/// `prefix.name`, or `name` at the top.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The message for a key that is not in `keys`: what berth does accept there, and the
/// nearest of those names when the key looks like a typo of it.
pub(crate) fn unknown_key(keys: &[Key], name: &str) -> String {
    let accepted = accepted(keys);
    if accepted.is_empty() {
        return "unknown key; this section takes no keys".to_owned();
    }
    format!(
        "unknown key; expected one of {}{}",
        accepted.join(", "),
        suggestion(&accepted, name)
    )
}

/// " (did you mean X?)" when `name` looks like a typo of one of `accepted`, else "".
fn suggestion(accepted: &[&str], name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    // Short names are a few edits from anything; only suggest when the match is close.
    let max_distance = if lower.chars().count() <= 4 { 1 } else { 2 };
    if let Some(near) = accepted
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, _)| *d <= max_distance)
        .min()
        .map(|(_, k)| k)
    {
        format!(" (did you mean {near}?)")
    } else {
        String::new()
    }
}

/// Edit distance counting a swap of two neighbouring letters as one edit, the commonest
/// typo ("hots" for "host").
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between the first i letters of a and the first j of b.
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lower_case_without_separators() {
        // The environment mapping splits names on '_', which only works if no key has one.
        fn check(keys: &[Key], prefix: &str) {
            for key in keys {
                assert!(
                    key.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                    "{prefix}{}",
                    key.name
                );
                check(children(key), &format!("{prefix}{}.", key.name));
            }
        }
        check(ROOT, "");
    }

    #[test]
    fn secrets_are_marked_in_the_table() {
        fn secrets(keys: &[Key], prefix: &str, out: &mut Vec<String>) {
            for key in keys {
                let path = format!("{prefix}{}", key.name);
                if key.secret {
                    assert!(matches!(key.kind, Kind::Leaf(EnvValue::Text)), "{path}");
                    out.push(path.clone());
                }
                secrets(children(key), &format!("{path}."), out);
            }
        }
        let mut found = Vec::new();
        secrets(ROOT, "", &mut found);
        assert_eq!(
            found,
            [
                "auth.berth.ldap.bindpassword",
                "auth.berth.oidc.clientsecret",
                "storage.s3.secretkey",
                "storage.s3.sessiontoken",
                "storage.azure.accountkey",
                "storage.ipfs.bearertoken",
                "webhooks.secret",
                "proxy.password",
                "remotes.password",
                "smtp.password"
            ]
        );
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let storage = match at("storage").unwrap().kind {
            Kind::Section(keys) => keys,
            _ => unreachable!(),
        };
        assert_eq!(
            unknown_key(storage, "filesystm"),
            "unknown key; expected one of filesystem, s3, gcs, azure, ipfs, redirect, delete, maintenance, scrub (did you mean filesystem?)"
        );
        assert_eq!(
            unknown_key(storage, "bogus"),
            "unknown key; expected one of filesystem, s3, gcs, azure, ipfs, redirect, delete, maintenance, scrub"
        );
        let s3 = match at("storage.s3").unwrap().kind {
            Kind::Section(keys) => keys,
            _ => unreachable!(),
        };
        // Ignored and unsupported keys are not offered.
        assert_eq!(
            unknown_key(s3, "endpoint"),
            "unknown key; expected one of bucket, region, regionendpoint, accesskey, secretkey, sessiontoken, rootdirectory, forcepathstyle, secure, chunksize, encrypt, keyid"
        );
        assert!(unknown_key(s3, "bukcet").ends_with("(did you mean bucket?)"));
        assert_eq!(
            unknown_key(ROOT, "foo"),
            "unknown key; expected one of log, http, auth, storage, database, notifications, webhooks, proxy, remotes, virtuals, metrics, gc, retention, smtp"
        );
        assert!(unknown_key(ROOT, "lgo").ends_with("(did you mean log?)"));
        // A choice's modes: registry:2's modes that berth lacks are not offered.
        let modes = children(at("auth").unwrap());
        assert_eq!(
            unknown_mode(modes, "ldap"),
            "unknown mode \"ldap\"; expected one of none, htpasswd, berth"
        );
        assert!(unknown_mode(modes, "htpaswd").ends_with("(did you mean htpasswd?)"));
        assert_eq!(
            unknown_key(children(at("auth.none").unwrap()), "x"),
            "unknown key; this section takes no keys"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("hots", "host"), 1);
    }
}
