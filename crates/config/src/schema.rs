//! The table of every configuration key: berth's own, the registry:2 keys it accepts but
//! ignores, and the registry:2 features it does not have yet.
//!
//! The loader walks the file against this table (so that every unknown key is reported, not
//! only the first), maps environment variable names onto it, and `explain` takes each key's
//! one-line meaning from it. The typed model in `model.rs` must have the same keys; a test
//! checks that the two agree.

/// What a key is.
pub(crate) enum Kind {
    /// A mapping of further keys.
    Section(&'static [Key]),
    /// A value; `EnvValue` says how an environment variable's text becomes a YAML value.
    Leaf(EnvValue),
    /// A mapping whose keys are chosen by the user (`log.fields`, `http.headers`).
    Map(MapKind),
    /// A registry:2 key that means nothing for berth: accepted, with the doc as the warning
    /// (no warning when the doc is empty).
    Ignored,
    /// registry:2's `http.net`: "tcp" is what berth does anyway, "unix" is not supported.
    Net,
    /// A registry:2 feature berth does not have yet; ignoring it would change behaviour or
    /// security, so it is an error. The doc says what berth does instead.
    Unsupported,
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
}

const fn key(name: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key { name, kind, doc }
}

const fn section(name: &'static str, keys: &'static [Key], doc: &'static str) -> Key {
    key(name, Kind::Section(keys), doc)
}

const fn ignored(name: &'static str, why: &'static str) -> Key {
    key(name, Kind::Ignored, why)
}

const fn unsupported(name: &'static str, why: &'static str) -> Key {
    key(name, Kind::Unsupported, why)
}

const TEXT: Kind = Kind::Leaf(EnvValue::Text);
const BOOL: Kind = Kind::Leaf(EnvValue::Bool);

const OTHER_DRIVER: &str = "berth stores data on the local filesystem only (storage.filesystem)";

pub(crate) static ROOT: &[Key] = &[
    ignored("version", ""),
    section(
        "log",
        &[
            key(
                "level",
                TEXT,
                "least severe level logged: error, warn, info, debug or trace",
            ),
            key("formatter", TEXT, "log line format: text or json"),
            key(
                "fields",
                Kind::Map(MapKind::Fields),
                "static fields added to every log line",
            ),
            section(
                "accesslog",
                &[key(
                    "disabled",
                    BOOL,
                    "turns off the one-line-per-request access log",
                )],
                "",
            ),
            ignored(
                "hooks",
                "berth has no log hooks; collect its log output instead",
            ),
            ignored(
                "reportcaller",
                "berth's log lines do not record the calling function",
            ),
        ],
        "",
    ),
    section(
        "http",
        &[
            key(
                "addr",
                TEXT,
                "address to listen on; \":5000\" means all interfaces",
            ),
            key(
                "host",
                TEXT,
                "public base URL for the URLs berth returns; unset uses each request's Host",
            ),
            key(
                "relativeurls",
                BOOL,
                "return relative URLs in Location headers",
            ),
            section(
                "tls",
                &[
                    key(
                        "certificate",
                        TEXT,
                        "PEM certificate chain file to serve HTTPS with",
                    ),
                    key("key", TEXT, "PEM private key file of the certificate"),
                    key(
                        "minimumtls",
                        TEXT,
                        "lowest TLS version accepted: tls1.2 or tls1.3",
                    ),
                    unsupported("clientcas", "berth cannot verify client certificates"),
                    unsupported(
                        "letsencrypt",
                        "obtain the certificate elsewhere (e.g. certbot, cert-manager) and set certificate and key",
                    ),
                    unsupported(
                        "ciphersuites",
                        "berth uses the TLS library's default cipher suites",
                    ),
                ],
                "serve HTTPS with this certificate; plain HTTP when unset",
            ),
            key(
                "draintimeout",
                TEXT,
                "how long shutdown waits for requests in flight",
            ),
            key(
                "trustedproxies",
                Kind::Leaf(EnvValue::List),
                "peers whose X-Forwarded-Proto and X-Forwarded-Host are honoured",
            ),
            key(
                "headers",
                Kind::Map(MapKind::Headers),
                "extra headers added to every response",
            ),
            key("net", Kind::Net, "berth always listens on TCP"),
            unsupported("prefix", "berth serves the registry API at /v2/ only"),
            ignored(
                "secret",
                "berth keeps upload state in its database, so there is nothing to sign",
            ),
            ignored(
                "debug",
                "berth has no debug server; metrics will come later",
            ),
            ignored("http2", "berth does not make HTTP/2 configurable"),
        ],
        "",
    ),
    section(
        "storage",
        &[
            section(
                "filesystem",
                &[
                    key(
                        "rootdirectory",
                        TEXT,
                        "directory holding blobs, uploads and (by default) the metadata database",
                    ),
                    ignored(
                        "maxthreads",
                        "berth does not limit filesystem threads the way registry:2's Go runtime needed",
                    ),
                ],
                "",
            ),
            section(
                "delete",
                &[key(
                    "enabled",
                    BOOL,
                    "allow deleting manifests and blobs through the API",
                )],
                "",
            ),
            section(
                "maintenance",
                &[
                    section(
                        "uploadpurging",
                        &[
                            key("enabled", BOOL, "periodically remove abandoned uploads"),
                            key(
                                "age",
                                TEXT,
                                "how old an upload must be to count as abandoned",
                            ),
                            key(
                                "interval",
                                TEXT,
                                "how often abandoned uploads are looked for",
                            ),
                            key("dryrun", BOOL, "only log the uploads that would be removed"),
                        ],
                        "",
                    ),
                    section(
                        "readonly",
                        &[key(
                            "enabled",
                            BOOL,
                            "refuse pushes and deletes; serve pulls only",
                        )],
                        "",
                    ),
                ],
                "",
            ),
            ignored("cache", "berth's metadata database is its cache"),
            ignored("redirect", "redirects only apply to object-store drivers"),
            unsupported("s3", OTHER_DRIVER),
            unsupported("gcs", OTHER_DRIVER),
            unsupported("azure", OTHER_DRIVER),
            unsupported("swift", OTHER_DRIVER),
            unsupported("oss", OTHER_DRIVER),
            unsupported("inmemory", OTHER_DRIVER),
        ],
        "",
    ),
    section(
        "database",
        &[key(
            "url",
            TEXT,
            "metadata database (sqlite: only); unset means berth.db in the storage root directory",
        )],
        "",
    ),
    ignored(
        "health",
        "berth serves /healthz and /readyz itself; this section configures nothing in berth",
    ),
    unsupported(
        "auth",
        "berth has no authentication; run it behind an authenticating reverse proxy",
    ),
    unsupported("proxy", "berth cannot act as a pull-through cache"),
    unsupported("notifications", "berth sends no event notifications"),
    unsupported("redis", "berth keeps its state in its metadata database"),
    unsupported("validation", "berth has no manifest validation settings"),
    unsupported(
        "compatibility",
        "berth has no schema1 compatibility settings",
    ),
    unsupported(
        "middleware",
        "berth has no storage, registry or repository middleware",
    ),
];

pub(crate) fn find<'a>(keys: &'a [Key], name: &str) -> Option<&'a Key> {
    keys.iter().find(|k| k.name == name)
}

