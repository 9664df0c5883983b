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

const fn key(name: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        doc,
        secret: false,
    }
}

const fn secret(name: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind: TEXT,
        doc,
        secret: true,
    }
}

const fn section(name: &'static str, keys: &'static [Key], doc: &'static str) -> Key {
    key(name, Kind::Section(keys), doc)
}

const fn choice(name: &'static str, modes: &'static [Key], doc: &'static str) -> Key {
    key(name, Kind::Choice(modes), doc)
}

const fn ignored(name: &'static str, why: &'static str) -> Key {
    key(name, Kind::Ignored, why)
}

const fn unsupported(name: &'static str, why: &'static str) -> Key {
    key(name, Kind::Unsupported, why)
}

const fn unsupported_unless(
    name: &'static str,
    harmless: &'static [&'static str],
    why: &'static str,
) -> Key {
    key(name, Kind::UnsupportedUnless(harmless), why)
}

const TEXT: Kind = Kind::Leaf(EnvValue::Text);
const BOOL: Kind = Kind::Leaf(EnvValue::Bool);

const OTHER_DRIVER: &str = "berth stores blobs on the filesystem, in S3-compatible storage, Google Cloud Storage, Azure Blob Storage or IPFS (storage.filesystem, s3, gcs, azure or ipfs)";

const MULTIPART_COPY: &str = "berth copies objects server-side in one request, and by streaming them above S3's 5 GiB copy limit";

/// registry:2's `storage.s3`, with berth's own `sessiontoken`.
static S3: &[Key] = &[
    key(
        "bucket",
        TEXT,
        "bucket holding blobs and uploads (required)",
    ),
    key(
        "region",
        TEXT,
        "region of the bucket, also used to sign requests to a regionendpoint",
    ),
    key(
        "regionendpoint",
        TEXT,
        "endpoint of an S3-compatible store, e.g. http://127.0.0.1:3900; unset means AWS",
    ),
    key(
        "accesskey",
        TEXT,
        "access key ID; unset uses AWS's usual credential sources (environment, instance profile)",
    ),
    secret("secretkey", "secret access key; required with accesskey"),
    secret(
        "sessiontoken",
        "temporary (STS) session token accompanying accesskey and secretkey",
    ),
    key(
        "rootdirectory",
        TEXT,
        "prefix inside the bucket under which everything is stored; empty means the bucket's root",
    ),
    key(
        "forcepathstyle",
        BOOL,
        "path-style requests (endpoint/bucket/key), which most self-hosted stores need",
    ),
    key(
        "secure",
        BOOL,
        "use https for a regionendpoint written without a scheme",
    ),
    key(
        "chunksize",
        TEXT,
        "multipart upload part size in bytes, from 5242880 (5 MiB) to 5368709120 (5 GiB)",
    ),
    ignored(
        "v4auth",
        "berth always signs requests with AWS Signature Version 4",
    ),
    ignored("multipartcopychunksize", MULTIPART_COPY),
    ignored("multipartcopymaxconcurrency", MULTIPART_COPY),
    ignored("multipartcopythresholdsize", MULTIPART_COPY),
    ignored(
        "loglevel",
        "berth has no separate log level for the object store; use log.level",
    ),
    key(
        "encrypt",
        BOOL,
        "server-side encryption of everything berth writes: SSE-S3, or SSE-KMS when keyid is set",
    ),
    key(
        "keyid",
        TEXT,
        "KMS key (ID or ARN) for SSE-KMS; needs encrypt: true",
    ),
    unsupported_unless(
        "skipverify",
        &["false"],
        "berth always verifies the store's TLS certificate; add its CA to the system's trust store",
    ),
    unsupported_unless(
        "storageclass",
        &["STANDARD", "NONE"],
        "berth stores objects in the bucket's default storage class; use a lifecycle rule to change it",
    ),
    unsupported_unless(
        "objectacl",
        &["private"],
        "berth sets no ACL on objects, which keeps them private",
    ),
    unsupported_unless(
        "usedualstack",
        &["false"],
        "berth uses the region's standard endpoint; set regionendpoint to a dual-stack endpoint instead",
    ),
    unsupported_unless(
        "accelerate",
        &["false"],
        "berth does not use S3 Transfer Acceleration",
    ),
];

/// registry:2's `storage.gcs`, with berth's own `endpoint`.
static GCS: &[Key] = &[
    key(
        "bucket",
        TEXT,
        "bucket holding blobs and uploads (required)",
    ),
    key(
        "keyfile",
        TEXT,
        "service account key file (JSON); unset uses application default credentials",
    ),
    key(
        "endpoint",
        TEXT,
        "another endpoint than https://storage.googleapis.com, e.g. an emulator's",
    ),
    key(
        "rootdirectory",
        TEXT,
        "prefix inside the bucket under which everything is stored",
    ),
    key(
        "chunksize",
        TEXT,
        "size in bytes of the parts an upload is composed from, at least 262144 (256 KiB)",
    ),
    unsupported(
        "credentials",
        "berth reads Google credentials from storage.gcs.keyfile or the application default credentials",
    ),
];

/// registry:2's `storage.azure` (with distribution 3's `serviceurl`), and berth's own
/// `chunksize`.
static AZURE: &[Key] = &[
    key("accountname", TEXT, "storage account name (required)"),
    secret(
        "accountkey",
        "the account's shared key; unset uses Azure's default credentials (environment, managed identity)",
    ),
    key(
        "container",
        TEXT,
        "container holding blobs and uploads (required)",
    ),
    key(
        "realm",
        TEXT,
        "domain of the blob service, core.windows.net unless a sovereign cloud",
    ),
    key(
        "serviceurl",
        TEXT,
        "the blob service URL, instead of https://<accountname>.blob.<realm> (e.g. Azurite's)",
    ),
    key(
        "rootdirectory",
        TEXT,
        "prefix inside the container under which everything is stored",
    ),
    key(
        "chunksize",
        TEXT,
        "size in bytes of the blocks an upload is cut into, at least 1048576 (1 MiB)",
    ),
    unsupported(
        "credentials",
        "berth uses storage.azure.accountkey, or Azure's default credentials when it is unset",
    ),
];

/// berth's own `storage.ipfs`.
static IPFS: &[Key] = &[
    key(
        "api",
        TEXT,
        "the IPFS node's RPC API URL (Kubo's, without /api/v0), e.g. http://127.0.0.1:5001; user:password@ for Basic auth",
    ),
    secret(
        "bearertoken",
        "a bearer token sent to the RPC API (when it is behind an authenticating proxy)",
    ),
    key(
        "pin",
        BOOL,
        "pin committed blobs so that the node's GC keeps them",
    ),
    key(
        "gateway",
        TEXT,
        "a gateway URL to redirect blob downloads to (/ipfs/<cid>); unset streams them through berth",
    ),
    key(
        "timeout",
        TEXT,
        "how long any call to the node may take (content lookups included)",
    ),
    key(
        "rootdirectory",
        TEXT,
        "the node's MFS directory where uploads are staged",
    ),
];

/// berth's own `storage.scrub`.
static SCRUB: &[Key] = &[
    key(
        "enabled",
        BOOL,
        "re-hash stored blobs in the background and quarantine those whose bytes changed",
    ),
    key("interval", TEXT, "how often the scrub runs"),
    key(
        "rate",
        TEXT,
        "the most bytes per second it reads (e.g. 20MiB)",
    ),
    key(
        "reverify",
        TEXT,
        "a blob is verified again once its last verification is this old",
    ),
];