/// The key at a dotted path, e.g. "http.tls.key".
pub(crate) fn at(path: &str) -> Option<&'static Key> {
    let mut keys = ROOT;
    let mut found = None;
    for name in path.split('.') {
        let key = find(keys, name)?;
        keys = match key.kind {
            Kind::Section(children) => children,
            _ => &[],
        };
        found = Some(key);
    }
    found
}

/// The message for a key that is not in `keys`: what berth does accept there, and the
/// nearest of those names when the key looks like a typo of it.
pub(crate) fn unknown_key(keys: &[Key], name: &str) -> String {
    let accepted: Vec<&str> = keys
        .iter()
        .filter(|k| !matches!(k.kind, Kind::Ignored | Kind::Unsupported | Kind::Net))
        .map(|k| k.name)
        .collect();
    let mut message = format!("unknown key; expected one of {}", accepted.join(", "));
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
        message.push_str(&format!(" (did you mean {near}?)"));
    }
    message
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
                if let Kind::Section(children) = key.kind {
                    check(children, &format!("{prefix}{}.", key.name));
                }
            }
        }
        check(ROOT, "");
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let storage = match at("storage").unwrap().kind {
            Kind::Section(keys) => keys,
            _ => unreachable!(),
        };
        assert_eq!(
            unknown_key(storage, "filesystm"),
            "unknown key; expected one of filesystem, delete, maintenance (did you mean filesystem?)"
        );
        assert_eq!(
            unknown_key(storage, "bogus"),
            "unknown key; expected one of filesystem, delete, maintenance"
        );
        assert_eq!(
            unknown_key(ROOT, "foo"),
            "unknown key; expected one of log, http, storage, database"
        );
        assert!(unknown_key(ROOT, "lgo").ends_with("(did you mean log?)"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("hots", "host"), 1);
    }
}