/// registry:2's `auth`, with berth's own `berth` mode.
static AUTH: &[Key] = &[
    section(
        "none",
        &[],
        "no authentication: anyone who can reach berth can push, pull and delete",
    ),
    section(
        "htpasswd",
        &[
            key(
                "realm",
                TEXT,
                "realm named in Basic authentication challenges (required)",
            ),
            key(
                "path",
                TEXT,
                "htpasswd file of users and their bcrypt password hashes (required); read when berth starts",
            ),
        ],
        "registry:2's htpasswd mode: Basic authentication against an htpasswd file",
    ),
    section(
        "berth",
        &[
            key(
                "service",
                TEXT,
                "service name in challenges and the audience of issued tokens",
            ),
            key("issuer", TEXT, "issuer (iss) of issued tokens"),
            key(
                "realm",
                TEXT,
                "token endpoint URL advertised in challenges; unset means /token under each request's public base URL",
            ),
            key(
                "tokenexpiry",
                TEXT,
                "lifetime of issued registry tokens, from 30s to 24h",
            ),
            key(
                "refreshtokenexpiry",
                TEXT,
                "lifetime of refresh tokens (docker login's identity tokens), from 1h to 8760h",
            ),
            key(
                "key",
                TEXT,
                "PEM private key (EC P-256 or RSA) that signs tokens, with certificate; unset means berth generates one and keeps it in its database",
            ),
            key(
                "certificate",
                TEXT,
                "PEM certificate of key, for registry:2's auth.token.rootcertbundle; required with key",
            ),
            key(
                "auditretention",
                TEXT,
                "how long audit events are kept (default 2160h, 90 days); 0 keeps them forever",
            ),
        ],
        "berth's own users and Docker token service (the default)",
    ),
    unsupported(
        "token",
        "berth is its own token server: use auth.berth, or point registry:2 at berth's /token",
    ),
    unsupported("silly", "a development-only mode; use auth: none"),
];

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
    choice(
        "auth",
        AUTH,
        "how clients authenticate: berth (the default: berth's own users and tokens), htpasswd or none",
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
                        "directory holding blobs, uploads and the default SQLite database; with storage.s3 only the database",
                    ),
                    ignored(
                        "maxthreads",
                        "berth does not limit filesystem threads the way registry:2's Go runtime needed",
                    ),
                ],
                "",
            ),
            section(
                "s3",
                S3,
                "store blobs in an S3-compatible bucket; unset stores them under storage.filesystem",
            ),
            section("gcs", GCS, "store blobs in a Google Cloud Storage bucket"),
            section(
                "azure",
                AZURE,
                "store blobs in an Azure Blob Storage container",
            ),
            section(
                "ipfs",
                IPFS,
                "store blobs in IPFS through a node's RPC API (Kubo), pinned, their CIDs in the database",
            ),
            section(
                "redirect",
                &[
                    key(
                        "disable",
                        BOOL,
                        "stream blob downloads through berth; false redirects clients to presigned storage.s3, gcs or azure URLs",
                    ),
                    key(
                        "expiry",
                        TEXT,
                        "how long a presigned URL that a client is redirected to stays valid",
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
            section("scrub", SCRUB, "background verification of stored blobs"),
            ignored("cache", "berth's metadata database is its cache"),
            unsupported("swift", OTHER_DRIVER),
            unsupported("oss", OTHER_DRIVER),
            unsupported("inmemory", OTHER_DRIVER),
        ],
        "",
    ),
    section(
        "database",
        &[
            key(
                "url",
                TEXT,
                "metadata database, a sqlite: or postgres:// URL; unset means berth.db in storage.filesystem.rootdirectory",
            ),
            key(
                "maxconnections",
                TEXT,
                "PostgreSQL connection pool size (ignored for SQLite)",
            ),
            key(
                "connecttimeout",
                TEXT,
                "how long a request waits for a database connection before it is answered 503",
            ),
        ],
        "",
    ),
    ignored(
        "health",
        "berth serves /healthz and /readyz itself; this section configures nothing in berth",
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

/// The keys below a key: a section's keys, or a choice's modes.
pub(crate) fn children(key: &Key) -> &'static [Key] {
    match key.kind {
        Kind::Section(children) | Kind::Choice(children) => children,
        _ => &[],
    }
}

/// The key at a dotted path, e.g. "http.tls.key" or "auth.htpasswd.realm".
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
                "storage.s3.secretkey",
                "storage.s3.sessiontoken",
                "storage.azure.accountkey",
                "storage.ipfs.bearertoken"
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
            "unknown key; expected one of log, http, auth, storage, database"
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
