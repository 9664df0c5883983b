use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::{
    AuthConfig, BerthAuth, HtpasswdAuth, LogFormat, LogLevel, S3Config, TlsVersion,
};

fn vars(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_yaml(yaml: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let mut loader = Loader::default();
    let tree = loader.read_yaml(Path::new("config.yml"), yaml);
    loader.finish(tree, vars(env))
}

fn ok(yaml: &str, env: &[(&str, &str)]) -> Loaded {
    load_yaml(yaml, env).unwrap_or_else(|e| panic!("expected to load, got:\n{e}"))
}

fn err(yaml: &str, env: &[(&str, &str)]) -> ConfigError {
    match load_yaml(yaml, env) {
        Ok(loaded) => panic!("expected problems, loaded {:?}", loaded.config),
        Err(e) => e,
    }
}

/// The problem at `path`, failing with the full list when there is none.
fn problem<'a>(error: &'a ConfigError, path: &str) -> &'a Problem {
    error
        .problems
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no problem at {path}; problems:\n{error}"))
}

/// The effective value of a setting as `explain` shows it.
fn setting(loaded: &Loaded, path: &str) -> String {
    explain::settings(&loaded.config)
        .into_iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| panic!("no setting {path}"))
        .value
}

fn env_source(name: &str) -> Source {
    Source::Env(name.to_owned())
}

const STOCK_REGISTRY_CONFIG: &str = "\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
";

#[test]
fn defaults() {
    let loaded = load(None, Vec::new()).unwrap();
    let config = &loaded.config;
    assert_eq!(*config, Config::default());
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.log.formatter, LogFormat::Text);
    assert!(!config.log.accesslog.disabled);
    assert!(config.log.fields.is_empty());
    assert_eq!(
        config.http.addr.socket_addr(),
        "0.0.0.0:5000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.http.addr.to_string(), ":5000");
    assert_eq!(config.http.host, None);
    assert!(!config.http.relativeurls);
    assert_eq!(config.http.tls, None);
    assert_eq!(config.http.draintimeout, Duration::from_secs(30));
    assert!(config.http.trustedproxies.is_empty());
    assert!(config.http.headers.is_empty());
    assert_eq!(
        config.storage.filesystem.rootdirectory,
        PathBuf::from("./data")
    );
    assert!(!config.storage.delete.enabled);
    let purging = &config.storage.maintenance.uploadpurging;
    assert!(purging.enabled);
    assert_eq!(purging.age, Duration::from_secs(168 * 3600));
    assert_eq!(purging.interval, Duration::from_secs(24 * 3600));
    assert!(!purging.dryrun);
    assert!(!config.storage.maintenance.readonly.enabled);
    assert_eq!(config.storage.s3, None);
    assert!(config.storage.redirect.disable);
    assert_eq!(config.storage.redirect.expiry, Duration::from_secs(20 * 60));
    assert_eq!(config.database.url, None);
    assert_eq!(config.database_url(), "sqlite://./data/berth.db");
    assert_eq!(config.redacted_database_url(), "sqlite://./data/berth.db");
    assert_eq!(config.database.maxconnections, 16);
    assert_eq!(config.database.connecttimeout, Duration::from_secs(5));
    assert_eq!(config.auth, AuthConfig::Berth(BerthAuth::default()));
    assert!(loaded.warnings.is_empty());
    assert!(loaded.sources.values().all(|s| *s == Source::Default));
    assert!(loaded.sources.contains_key("http.addr"));
    assert!(loaded.sources.contains_key("http.tls"));
    assert!(loaded.sources.contains_key("storage.s3"));
}

#[test]
fn an_empty_file_is_all_defaults() {
    for yaml in ["", "# nothing\n", "---\n"] {
        assert_eq!(ok(yaml, &[]).config, Config::default());
    }
}

#[test]
fn the_stock_registry_config_loads_with_warnings_only() {
    let loaded = ok(STOCK_REGISTRY_CONFIG, &[]);
    let config = &loaded.config;
    assert_eq!(
        config.log.fields.get("service").map(String::as_str),
        Some("registry")
    );
    assert_eq!(
        config.storage.filesystem.rootdirectory,
        PathBuf::from("/var/lib/registry")
    );
    assert_eq!(
        config.http.addr.socket_addr(),
        "0.0.0.0:5000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.http.headers.get("X-Content-Type-Options"),
        Some(&vec!["nosniff".to_owned()])
    );
    assert_eq!(config.database_url(), "sqlite:///var/lib/registry/berth.db");

    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("storage.cache: ignored: "))
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("health: ignored: "))
    );
    assert!(!loaded.warnings.iter().any(|w| w.contains("version")));

    assert_eq!(
        loaded.sources["storage.filesystem.rootdirectory"],
        Source::File
    );
    assert_eq!(
        loaded.sources["http.headers.X-Content-Type-Options"],
        Source::File
    );
    assert_eq!(loaded.sources["log.fields.service"], Source::File);
    assert_eq!(loaded.sources["log.level"], Source::Default);
}

#[test]
fn a_docker_compose_environment_applies() {
    let loaded = ok(
        STOCK_REGISTRY_CONFIG,
        &[
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_HTTP_ADDR", "0.0.0.0:5001"),
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
        ],
    );
    assert!(loaded.config.storage.delete.enabled);
    assert_eq!(
        loaded.sources["storage.delete.enabled"],
        env_source("REGISTRY_STORAGE_DELETE_ENABLED")
    );
    assert_eq!(loaded.config.http.addr.socket_addr().port(), 5001);
}

#[test]
fn environment_variables_map_onto_keys() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "REGISTRY_HTTP_ADDR",
            "127.0.0.1:0",
            "http.addr",
            "127.0.0.1:0",
        ),
        (
            "REGISTRY_HTTP_HOST",
            "https://r.example.com/",
            "http.host",
            "https://r.example.com",
        ),
        (
            "REGISTRY_HTTP_RELATIVEURLS",
            "TRUE",
            "http.relativeurls",
            "true",
        ),
        (
            "REGISTRY_HTTP_DRAINTIMEOUT",
            "1m30s",
            "http.draintimeout",
            "1m30s",
        ),
        ("REGISTRY_LOG_LEVEL", "debug", "log.level", "debug"),
        ("REGISTRY_LOG_FORMATTER", "json", "log.formatter", "json"),
        (
            "REGISTRY_LOG_ACCESSLOG_DISABLED",
            "1",
            "log.accesslog.disabled",
            "true",
        ),
        (
            "REGISTRY_LOG_FIELDS_ENVIRONMENT",
            "prod",
            "log.fields.environment",
            "prod",
        ),
        (
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            "/srv/berth",
            "storage.filesystem.rootdirectory",
            "/srv/berth",
        ),
        (
            "REGISTRY_STORAGE_DELETE_ENABLED",
            "true",
            "storage.delete.enabled",
            "true",
        ),
        (
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED",
            "false",
            "storage.maintenance.uploadpurging.enabled",
            "false",
        ),
        (
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE",
            "1h",
            "storage.maintenance.uploadpurging.age",
            "1h",
        ),
        (
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL",
            "30m",
            "storage.maintenance.uploadpurging.interval",
            "30m",
        ),
        (
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN",
            "True",
            "storage.maintenance.uploadpurging.dryrun",
            "true",
        ),
        (
            "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED",
            "true",
            "storage.maintenance.readonly.enabled",
            "true",
        ),
        (
            "BERTH_DATABASE_URL",
            "sqlite:///tmp/b.db",
            "database.url",
            "sqlite:///tmp/b.db",
        ),
        (
            "BERTH_DATABASE_URL",
            "postgres://berth:hunter2@db:5432/berth",
            "database.url",
            "postgres://berth:***@db:5432/berth",
        ),
        (
            "BERTH_DATABASE_MAXCONNECTIONS",
            "64",
            "database.maxconnections",
            "64",
        ),
        (
            "BERTH_DATABASE_CONNECTTIMEOUT",
            "1500ms",
            "database.connecttimeout",
            "1s500ms",
        ),
        (
            "REGISTRY_STORAGE_REDIRECT_DISABLE",
            "1",
            "storage.redirect.disable",
            "true",
        ),
        (
            "BERTH_STORAGE_REDIRECT_EXPIRY",
            "1h",
            "storage.redirect.expiry",
            "1h",
        ),
        (
            "BERTH_HTTP_TRUSTEDPROXIES",
            "10.0.0.0/8,127.0.0.1",
            "http.trustedproxies",
            "[10.0.0.0/8, 127.0.0.1/32]",
        ),
        (
            "REGISTRY_HTTP_HEADERS_X_CONTENT_TYPE_OPTIONS",
            "nosniff",
            "http.headers.X-Content-Type-Options",
            "[nosniff]",
        ),
        ("BERTH_LOG_LEVEL", "trace", "log.level", "trace"),
        ("BERTH_AUTH", "berth", "auth", "berth"),
        ("REGISTRY_AUTH", "BERTH", "auth", "berth"),
        (
            "BERTH_AUTH_BERTH_SERVICE",
            "registry.example.com",
            "auth.berth.service",
            "registry.example.com",
        ),
        (
            "REGISTRY_AUTH_BERTH_ISSUER",
            "https://registry.example.com",
            "auth.berth.issuer",
            "https://registry.example.com",
        ),
        (
            "BERTH_AUTH_BERTH_REALM",
            "https://registry.example.com/token/",
            "auth.berth.realm",
            "https://registry.example.com/token",
        ),
        (
            "BERTH_AUTH_BERTH_TOKENEXPIRY",
            "10m",
            "auth.berth.tokenexpiry",
            "10m",
        ),
        (
            "BERTH_AUTH_BERTH_REFRESHTOKENEXPIRY",
            "8760h",
            "auth.berth.refreshtokenexpiry",
            "8760h",
        ),
    ];
    for (var, value, path, want) in cases {
        let loaded =
            load_yaml("", &[(var, value)]).unwrap_or_else(|e| panic!("{var}={value}: {e}"));
        assert_eq!(setting(&loaded, path), *want, "{var}={value}");
        assert_eq!(loaded.sources[*path], env_source(var), "{var}");
        assert!(loaded.warnings.is_empty(), "{var}: {:?}", loaded.warnings);
    }
}

#[test]
fn tls_from_the_environment() {
    let loaded = ok(
        "",
        &[
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/certs/tls.crt"),
            ("REGISTRY_HTTP_TLS_KEY", "/certs/tls.key"),
            ("REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.3"),
        ],
    );
    let tls = loaded.config.http.tls.as_ref().unwrap();
    assert_eq!(tls.certificate, PathBuf::from("/certs/tls.crt"));
    assert_eq!(tls.key, PathBuf::from("/certs/tls.key"));
    assert_eq!(tls.minimumtls, Some(TlsVersion::Tls13));
    assert_eq!(
        loaded.sources["http.tls.key"],
        env_source("REGISTRY_HTTP_TLS_KEY")
    );
    assert!(!loaded.sources.contains_key("http.tls"));

    // A certificate without a key is caught, and blamed on the variable that made tls exist.
    let error = err("", &[("REGISTRY_HTTP_TLS_CERTIFICATE", "/certs/tls.crt")]);
    assert_eq!(error.problems.len(), 1, "{error}");
    let p = problem(&error, "http.tls.key");
    assert_eq!(p.message, "required when http.tls is set");
    assert_eq!(p.source, env_source("REGISTRY_HTTP_TLS_CERTIFICATE"));
}

#[test]
fn tls_from_the_file() {
    let loaded = ok(
        "http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    minimumtls: tls1.2\n",
        &[],
    );
    let tls = loaded.config.http.tls.unwrap();
    assert_eq!(
        (tls.certificate, tls.key),
        ("/c.pem".into(), "/k.pem".into())
    );
    assert_eq!(tls.minimumtls, Some(TlsVersion::Tls12));
    assert_eq!(loaded.sources["http.tls.minimumtls"], Source::File);

    let error = err("http:\n  tls:\n", &[]);
    assert_eq!(problem(&error, "http.tls.certificate").source, Source::File);
    assert_eq!(
        problem(&error, "http.tls.key").message,
        "required when http.tls is set"
    );
}

#[test]
fn precedence_is_berth_env_then_registry_env_then_file_then_default() {
    let yaml = "http:\n  addr: 127.0.0.1:1000\n";
    let registry = ("REGISTRY_HTTP_ADDR", "127.0.0.1:2000");
    let berth = ("BERTH_HTTP_ADDR", "127.0.0.1:3000");
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, Env, u16, Source)] = &[
        ("", &[], 5000, Source::Default),
        (yaml, &[], 1000, Source::File),
        (yaml, &[registry], 2000, env_source("REGISTRY_HTTP_ADDR")),
        (
            yaml,
            &[registry, berth],
            3000,
            env_source("BERTH_HTTP_ADDR"),
        ),
        (
            yaml,
            &[berth, registry],
            3000,
            env_source("BERTH_HTTP_ADDR"),
        ),
        ("", &[berth], 3000, env_source("BERTH_HTTP_ADDR")),
    ];
    for (yaml, env, port, source) in cases {
        let loaded = ok(yaml, env);
        assert_eq!(
            loaded.config.http.addr.socket_addr().port(),
            *port,
            "{env:?}"
        );
        assert_eq!(loaded.sources["http.addr"], *source, "{env:?}");
    }
}

#[test]
fn an_overridden_bad_value_is_not_reported() {
    let loaded = ok(
        "http:\n  addr: nonsense\n",
        &[("REGISTRY_HTTP_ADDR", ":6000")],
    );
    assert_eq!(loaded.config.http.addr.socket_addr().port(), 6000);
}

#[test]
fn unknown_keys_in_the_file_are_all_reported_with_their_paths() {
    let error = err(
        "storage:\n  filesystm:\n    rootdirectory: /x\nhttp:\n  hots: r.example.com\n  tls:\n    cert: a\nfoo: 1\n",
        &[],
    );
    assert_eq!(
        problem(&error, "storage.filesystm").message,
        "unknown key; expected one of filesystem, s3, gcs, azure, ipfs, redirect, delete, maintenance, scrub (did you mean filesystem?)"
    );
    assert!(
        problem(&error, "http.hots")
            .message
            .contains("did you mean host?")
    );
    assert!(
        problem(&error, "http.tls.cert")
            .message
            .starts_with("unknown key; expected one of certificate, key, minimumtls")
    );
    assert!(
        problem(&error, "foo")
            .message
            .starts_with("unknown key; expected one of log, http, auth, storage, database")
    );
    assert!(error.problems.iter().all(|p| p.source == Source::File));
    assert!(
        error
            .to_string()
            .contains("storage.filesystm: unknown key; expected one of")
    );
}

#[test]
fn unknown_environment_variables() {
    // BERTH_ is ours: a typo is an error.
    let error = err("", &[("BERTH_HTTP_ADR", ":5000"), ("BERTH_FOO", "x")]);
    let p = problem(&error, "http.adr");
    assert_eq!(p.source, env_source("BERTH_HTTP_ADR"));
    assert!(p.message.contains("did you mean addr?"), "{}", p.message);
    problem(&error, "foo");

    // REGISTRY_ is shared with other software: a warning.
    let loaded = ok(
        "",
        &[("REGISTRY_FOO_BAR", "x"), ("REGISTRY_HTTP_ADDR_X", "y")],
    );
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().any(|w| w.starts_with("foo: unknown key") && w.contains("(from env REGISTRY_FOO_BAR)")));
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("http.addr takes a single value"))
    );

    // The binary's and the test harnesses' variables are not settings.
    let loaded = ok(
        "",
        &[
            ("BERTH_CONFIG", "/etc/berth.yml"),
            ("BERTH_TEST_SLOW", "1"),
            ("BERTH_BENCH_N", "3"),
        ],
    );
    assert!(loaded.warnings.is_empty());
}

#[test]
fn environment_variables_naming_unsupported_features_are_errors() {
    for (var, path) in [
        ("REGISTRY_AUTH_TOKEN_REALM", "auth.token"),
        ("REGISTRY_AUTH_SILLY_SERVICE", "auth.silly"),
        ("BERTH_AUTH_TOKEN", "auth.token"),
        ("REGISTRY_PROXY_REMOTEURL", "proxy"),
        ("REGISTRY_STORAGE_SWIFT_CONTAINER", "storage.swift"),
        (
            "REGISTRY_STORAGE_GCS_CREDENTIALS_TYPE",
            "storage.gcs.credentials",
        ),
        ("REGISTRY_STORAGE_S3_SKIPVERIFY", "storage.s3.skipverify"),
        ("REGISTRY_STORAGE_S3_SKIPVERIFY_X", "storage.s3.skipverify"),
        ("REGISTRY_HTTP_TLS_CLIENTCAS", "http.tls.clientcas"),
        ("REGISTRY_NOTIFICATIONS_ENDPOINTS", "notifications"),
    ] {
        let error = err("", &[(var, "htpasswd")]);
        let p = problem(&error, path);
        assert!(
            p.message.starts_with("not supported yet: "),
            "{var}: {}",
            p.message
        );
        assert_eq!(p.source, env_source(var));
    }
}

#[test]
fn kubernetes_service_links_are_not_errors() {
    let links = [
        ("BERTH_PORT", "tcp://10.96.0.12:5000"),
        ("BERTH_SERVICE_HOST", "10.96.0.12"),
        ("BERTH_SERVICE_PORT", "5000"),
        ("BERTH_SERVICE_PORT_HTTP", "5000"),
        ("BERTH_PORT_5000_TCP", "tcp://10.96.0.12:5000"),
        ("BERTH_PORT_5000_TCP_PROTO", "tcp"),
        ("BERTH_PORT_5000_TCP_PORT", "5000"),
        ("BERTH_PORT_5000_TCP_ADDR", "10.96.0.12"),
        ("BERTH_API_SERVICE_HOST", "fd00::12"),
        ("REGISTRY_PORT", "tcp://10.96.0.13:5000"),
        ("REGISTRY_SERVICE_HOST", "10.96.0.13"),
        // A service named "registry-auth" must not read as registry:2's auth section.
        ("REGISTRY_AUTH_PORT", "tcp://10.96.0.14:5001"),
        ("REGISTRY_AUTH_SERVICE_HOST", "10.96.0.14"),
        // The "_PORT" variable of a service named "registry-service".
        ("REGISTRY_SERVICE_PORT", "tcp://10.96.0.15:80"),
    ];
    let loaded = ok("", &links);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    for (name, _) in links {
        assert!(loaded.warnings[0].contains(name), "{name}");
    }
    // An operator's own guess at a setting is still caught.
    problem(&err("", &[("BERTH_PORT", "8080")]), "port");
    problem(
        &err("", &[("BERTH_SERVICE_HOST", "registry.local")]),
        "service",
    );
}

#[test]
fn unsupported_features_in_the_file_are_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "auth:\n  token:\n    realm: https://auth.example.com/token\n",
            "auth.token",
        ),
        ("auth: silly\n", "auth.silly"),
        (
            "proxy:\n  remoteurl: https://registry-1.docker.io\n",
            "proxy",
        ),
        ("notifications:\n  endpoints: []\n", "notifications"),
        ("http:\n  prefix: /registry/\n", "http.prefix"),
        ("redis:\n  addr: localhost:6379\n", "redis"),
        ("validation:\n  disabled: true\n", "validation"),
        (
            "compatibility:\n  schema1:\n    enabled: true\n",
            "compatibility",
        ),
        (
            "storage:\n  gcs:\n    bucket: b\n    credentials:\n      type: x\n",
            "storage.gcs.credentials",
        ),
        (
            "storage:\n  azure:\n    accountname: a\n    container: c\n    credentials:\n      type: x\n",
            "storage.azure.credentials",
        ),
        ("storage:\n  swift:\n    container: c\n", "storage.swift"),
        ("storage:\n  oss:\n    bucket: b\n", "storage.oss"),
        ("storage:\n  inmemory:\n", "storage.inmemory"),
        ("middleware:\n  registry: []\n", "middleware"),
        (
            "http:\n  tls:\n    certificate: c\n    key: k\n    clientcas: [/ca.pem]\n",
            "http.tls.clientcas",
        ),
        (
            "http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n",
            "http.tls.letsencrypt",
        ),
        ("http:\n  net: unix\n", "http.net"),
    ];
    for (yaml, path) in cases {
        let error = err(yaml, &[]);
        let p = problem(&error, path);
        assert!(
            p.message.starts_with("not supported yet: "),
            "{path}: {}",
            p.message
        );
        assert_eq!(p.source, Source::File);
        if path.starts_with("storage.") && !path.ends_with(".credentials") {
            assert!(
                p.message
                    .contains("berth stores blobs on the filesystem, in S3-compatible storage"),
                "{}",
                p.message
            );
        }
    }
}

#[test]
fn meaningless_registry_keys_are_ignored_with_a_warning() {
    let cases: &[(&str, &str)] = &[
        (
            "http:\n  secret: asecretforlocaldevelopment\n",
            "http.secret",
        ),
        (
            "http:\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\n",
            "http.debug",
        ),
        ("http:\n  http2:\n    disabled: false\n", "http.http2"),
        ("http:\n  net: tcp\n", "http.net"),
        (
            "storage:\n  cache:\n    blobdescriptor: redis\n",
            "storage.cache",
        ),
        (
            "storage:\n  filesystem:\n    maxthreads: 100\n",
            "storage.filesystem.maxthreads",
        ),
        ("health:\n  storagedriver:\n    enabled: true\n", "health"),
        ("log:\n  hooks:\n    - type: mail\n", "log.hooks"),
        ("log:\n  reportcaller: true\n", "log.reportcaller"),
    ];
    for (yaml, path) in cases {
        let loaded = ok(yaml, &[]);
        assert_eq!(loaded.warnings.len(), 1, "{path}: {:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].starts_with(&format!("{path}: ignored: ")),
            "{}",
            loaded.warnings[0]
        );
        assert_eq!(loaded.config, Config::default(), "{path}");
    }
    assert!(ok("version: 0.1\n", &[]).warnings.is_empty());

    let loaded = ok(
        "",
        &[("REGISTRY_HTTP_SECRET", "s"), ("REGISTRY_VERSION", "0.1")],
    );
    assert_eq!(
        loaded.warnings,
        [
            "http.secret: ignored: berth keeps upload state in its database, so there is nothing to sign (from env REGISTRY_HTTP_SECRET)"
        ]
    );
    let error = err("", &[("REGISTRY_HTTP_NET", "unix")]);
    assert_eq!(
        problem(&error, "http.net").source,
        env_source("REGISTRY_HTTP_NET")
    );
}

#[test]
fn bad_values_name_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "http:\n  addr: abc\n",
            "http.addr",
            "invalid listen address \"abc\": ",
        ),
        (
            "http:\n  addr: 5000\n",
            "http.addr",
            "invalid type: integer `5000`",
        ),
        (
            "http:\n  host: registry.example.com\n",
            "http.host",
            "invalid URL",
        ),
        (
            "http:\n  host: ftp://example.com\n",
            "http.host",
            "http:// or https://",
        ),
        (
            "http:\n  relativeurls: yes\n",
            "http.relativeurls",
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            "http:\n  draintimeout: 10\n",
            "http.draintimeout",
            "missing unit",
        ),
        (
            "http:\n  draintimeout: \"10\"\n",
            "http.draintimeout",
            "missing unit",
        ),
        (
            "http:\n  draintimeout: -1s\n",
            "http.draintimeout",
            "must not be negative",
        ),
        (
            "http:\n  draintimeout: 1d\n",
            "http.draintimeout",
            "unknown unit \"d\"",
        ),
        (
            "http:\n  trustedproxies: [10.0.0.1, bogus]\n",
            "http.trustedproxies[1]",
            "invalid trusted proxy \"bogus\"",
        ),
        (
            "http:\n  trustedproxies: 10.0.0.1\n",
            "http.trustedproxies",
            "invalid type: string",
        ),
        (
            "http:\n  headers:\n    Bad Header: [x]\n",
            "http.headers.Bad Header",
            "invalid header name",
        ),
        (
            "http:\n  headers:\n    X-A: [\"a\\nb\"]\n",
            "http.headers.X-A",
            "invalid header value",
        ),
        (
            "http:\n  headers:\n    Content-Length: [\"0\"]\n",
            "http.headers.Content-Length",
            "set by the server",
        ),
        (
            "http:\n  headers:\n    X-A: []\n",
            "http.headers.X-A",
            "at least one value",
        ),
        (
            "http:\n  headers:\n    X-A: [[a]]\n",
            "http.headers.X-A[0]",
            "invalid type",
        ),
        (
            "http:\n  tls:\n    certificate: c\n    key: k\n    minimumtls: tls1.0\n",
            "http.tls.minimumtls",
            "use tls1.2 or tls1.3",
        ),
        (
            "http:\n  tls:\n    certificate: c\n    key: k\n    minimumtls: ssl3\n",
            "http.tls.minimumtls",
            "invalid TLS version",
        ),
        (
            "http:\n  tls: yes\n",
            "http.tls",
            "expected a mapping of keys, found \"yes\"",
        ),
        (
            "log:\n  level: verbose\n",
            "log.level",
            "invalid log level \"verbose\"",
        ),
        ("log:\n  formatter: logstash\n", "log.formatter", "use json"),
        (
            "log:\n  formatter: xml\n",
            "log.formatter",
            "expected text or json",
        ),
        (
            "log:\n  fields: [a]\n",
            "log.fields",
            "expected a mapping of keys, found a list",
        ),
        (
            "log:\n  fields:\n    a: [b]\n",
            "log.fields.a",
            "expected a string, number or boolean",
        ),
        ("storage: local\n", "storage", "expected a mapping of keys"),
        (
            "storage:\n  delete:\n    enabled: \"true\"\n",
            "storage.delete.enabled",
            "expected a boolean",
        ),
        (
            "storage:\n  filesystem:\n    rootdirectory: \"\"\n",
            "storage.filesystem.rootdirectory",
            "must not be empty",
        ),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      interval: 0s\n",
            "storage.maintenance.uploadpurging.interval",
            "greater than 0",
        ),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      age: 0\n",
            "storage.maintenance.uploadpurging.age",
            "greater than 0",
        ),
        (
            "database:\n  url: mysql://db/berth\n",
            "database.url",
            "invalid database URL \"mysql://db/berth\": expected a sqlite: or postgres:// URL",
        ),
        (
            "database:\n  url: /var/lib/berth.db\n",
            "database.url",
            "expected a sqlite: or postgres:// URL",
        ),
        (
            "database:\n  url: \"postgres:berth\"\n",
            "database.url",
            "invalid PostgreSQL URL \"postgres:berth\": missing \"//\"",
        ),
        (
            "database:\n  url: postgres://db:port/berth\n",
            "database.url",
            "invalid PostgreSQL URL \"postgres://db:port/berth\": invalid port number",
        ),
        (
            "database:\n  maxconnections: 0\n",
            "database.maxconnections",
            "must be at least 1",
        ),
        (
            "database:\n  maxconnections: -1\n",
            "database.maxconnections",
            "must not be negative",
        ),
        (
            "database:\n  maxconnections: 4294967296\n",
            "database.maxconnections",
            "too large",
        ),
        (
            "database:\n  maxconnections: many\n",
            "database.maxconnections",
            "invalid number \"many\": expected digits only",
        ),
        (
            "database:\n  maxconnections: 1.5\n",
            "database.maxconnections",
            "expected a whole number",
        ),
        (
            "database:\n  connecttimeout: 0s\n",
            "database.connecttimeout",
            "must be greater than 0",
        ),
        (
            "database:\n  connecttimeout: 5\n",
            "database.connecttimeout",
            "missing unit",
        ),
        (
            "storage:\n  redirect:\n    expiry: 0\n",
            "storage.redirect.expiry",
            "must be greater than 0",
        ),
        (
            "storage:\n  redirect:\n    expiry: 169h\n",
            "storage.redirect.expiry",
            "169h is too long",
        ),
        (
            "storage:\n  redirect:\n    disable: \"no\"\n",
            "storage.redirect.disable",
            "expected a boolean",
        ),
        (
            "storage:\n  s3: bucket\n",
            "storage.s3",
            "expected a mapping of keys",
        ),
        (
            "storage:\n  s3:\n    bucket: \"\"\n",
            "storage.s3.bucket",
            "required when storage.s3 is set",
        ),
        (
            "storage:\n  s3:\n    bucket: b/registry\n",
            "storage.s3.bucket",
            "put a prefix inside the bucket in storage.s3.rootdirectory",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    region: \"\"\n",
            "storage.s3.region",
            "must not be empty",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    regionendpoint: ftp://files.example.com\n",
            "storage.s3.regionendpoint",
            "invalid endpoint \"ftp://files.example.com\": must be an http:// or https:// URL",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    regionendpoint: \"minio:port\"\n",
            "storage.s3.regionendpoint",
            "invalid endpoint \"https://minio:port\": invalid port number",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    regionendpoint: http://minio:9000/?x=1\n",
            "storage.s3.regionendpoint",
            "must not have a query",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    regionendpoint: http://user:pw@minio:9000\n",
            "storage.s3.regionendpoint",
            "must not contain a user name or password",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    accesskey: AKIAEXAMPLE\n",
            "storage.s3.secretkey",
            "required when storage.s3.accesskey is set",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    secretkey: s3cr3t\n",
            "storage.s3.accesskey",
            "required when storage.s3.secretkey is set",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    sessiontoken: t0k3n\n",
            "storage.s3.sessiontoken",
            "needs storage.s3.accesskey and storage.s3.secretkey",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    secretkey: 12345\n",
            "storage.s3.secretkey",
            "invalid value: expected a string (the value is a secret and is not shown",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    forcepathstyle: \"true\"\n",
            "storage.s3.forcepathstyle",
            "expected a boolean",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    chunksize: 5242879\n",
            "storage.s3.chunksize",
            "5242879 is out of range: S3 parts are from 5242880 (5 MiB) to 5368709120 (5 GiB) bytes",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    chunksize: 5368709121\n",
            "storage.s3.chunksize",
            "out of range",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    chunksize: 10MiB\n",
            "storage.s3.chunksize",
            "invalid number \"10MiB\": expected digits only",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    chunksize: -5242880\n",
            "storage.s3.chunksize",
            "must not be negative",
        ),
        (
            "storage:\n  s3:\n    bucket: b\n    unknown: 1\n",
            "storage.s3.unknown",
            "unknown key; expected one of bucket, region,",
        ),
        ("http:\n  net: udp\n", "http.net", "expected tcp"),
        ("http:\n  5000: x\n", "http.5000", "keys must be strings"),
    ];
    for (yaml, path, want) in cases {
        let error = err(yaml, &[]);
        assert_eq!(error.problems.len(), 1, "{yaml}:\n{error}");
        let p = problem(&error, path);
        assert!(
            p.message.contains(want),
            "{path}: {:?} does not contain {want:?}",
            p.message
        );
        assert_eq!(p.source, Source::File, "{path}");
    }
}

#[test]
fn bad_environment_values_name_their_variable() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "REGISTRY_HTTP_ADDR",
            "abc",
            "http.addr",
            "invalid listen address \"abc\"",
        ),
        (
            "REGISTRY_STORAGE_DELETE_ENABLED",
            "yes",
            "storage.delete.enabled",
            "invalid boolean \"yes\"",
        ),
        (
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE",
            "7",
            "storage.maintenance.uploadpurging.age",
            "missing unit",
        ),
        (
            "BERTH_HTTP_TRUSTEDPROXIES",
            "10.0.0.0/8,nope",
            "http.trustedproxies[1]",
            "invalid trusted proxy \"nope\"",
        ),
        (
            "REGISTRY_HTTP_HEADERS_X_A",
            "a\u{7}b",
            "http.headers.X-A",
            "invalid header value",
        ),
        (
            "BERTH_DATABASE_URL",
            "mysql://root:hunter2@db/berth",
            "database.url",
            "invalid database URL \"mysql://root:***@db/berth\"",
        ),
        (
            "BERTH_DATABASE_MAXCONNECTIONS",
            "sixteen",
            "database.maxconnections",
            "invalid number \"sixteen\": expected digits only",
        ),
        (
            "BERTH_DATABASE_MAXCONNECTIONS",
            "0",
            "database.maxconnections",
            "must be at least 1",
        ),
        (
            "BERTH_DATABASE_CONNECTTIMEOUT",
            "0",
            "database.connecttimeout",
            "must be greater than 0",
        ),
        (
            "REGISTRY_STORAGE_REDIRECT_DISABLE",
            "no",
            "storage.redirect.disable",
            "invalid boolean \"no\"",
        ),
        (
            "REGISTRY_STORAGE_S3_BUCKET",
            "",
            "storage.s3.bucket",
            "required when storage.s3 is set",
        ),
        (
            "REGISTRY_STORAGE_S3_REGION",
            "eu-west-1",
            "storage.s3.bucket",
            "required when storage.s3 is set",
        ),
        (
            "REGISTRY_STORAGE_S3_V4AUTH",
            "true",
            "storage.s3.bucket",
            "required when storage.s3 is set",
        ),
        (
            "REGISTRY_HTTP",
            "x",
            "http",
            "is a section; set its keys with REGISTRY_HTTP_<KEY> variables",
        ),
        ("REGISTRY_LOG_FIELDS", "x", "log.fields", "is a map"),
    ];
    for (var, value, path, want) in cases {
        let error = err("", &[(var, value)]);
        assert_eq!(error.problems.len(), 1, "{var}:\n{error}");
        let p = problem(&error, path);
        assert!(
            p.message.contains(want),
            "{var}: {:?} does not contain {want:?}",
            p.message
        );
        assert_eq!(p.source, env_source(var));
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = "\
http:
  addr: abc
  draintimeout: 10
  trustedproxies: [bogus]
  tls:
    certificate: /c.pem
log:
  level: loud
storage:
  filesystm: {}
  gcs: {}
  s3:
    chunksize: 1
    accesskey: AKIAEXAMPLE
auth:
  htpasswd: {}
";
    let error = err(
        yaml,
        &[
            ("REGISTRY_STORAGE_DELETE_ENABLED", "maybe"),
            ("BERTH_HTTP_ADR", "x"),
        ],
    );
    let mut paths: Vec<&str> = error.problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "auth.htpasswd.path",
            "auth.htpasswd.realm",
            "http.addr",
            "http.adr",
            "http.draintimeout",
            "http.tls.key",
            "http.trustedproxies[0]",
            "log.level",
            "storage.delete.enabled",
            "storage.filesystm",
            "storage.gcs.bucket",
            "storage.s3.bucket",
            "storage.s3.chunksize",
            "storage.s3.secretkey",
        ],
        "\n{error}"
    );
    assert_eq!(error.to_string().lines().count(), error.problems.len());
}

#[test]
fn durations_in_the_file() {
    let loaded = ok(
        "http:\n  draintimeout: 1.5h\nstorage:\n  maintenance:\n    uploadpurging:\n      age: 1h30m\n      interval: 500ms\n",
        &[],
    );
    assert_eq!(loaded.config.http.draintimeout, Duration::from_secs(5400));
    let purging = &loaded.config.storage.maintenance.uploadpurging;
    assert_eq!(purging.age, Duration::from_secs(5400));
    assert_eq!(purging.interval, Duration::from_millis(500));
    assert_eq!(
        ok("http:\n  draintimeout: 0\n", &[])
            .config
            .http
            .draintimeout,
        Duration::ZERO
    );
    // Purging switched off needs no interval.
    let loaded = ok(
        "storage:\n  maintenance:\n    uploadpurging:\n      enabled: false\n      interval: 0s\n",
        &[],
    );
    assert!(!loaded.config.storage.maintenance.uploadpurging.enabled);
}

#[test]
fn trusted_proxies() {
    let loaded = ok(
        "http:\n  trustedproxies:\n    - 10.0.0.0/8\n    - 192.168.1.7\n    - ::1\n",
        &[],
    );
    let proxies: Vec<String> = loaded
        .config
        .http
        .trustedproxies
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);

    let loaded = ok(
        "http:\n  trustedproxies: [10.0.0.0/8]\n",
        &[("BERTH_HTTP_TRUSTEDPROXIES", " 172.16.0.0/12 , 127.0.0.1,")],
    );
    let proxies: Vec<String> = loaded
        .config
        .http
        .trustedproxies
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(proxies, ["172.16.0.0/12", "127.0.0.1/32"]);

    // An empty variable clears the file's list.
    let loaded = ok(
        "http:\n  trustedproxies: [10.0.0.0/8]\n",
        &[("BERTH_HTTP_TRUSTEDPROXIES", "")],
    );
    assert!(loaded.config.http.trustedproxies.is_empty());
}

#[test]
fn headers_from_file_and_environment() {
    let loaded = ok(
        "http:\n  headers:\n    x-frame-options: [DENY]\n    Cache-Control: no-store\n    Link: [\"<a>\", \"<b>\"]\n",
        &[
            ("REGISTRY_HTTP_HEADERS_X_CONTENT_TYPE_OPTIONS", "nosniff"),
            ("REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS", "SAMEORIGIN"),
        ],
    );
    let headers = &loaded.config.http.headers;
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    assert_eq!(headers.len(), 4, "{headers:?}");
    assert_eq!(headers["X-Content-Type-Options"], strings(&["nosniff"]));
    assert_eq!(headers["X-Frame-Options"], strings(&["SAMEORIGIN"]));
    assert_eq!(headers["Cache-Control"], strings(&["no-store"]));
    assert_eq!(headers["Link"], strings(&["<a>", "<b>"]));
    assert_eq!(
        loaded.sources["http.headers.X-Frame-Options"],
        env_source("REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS")
    );
    assert_eq!(loaded.sources["http.headers.Link"], Source::File);

    let error = err("http:\n  headers:\n    X-A: [a]\n    x-a: [b]\n", &[]);
    assert!(
        problem(&error, "http.headers.x-a")
            .message
            .contains("duplicate of header X-A")
    );
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let loaded = ok(
        "http:\n  headers:\n    X-A: &v [a]\n    X-B: *v\nstorage:\n  maintenance:\n    readonly:\n      <<: {enabled: true}\n",
        &[],
    );
    assert_eq!(loaded.config.http.headers["X-B"], ["a".to_owned()]);
    assert!(loaded.config.storage.maintenance.readonly.enabled);
}

#[test]
fn syntax_errors_say_where() {
    let error = err("http:\n  addr: :5000\n    bad indent: x\n", &[]);
    assert_eq!(error.problems.len(), 1);
    let p = &error.problems[0];
    assert_eq!(p.path, "");
    assert!(
        p.message.starts_with("invalid config file config.yml: "),
        "{}",
        p.message
    );
    assert!(p.message.contains("line 3"), "{}", p.message);

    let error = err("http: {addr: x}\nhttp: {addr: y}\n", &[]);
    assert!(error.problems[0].message.contains("duplicate"), "{error}");

    let error = err("- a\n- b\n", &[]);
    assert!(
        error.problems[0]
            .message
            .contains("expected a mapping of keys, found a list")
    );
}

#[test]
fn files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, STOCK_REGISTRY_CONFIG).unwrap();
    let loaded = load(Some(&path), vars(&[("REGISTRY_LOG_LEVEL", "warn")])).unwrap();
    assert_eq!(loaded.config.log.level, LogLevel::Warn);
    assert_eq!(
        loaded.config.storage.filesystem.rootdirectory,
        PathBuf::from("/var/lib/registry")
    );

    let missing = dir.path().join("missing.yml");
    let error = load(Some(&missing), vars(&[("BERTH_HTTP_ADR", "x")])).unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(
        error.problems[0]
            .message
            .starts_with("cannot read config file ")
    );
    problem(&error, "http.adr");
}

#[test]
fn problems_display_with_their_source() {
    let error = err(
        "http:\n  addr: abc\n",
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "yes")],
    );
    let text = error.to_string();
    assert!(text.contains("storage.delete.enabled: invalid boolean \"yes\": expected true, false, 1 or 0 (from env REGISTRY_STORAGE_DELETE_ENABLED)"), "{text}");
    assert!(text.contains("http.addr: invalid listen address \"abc\": expected HOST:PORT or :PORT, e.g. \":5000\" (from file)"), "{text}");
}

#[test]
fn explain_mentions_every_setting_and_source() {
    let loaded = ok(
        STOCK_REGISTRY_CONFIG,
        &[
            ("REGISTRY_HTTP_ADDR", "127.0.0.1:0"),
            ("REGISTRY_HTTP_SECRET", "s"),
        ],
    );
    let text = crate::explain(&loaded);
    for (path, source) in &loaded.sources {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{path} = ")))
            .unwrap_or_else(|| panic!("{path} missing from:\n{text}"));
        assert!(line.contains(&format!("({source})")), "{line}");
        assert!(line.contains(" -- "), "{line}");
    }
    assert!(text.contains("http.addr = 127.0.0.1:0"), "{text}");
    assert!(text.contains("(env REGISTRY_HTTP_ADDR)"));
    assert!(text.contains("storage.filesystem.rootdirectory = /var/lib/registry"));
    assert!(text.contains("(file)"));
    assert!(text.contains("log.level = info"));
    assert!(text.contains("(default)"));
    assert!(text.contains("database.url = (unset; using sqlite:///var/lib/registry/berth.db)"));
    assert!(text.contains("\nwarnings:\n  - "));
    assert!(text.contains("http.secret: ignored"));
    assert!(crate::explain(&ok("", &[])).ends_with("\nno warnings\n"));
}

const S3_REGISTRY_CONFIG: &str = "\
version: 0.1
storage:
  s3:
    accesskey: AKIAEXAMPLE
    secretkey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: eu-central-1
    regionendpoint: minio.example.com:9000
    forcepathstyle: true
    bucket: registry-blobs
    secure: false
    v4auth: true
    chunksize: 5242880
    rootdirectory: /s3/object/name/prefix/
  redirect:
    disable: false
";

#[test]
fn s3_from_the_file() {
    let loaded = ok(S3_REGISTRY_CONFIG, &[]);
    let s3 = loaded.config.storage.s3.as_ref().unwrap();
    assert_eq!(s3.bucket, "registry-blobs");
    assert_eq!(s3.region, "eu-central-1");
    assert_eq!(s3.regionendpoint.as_deref(), Some("minio.example.com:9000"));
    assert_eq!(
        s3.endpoint().as_deref(),
        Some("http://minio.example.com:9000")
    );
    assert_eq!(s3.accesskey.as_deref(), Some("AKIAEXAMPLE"));
    assert_eq!(
        s3.secretkey.as_deref(),
        Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    );
    assert_eq!(s3.sessiontoken, None);
    assert_eq!(s3.rootdirectory, "s3/object/name/prefix");
    assert!(s3.forcepathstyle);
    assert!(!s3.secure);
    assert_eq!(s3.chunksize, 5_242_880);
    assert!(!loaded.config.storage.redirect.disable);
    assert_eq!(
        loaded.warnings,
        [
            "storage.s3.v4auth: ignored: berth always signs requests with AWS Signature Version 4 (from file)"
        ]
    );
    assert_eq!(loaded.sources["storage.s3.bucket"], Source::File);
    assert_eq!(loaded.sources["storage.s3.sessiontoken"], Source::Default);
    assert_eq!(loaded.sources["storage.redirect.disable"], Source::File);
    assert!(!loaded.sources.contains_key("storage.s3"));
    assert_eq!(setting(&loaded, "storage.s3.secretkey"), "(set)");
    assert_eq!(setting(&loaded, "storage.s3.sessiontoken"), "(unset)");
    assert_eq!(setting(&loaded, "storage.s3.accesskey"), "AKIAEXAMPLE");
    assert_eq!(
        setting(&loaded, "storage.s3.rootdirectory"),
        "s3/object/name/prefix"
    );
}

#[test]
fn s3_defaults() {
    let loaded = ok("storage:\n  s3:\n    bucket: b\n", &[]);
    let s3 = loaded.config.storage.s3.clone().unwrap();
    assert_eq!(
        s3,
        S3Config {
            bucket: "b".into(),
            ..S3Config::default()
        }
    );
    assert_eq!(s3.region, "us-east-1");
    assert_eq!(s3.regionendpoint, None);
    assert_eq!(s3.endpoint(), None);
    assert_eq!(
        (s3.accesskey, s3.secretkey, s3.sessiontoken),
        (None, None, None)
    );
    assert_eq!(s3.rootdirectory, "");
    assert_eq!(setting(&loaded, "storage.s3.rootdirectory"), "\"\"");
    assert!(!s3.forcepathstyle);
    assert!(s3.secure);
    assert_eq!(s3.chunksize, 10 * 1024 * 1024);
    // Redirects stay off: berth streams blobs unless told otherwise.
    assert!(loaded.config.storage.redirect.disable);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // Everything but the bucket is a default, including the settings of the section.
    for (path, source) in &loaded.sources {
        let want = if path == "storage.s3.bucket" {
            Source::File
        } else {
            Source::Default
        };
        assert_eq!(*source, want, "{path}");
    }
    // Filesystem storage stays the default blob store, and the database's home.
    assert_eq!(loaded.config.database_url(), "sqlite://./data/berth.db");

    // registry:2 treats empty credentials and endpoint as unset; so does berth.
    let loaded = ok(
        "storage:\n  s3:\n    bucket: b\n    accesskey: \"\"\n    secretkey:\n    regionendpoint: \"\"\n    rootdirectory: /\n",
        &[],
    );
    let s3 = loaded.config.storage.s3.unwrap();
    assert_eq!((s3.accesskey, s3.secretkey), (None, None));
    assert_eq!(s3.regionendpoint, None);
    assert_eq!(s3.rootdirectory, "");
}

#[test]
fn s3_from_the_environment() {
    let env = [
        ("REGISTRY_STORAGE_S3_BUCKET", "blobs"),
        ("REGISTRY_STORAGE_S3_REGION", "garage"),
        (
            "REGISTRY_STORAGE_S3_REGIONENDPOINT",
            "http://127.0.0.1:3900",
        ),
        (
            "REGISTRY_STORAGE_S3_ACCESSKEY",
            "GK31c2f218a2e44f485b94239e",
        ),
        (
            "REGISTRY_STORAGE_S3_SECRETKEY",
            "b892c0665f0ada8a4755dae98baa3b13",
        ),
        ("BERTH_STORAGE_S3_SESSIONTOKEN", "FwoGZXIvYXdzEXAMPLE"),
        ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"),
        ("REGISTRY_STORAGE_S3_SECURE", "0"),
        ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/registry"),
        ("REGISTRY_STORAGE_S3_CHUNKSIZE", "33554432"),
        ("REGISTRY_STORAGE_REDIRECT_DISABLE", "false"),
        ("BERTH_STORAGE_REDIRECT_EXPIRY", "5m"),
    ];
    let loaded = ok("", &env);
    let s3 = loaded.config.storage.s3.as_ref().unwrap();
    assert_eq!(s3.bucket, "blobs");
    assert_eq!(s3.region, "garage");
    assert_eq!(s3.endpoint().as_deref(), Some("http://127.0.0.1:3900"));
    assert_eq!(s3.accesskey.as_deref(), Some("GK31c2f218a2e44f485b94239e"));
    assert_eq!(
        s3.secretkey.as_deref(),
        Some("b892c0665f0ada8a4755dae98baa3b13")
    );
    assert_eq!(s3.sessiontoken.as_deref(), Some("FwoGZXIvYXdzEXAMPLE"));
    assert!(s3.forcepathstyle);
    assert!(!s3.secure);
    assert_eq!(s3.rootdirectory, "registry");
    assert_eq!(s3.chunksize, 32 * 1024 * 1024);
    let redirect = &loaded.config.storage.redirect;
    assert!(!redirect.disable);
    assert_eq!(redirect.expiry, Duration::from_secs(300));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    for (var, _) in env {
        let path = var
            .split_once("_STORAGE_")
            .map(|(_, rest)| format!("storage.{}", rest.to_ascii_lowercase().replace('_', ".")))
            .unwrap();
        assert_eq!(loaded.sources[&path], env_source(var), "{path}");
    }

    // The environment overrides the file key by key.
    let loaded = ok(
        S3_REGISTRY_CONFIG,
        &[
            ("REGISTRY_STORAGE_S3_BUCKET", "other"),
            ("REGISTRY_STORAGE_S3_CHUNKSIZE", "6291456"),
        ],
    );
    let s3 = loaded.config.storage.s3.unwrap();
    assert_eq!(s3.bucket, "other");
    assert_eq!(s3.chunksize, 6 * 1024 * 1024);
    assert_eq!(s3.region, "eu-central-1");
}

#[test]
fn s3_needs_a_bucket() {
    // Any variable for the s3 section creates it, and the bucket is then missing.
    for var in [
        "REGISTRY_STORAGE_S3_REGION",
        "REGISTRY_STORAGE_S3_ACCESSKEY",
        "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
        "REGISTRY_STORAGE_S3_V4AUTH",
        "REGISTRY_STORAGE_S3_ENCRYPT",
        "BERTH_STORAGE_S3_SESSIONTOKEN",
    ] {
        let error = err("", &[(var, "false")]);
        let p = problem(&error, "storage.s3.bucket");
        assert_eq!(
            p.message,
            "required when storage.s3 is set: the name of the bucket to store blobs in"
        );
        assert_eq!(p.source, env_source(var));
    }
    // A variable the loader does not know creates nothing.
    let loaded = ok("", &[("REGISTRY_STORAGE_S3_BOGUS", "x")]);
    assert_eq!(loaded.config.storage.s3, None);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);

    for yaml in [
        "storage:\n  s3:\n",
        "storage:\n  s3: {}\n",
        "storage:\n  s3:\n    region: eu-west-1\n",
        "storage:\n  s3:\n    v4auth: true\n",
    ] {
        let error = err(yaml, &[]);
        assert_eq!(error.problems.len(), 1, "{yaml}:\n{error}");
        assert_eq!(problem(&error, "storage.s3.bucket").source, Source::File);
    }
    // The variable supplies the bucket the file lacks.
    let loaded = ok(
        "storage:\n  s3:\n    region: eu-west-1\n",
        &[("REGISTRY_STORAGE_S3_BUCKET", "b")],
    );
    assert_eq!(loaded.config.storage.s3.unwrap().bucket, "b");
}

#[test]
fn s3_endpoints() {
    let s3 = |endpoint: Option<&str>, secure: bool| S3Config {
        bucket: "b".into(),
        regionendpoint: endpoint.map(str::to_owned),
        secure,
        ..S3Config::default()
    };
    let cases: &[(Option<&str>, bool, Option<&str>)] = &[
        (None, true, None),
        (None, false, None),
        (
            Some("minio.example.com:9000"),
            true,
            Some("https://minio.example.com:9000"),
        ),
        (
            Some("minio.example.com:9000"),
            false,
            Some("http://minio.example.com:9000"),
        ),
        (Some("127.0.0.1:3900"), false, Some("http://127.0.0.1:3900")),
        (Some("[::1]:3900"), true, Some("https://[::1]:3900")),
        // A scheme wins over secure.
        (
            Some("http://127.0.0.1:3900"),
            true,
            Some("http://127.0.0.1:3900"),
        ),
        (
            Some("https://s3.example.com"),
            false,
            Some("https://s3.example.com"),
        ),
        (
            Some("HTTP://minio.local:9000"),
            true,
            Some("http://minio.local:9000"),
        ),
    ];
    for (endpoint, secure, want) in cases {
        assert_eq!(
            s3(*endpoint, *secure).endpoint().as_deref(),
            *want,
            "{endpoint:?} secure={secure}"
        );
    }
    // Each normalised endpoint is valid.
    for endpoint in [
        "minio.example.com:9000",
        "HTTP://minio.local:9000",
        "[::1]:3900",
        "https://s3.example.com/",
    ] {
        let yaml = format!("storage:\n  s3:\n    bucket: b\n    regionendpoint: \"{endpoint}\"\n");
        ok(&yaml, &[]);
    }
}

#[test]
fn s3_chunk_sizes() {
    let chunksize = |yaml_value: &str, env: &[(&str, &str)]| {
        let yaml = format!("storage:\n  s3:\n    bucket: b\n    chunksize: {yaml_value}\n");
        load_yaml(&yaml, env).map(|loaded| loaded.config.storage.s3.unwrap().chunksize)
    };
    for (written, want) in [
        ("5242880", 5_242_880),
        ("\"5242880\"", 5_242_880),
        ("10485760", 10_485_760),
        ("5368709120", 5_368_709_120),
    ] {
        assert_eq!(chunksize(written, &[]), Ok(want), "{written}");
    }
    for written in [
        "5242879",
        "0",
        "5368709121",
        "\"\"",
        "1e7",
        "\"5 MiB\"",
        "\"+5242880\"",
    ] {
        let error = chunksize(written, &[]).unwrap_err();
        assert_eq!(error.problems.len(), 1, "{written}: {error}");
        assert_eq!(error.problems[0].path, "storage.s3.chunksize", "{written}");
    }
    // From the environment: a string of digits, within the same bounds.
    let var = "REGISTRY_STORAGE_S3_CHUNKSIZE";
    assert_eq!(chunksize("1", &[(var, "67108864")]), Ok(64 << 20));
    for value in [
        "5242879",
        "10MiB",
        "-5242880",
        " 5242880",
        "99999999999999999999",
    ] {
        let error = chunksize("10485760", &[(var, value)]).unwrap_err();
        assert_eq!(error.problems.len(), 1, "{value}: {error}");
        let p = problem(&error, "storage.s3.chunksize");
        assert_eq!(p.source, env_source(var), "{value}");
    }
}

#[test]
fn s3_credentials_come_in_pairs() {
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Env, Option<&str>)] = &[
        (&[], None),
        (
            &[
                ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA"),
                ("REGISTRY_STORAGE_S3_SECRETKEY", "s"),
            ],
            None,
        ),
        (
            &[
                ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA"),
                ("REGISTRY_STORAGE_S3_SECRETKEY", "s"),
                ("BERTH_STORAGE_S3_SESSIONTOKEN", "t"),
            ],
            None,
        ),
        (
            &[("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA")],
            Some("storage.s3.secretkey"),
        ),
        (
            &[
                ("REGISTRY_STORAGE_S3_ACCESSKEY", "AKIA"),
                ("REGISTRY_STORAGE_S3_SECRETKEY", ""),
            ],
            Some("storage.s3.secretkey"),
        ),
        (
            &[("REGISTRY_STORAGE_S3_SECRETKEY", "s")],
            Some("storage.s3.accesskey"),
        ),
        (
            &[("BERTH_STORAGE_S3_SESSIONTOKEN", "t")],
            Some("storage.s3.sessiontoken"),
        ),
        // Empty means unset, as in a compose file's `KEY=${VALUE:-}`.
        (
            &[
                ("REGISTRY_STORAGE_S3_ACCESSKEY", ""),
                ("REGISTRY_STORAGE_S3_SECRETKEY", ""),
            ],
            None,
        ),
    ];
    for (env, bad) in cases {
        let result = load_yaml("storage:\n  s3:\n    bucket: b\n", env);
        match bad {
            None => {
                result.unwrap_or_else(|e| panic!("{env:?}: {e}"));
            }
            Some(path) => {
                let error = result.unwrap_err();
                assert_eq!(error.problems.len(), 1, "{env:?}: {error}");
                assert_ne!(problem(&error, path).source, Source::Default);
            }
        }
    }
}

#[test]
fn registry_s3_keys_berth_has_no_use_for_are_ignored_with_a_warning() {
    let cases: &[(&str, &str, &str)] = &[
        ("v4auth", "false", "Signature Version 4"),
        (
            "multipartcopychunksize",
            "33554432",
            "copies objects server-side",
        ),
        (
            "multipartcopymaxconcurrency",
            "100",
            "copies objects server-side",
        ),
        (
            "multipartcopythresholdsize",
            "33554432",
            "copies objects server-side",
        ),
        ("loglevel", "debugwithhttpbody", "log.level"),
        // At the values that ask for what berth does anyway, the unsupported keys too.
        ("skipverify", "false", "verifies"),
        ("storageclass", "STANDARD", "storage class"),
        ("storageclass", "standard", "storage class"),
        ("storageclass", "NONE", "storage class"),
        ("objectacl", "private", "no ACL"),
        ("usedualstack", "false", "dual-stack"),
        ("accelerate", "false", "Transfer Acceleration"),
    ];
    for (key, value, why) in cases {
        let path = format!("storage.s3.{key}");
        let yaml = format!("storage:\n  s3:\n    bucket: b\n    {key}: {value}\n");
        let loaded = ok(&yaml, &[]);
        assert_eq!(loaded.warnings.len(), 1, "{path}: {:?}", loaded.warnings);
        let warning = &loaded.warnings[0];
        assert!(
            warning.starts_with(&format!("{path}: ignored: ")) && warning.contains(why),
            "{warning}"
        );
        assert_eq!(
            loaded.config.storage.s3,
            Some(S3Config {
                bucket: "b".into(),
                ..S3Config::default()
            })
        );

        let var = format!("REGISTRY_STORAGE_S3_{}", key.to_ascii_uppercase());
        let value = value.trim_matches('"');
        let loaded = ok("storage:\n  s3:\n    bucket: b\n", &[(&var, value)]);
        let from_env = warning.replace("(from file)", &format!("(from env {var})"));
        assert_eq!(loaded.warnings, [from_env], "{var}");
    }
    // 0 is false from the environment, as for berth's own booleans.
    let loaded = ok(
        "storage:\n  s3:\n    bucket: b\n",
        &[("REGISTRY_STORAGE_S3_SKIPVERIFY", "0")],
    );
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn registry_s3_features_berth_lacks_are_errors() {
    let cases: &[(&str, &str)] = &[
        ("skipverify", "true"),
        ("storageclass", "REDUCED_REDUNDANCY"),
        ("storageclass", "INTELLIGENT_TIERING"),
        ("objectacl", "public-read"),
        ("usedualstack", "true"),
        ("accelerate", "true"),
        ("skipverify", "[false]"),
    ];
    for (key, value) in cases {
        let path = format!("storage.s3.{key}");
        let yaml = format!("storage:\n  s3:\n    bucket: b\n    {key}: {value}\n");
        let error = err(&yaml, &[]);
        assert_eq!(error.problems.len(), 1, "{yaml}:\n{error}");
        let p = problem(&error, &path);
        assert!(
            p.message.starts_with("not supported yet: "),
            "{}",
            p.message
        );
        assert_eq!(p.source, Source::File);

        let var = format!("REGISTRY_STORAGE_S3_{}", key.to_ascii_uppercase());
        let error = err("storage:\n  s3:\n    bucket: b\n", &[(&var, value)]);
        assert_eq!(error.problems.len(), 1, "{var}:\n{error}");
        assert_eq!(problem(&error, &path).source, env_source(&var));
    }
}

#[test]
fn redirects() {
    let storage = |yaml: &str, env: &[(&str, &str)]| ok(yaml, env);
    // Without storage.s3, turning redirects on has no effect and says so.
    let loaded = storage("storage:\n  redirect:\n    disable: false\n", &[]);
    assert!(!loaded.config.storage.redirect.disable);
    assert_eq!(
        loaded.warnings,
        [
            "storage.redirect.disable: false has no effect without storage.s3, gcs or azure: berth serves these blobs itself (IPFS redirects with storage.ipfs.gateway) (from file)"
        ]
    );
    let loaded = storage("", &[("REGISTRY_STORAGE_REDIRECT_DISABLE", "false")]);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].ends_with("(from env REGISTRY_STORAGE_REDIRECT_DISABLE)"),
        "{}",
        loaded.warnings[0]
    );
    // registry:2's `disable: true` is what berth does by default: no warning.
    let loaded = storage("storage:\n  redirect:\n    disable: true\n", &[]);
    assert!(loaded.config.storage.redirect.disable);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // With storage.s3, redirects are meaningful.
    let loaded = storage(
        "storage:\n  s3:\n    bucket: b\n  redirect:\n    disable: false\n    expiry: 168h\n",
        &[],
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let redirect = &loaded.config.storage.redirect;
    assert!(!redirect.disable);
    assert_eq!(redirect.expiry, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(setting(&loaded, "storage.redirect.expiry"), "168h");
    assert_eq!(
        setting(&ok("", &[]), "storage.redirect.expiry"),
        "20m",
        "registry:2's fixed expiry"
    );
}

#[test]
fn postgres_database_urls() {
    let cases: &[(&str, &str)] = &[
        (
            "postgres://berth:hunter2@db.example.com:5432/berth",
            "postgres://berth:***@db.example.com:5432/berth",
        ),
        (
            "postgresql://berth:hunter2@db/berth?sslmode=require",
            "postgresql://berth:***@db/berth?sslmode=require",
        ),
        // URL-encoded passwords, including ones that encode '@', ':' and '/'.
        (
            "postgres://berth:p%40ss%3Aw%2Frd@db/berth",
            "postgres://berth:***@db/berth",
        ),
        (
            "postgres://us%40er:hunter2@db/berth",
            "postgres://us%40er:***@db/berth",
        ),
        ("postgres://berth@db/berth", "postgres://berth@db/berth"),
        (
            "postgres://db.example.com/berth",
            "postgres://db.example.com/berth",
        ),
        ("postgres://:hunter2@db/berth", "postgres://:***@db/berth"),
        ("postgres://berth:@db/berth", "postgres://berth:@db/berth"),
        ("postgres://localhost", "postgres://localhost"),
        (
            "POSTGRES://berth:hunter2@db/berth",
            "POSTGRES://berth:***@db/berth",
        ),
        // A Unix socket, and the password libpq and sqlx also take as a parameter.
        (
            "postgres:///berth?host=/run/postgresql",
            "postgres:///berth?host=/run/postgresql",
        ),
        (
            "postgres://db/berth?user=berth&password=hunter2&sslmode=verify-full",
            "postgres://db/berth?user=berth&password=***&sslmode=verify-full",
        ),
        (
            "postgres://u:hunter2@db/berth?PASSWORD=hunter2",
            "postgres://u:***@db/berth?PASSWORD=***",
        ),
    ];
    for (url, redacted) in cases {
        let yaml = format!("database:\n  url: \"{url}\"\n");
        let loaded = load_yaml(&yaml, &[]).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(loaded.config.database_url(), *url);
        assert_eq!(loaded.config.redacted_database_url(), *redacted);
        assert_eq!(setting(&loaded, "database.url"), *redacted);
        assert!(loaded.warnings.is_empty(), "{url}: {:?}", loaded.warnings);
        let debug = format!("{:?}", loaded.config);
        assert!(debug.contains(redacted), "{debug}");
        if redacted.contains("***") {
            assert!(!debug.contains("hunter2"), "{debug}");
        }
    }
    // The pool settings.
    let loaded = ok(
        "database:\n  url: postgres://db/berth\n  maxconnections: 100\n  connecttimeout: 2s\n",
        &[],
    );
    assert_eq!(loaded.config.database.maxconnections, 100);
    assert_eq!(
        loaded.config.database.connecttimeout,
        Duration::from_secs(2)
    );
    assert_eq!(
        ok("database:\n  maxconnections: \"1\"\n", &[])
            .config
            .database
            .maxconnections,
        1
    );
    // The default SQLite URL has nothing to redact, even in an odd directory.
    let loaded = ok(
        "storage:\n  filesystem:\n    rootdirectory: /srv/a:b@c\n",
        &[],
    );
    assert_eq!(
        loaded.config.redacted_database_url(),
        "sqlite:///srv/a:b@c/berth.db"
    );
}

/// Secrets must not leak through `explain`, error messages or `Debug`, whichever way they
/// were set and whatever else is wrong.
#[test]
fn secrets_are_never_shown() {
    const SECRET_KEY: &str = "SeCrEtKeY-0123456789";
    const TOKEN: &str = "SeSsIoNtOkEn-0123456789";
    const PASSWORD: &str = "PaSsWoRd-0123456789";
    let yaml = format!(
        "storage:\n  s3:\n    bucket: b\n    accesskey: AKIAEXAMPLE\n    secretkey: {SECRET_KEY}\n    sessiontoken: {TOKEN}\ndatabase:\n  url: postgres://berth:{PASSWORD}@db/berth?password={PASSWORD}\n"
    );
    let leaks = |text: &str| {
        [SECRET_KEY, TOKEN, PASSWORD]
            .iter()
            .any(|s| text.contains(s))
    };

    let loaded = ok(&yaml, &[]);
    let text = crate::explain(&loaded);
    assert!(!leaks(&text), "{text}");
    assert!(text.contains("storage.s3.secretkey = (set)"), "{text}");
    assert!(text.contains("storage.s3.sessiontoken = (set)"), "{text}");
    assert!(
        text.contains("database.url = postgres://berth:***@db/berth?password=***"),
        "{text}"
    );
    assert!(!leaks(&format!("{loaded:?}")), "{loaded:?}");

    let env = [
        ("REGISTRY_STORAGE_S3_SECRETKEY", SECRET_KEY),
        ("BERTH_STORAGE_S3_SESSIONTOKEN", TOKEN),
        (
            "BERTH_DATABASE_URL",
            &*format!("postgres://berth:{PASSWORD}@db/berth"),
        ),
    ];
    let loaded = ok("storage:\n  s3:\n    bucket: b\n    accesskey: A\n", &env);
    let text = crate::explain(&loaded);
    assert!(!leaks(&text), "{text}");
    assert!(
        text.contains("(env REGISTRY_STORAGE_S3_SECRETKEY)"),
        "{text}"
    );

    // Errors about those keys, and errors elsewhere, quote none of them.
    let bad_files = [
        // A secret without its access key, a bad URL holding a password.
        format!(
            "storage:\n  s3:\n    bucket: b\n    secretkey: {SECRET_KEY}\n    sessiontoken: {TOKEN}\ndatabase:\n  url: mysql://root:{PASSWORD}@db/berth\n"
        ),
        // Secrets of the wrong type; a password with an unencoded '/' (unparseable).
        "storage:\n  s3:\n    bucket: b\n    accesskey: A\n    secretkey: 1234567890123\n    sessiontoken: [9876543210]\n".to_owned(),
        format!("database:\n  url: postgres://berth:{PASSWORD}/x@db/berth\n"),
        format!("database:\n  url: postgres:berth:{PASSWORD}@db\n"),
        format!(
            "storage:\n  s3:\n    bucket: b\n    regionendpoint: http://user:{PASSWORD}@minio:9000\n"
        ),
        format!("storage:\n  s3:\n    bucket: b\n    regionendpoint: \"http://u:{PASSWORD}@m inio\"\n"),
    ];
    for yaml in &bad_files {
        let error = err(yaml, &[]);
        let text = error.to_string();
        assert!(!leaks(&text), "{text}");
        assert!(
            !text.contains("1234567890123") && !text.contains("9876543210"),
            "{text}"
        );
    }
    let error = err(
        "",
        &[
            ("REGISTRY_STORAGE_S3_SECRETKEY", SECRET_KEY),
            ("BERTH_STORAGE_S3_SESSIONTOKEN", TOKEN),
            ("BERTH_DATABASE_URL", &format!("mysql://root:{PASSWORD}@db")),
            ("REGISTRY_STORAGE_S3_SECRETKEY_X", SECRET_KEY),
        ],
    );
    let text = error.to_string();
    assert!(!leaks(&text), "{text}");
    problem(&error, "storage.s3.bucket");
    problem(&error, "storage.s3.accesskey");
    problem(&error, "database.url");
}

/// The environment of the docker-compose file every registry:2 htpasswd guide shows.
const REGISTRY_HTPASSWD_COMPOSE: &[(&str, &str)] = &[
    ("REGISTRY_AUTH", "htpasswd"),
    ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry"),
    ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
];

const HTPASSWD_FILE: &str = "auth:\n  htpasswd:\n    realm: Registry\n    path: /auth/htpasswd\n";

fn htpasswd(realm: &str, path: &str) -> AuthConfig {
    AuthConfig::Htpasswd(HtpasswdAuth {
        realm: realm.into(),
        path: path.into(),
    })
}

fn berth_auth(change: impl FnOnce(&mut BerthAuth)) -> AuthConfig {
    let mut berth = BerthAuth::default();
    change(&mut berth);
    AuthConfig::Berth(berth)
}

/// The `path = value` part of the lines `explain` shows for `auth`, in order.
fn auth_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.starts_with("auth"))
        .map(|line| line.split("    (").next().unwrap().trim_end())
        .collect()
}

#[test]
fn auth_defaults_to_berth() {
    let loaded = ok("", &[]);
    let AuthConfig::Berth(berth) = &loaded.config.auth else {
        panic!("{:?}", loaded.config.auth);
    };
    assert_eq!(berth.service, "berth");
    assert_eq!(berth.issuer, "berth");
    assert_eq!(berth.realm, None);
    assert_eq!(berth.tokenexpiry, Duration::from_secs(5 * 60));
    assert_eq!(
        berth.refreshtokenexpiry,
        Duration::from_secs(30 * 24 * 3600)
    );
    assert_eq!((&berth.key, &berth.certificate), (&None, &None));
    assert_eq!(
        AuthConfig::default(),
        AuthConfig::Berth(BerthAuth::default())
    );
    assert_eq!(loaded.sources["auth"], Source::Default);
    assert_eq!(loaded.sources["auth.berth.tokenexpiry"], Source::Default);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // registry:2's stock file has no auth section: berth's own comes into force.
    assert_eq!(
        ok(STOCK_REGISTRY_CONFIG, &[]).config.auth,
        AuthConfig::default()
    );
}

#[test]
fn auth_in_each_yaml_form() {
    let cases = [
        ("auth: none\n", AuthConfig::None),
        ("auth: None\n", AuthConfig::None),
        ("auth: {none: {}}\n", AuthConfig::None),
        ("auth: {none: null}\n", AuthConfig::None),
        ("auth:\n  none:\n", AuthConfig::None),
        (HTPASSWD_FILE, htpasswd("Registry", "/auth/htpasswd")),
        ("auth: berth\n", AuthConfig::default()),
        ("auth: {berth: {}}\n", AuthConfig::default()),
        ("auth:\n  berth:\n", AuthConfig::default()),
        (
            "auth:\n  berth:\n    service: registry.example.com\n    tokenexpiry: 10m\n",
            berth_auth(|b| {
                b.service = "registry.example.com".into();
                b.tokenexpiry = Duration::from_secs(600);
            }),
        ),
        (
            "auth:\n  berth:\n    service: registry.example.com\n    issuer: berth.example.com\n    realm: https://registry.example.com/token\n    tokenexpiry: 30s\n    refreshtokenexpiry: 1h\n    key: /keys/token.key\n    certificate: /keys/token.crt\n",
            berth_auth(|b| {
                b.service = "registry.example.com".into();
                b.issuer = "berth.example.com".into();
                b.realm = Some("https://registry.example.com/token".parse().unwrap());
                b.tokenexpiry = Duration::from_secs(30);
                b.refreshtokenexpiry = Duration::from_secs(3600);
                b.key = Some("/keys/token.key".into());
                b.certificate = Some("/keys/token.crt".into());
            }),
        ),
        // The longest lifetimes allowed; empty paths mean unset, as for S3's credentials.
        (
            "auth:\n  berth:\n    tokenexpiry: 24h\n    refreshtokenexpiry: 8760h\n    key: \"\"\n    certificate:\n",
            berth_auth(|b| {
                b.tokenexpiry = Duration::from_secs(24 * 3600);
                b.refreshtokenexpiry = Duration::from_secs(8760 * 3600);
            }),
        ),
    ];
    for (yaml, want) in cases {
        let loaded = ok(yaml, &[]);
        assert_eq!(loaded.config.auth, want, "{yaml}");
        assert_eq!(loaded.sources["auth"], Source::File, "{yaml}");
    }
    let loaded = ok(HTPASSWD_FILE, &[]);
    assert_eq!(loaded.sources["auth.htpasswd.path"], Source::File);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let loaded = ok("auth:\n  berth:\n    service: r\n", &[]);
    assert_eq!(loaded.sources["auth.berth.service"], Source::File);
    assert_eq!(loaded.sources["auth.berth.issuer"], Source::Default);
}

#[test]
fn the_registry_htpasswd_compose_environment_works_unchanged() {
    let want = htpasswd("Registry", "/auth/htpasswd");
    let loaded = ok("", REGISTRY_HTPASSWD_COMPOSE);
    assert_eq!(loaded.config.auth, want);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    for (path, var) in [
        ("auth", "REGISTRY_AUTH"),
        ("auth.htpasswd.realm", "REGISTRY_AUTH_HTPASSWD_REALM"),
        ("auth.htpasswd.path", "REGISTRY_AUTH_HTPASSWD_PATH"),
    ] {
        assert_eq!(loaded.sources[path], env_source(var), "{path}");
    }
    // Over registry:2's stock config file.
    assert_eq!(
        ok(STOCK_REGISTRY_CONFIG, REGISTRY_HTPASSWD_COMPOSE)
            .config
            .auth,
        want
    );
    // Without REGISTRY_AUTH the htpasswd keys choose the mode, as they do in registry:2.
    let loaded = ok("", &REGISTRY_HTPASSWD_COMPOSE[1..]);
    assert_eq!(loaded.config.auth, want);
    assert_eq!(
        loaded.sources["auth"],
        env_source("REGISTRY_AUTH_HTPASSWD_PATH")
    );
    // The file's string form, completed by the environment.
    let loaded = ok("auth: htpasswd\n", &REGISTRY_HTPASSWD_COMPOSE[1..]);
    assert_eq!(loaded.config.auth, want);
    assert_eq!(loaded.sources["auth"], Source::File);

    // The path alone chooses htpasswd, whose realm is then missing.
    let error = err("", &[("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd")]);
    assert_eq!(error.problems.len(), 1, "{error}");
    let p = problem(&error, "auth.htpasswd.realm");
    assert!(
        p.message.starts_with("required with auth: htpasswd"),
        "{}",
        p.message
    );
    assert_eq!(p.source, env_source("REGISTRY_AUTH_HTPASSWD_PATH"));
    // The mode alone: both settings are missing, and blamed on the variable.
    let error = err("", &[("REGISTRY_AUTH", "htpasswd")]);
    assert_eq!(error.problems.len(), 2, "{error}");
    assert_eq!(
        problem(&error, "auth.htpasswd.path").source,
        env_source("REGISTRY_AUTH")
    );
    assert_eq!(
        problem(&error, "auth.htpasswd.realm").source,
        env_source("REGISTRY_AUTH")
    );
    // The same in the file.
    let error = err("auth: htpasswd\n", &[]);
    assert_eq!(error.problems.len(), 2, "{error}");
    assert_eq!(problem(&error, "auth.htpasswd.path").source, Source::File);
}

#[test]
fn the_environment_replaces_the_mode_of_the_file() {
    // The file's htpasswd settings are dropped, not merged with "none" into an error.
    let loaded = ok(HTPASSWD_FILE, &[("REGISTRY_AUTH", "none")]);
    assert_eq!(loaded.config.auth, AuthConfig::None);
    assert_eq!(loaded.sources["auth"], env_source("REGISTRY_AUTH"));
    assert!(!loaded.sources.keys().any(|k| k.starts_with("auth.")));
    // Even when they would have been wrong.
    for yaml in [
        "auth:\n  htpasswd:\n    realm: Registry\n",
        "auth:\n  berth:\n    tokenexpiry: 1d\n",
        "auth:\n  berth:\n    key: /k.pem\n",
    ] {
        assert_eq!(
            ok(yaml, &[("REGISTRY_AUTH", "none")]).config.auth,
            AuthConfig::None,
            "{yaml}"
        );
    }
    // BERTH_AUTH beats REGISTRY_AUTH.
    let loaded = ok(
        HTPASSWD_FILE,
        &[("REGISTRY_AUTH", "none"), ("BERTH_AUTH", "berth")],
    );
    assert_eq!(loaded.config.auth, AuthConfig::default());
    assert_eq!(loaded.sources["auth"], env_source("BERTH_AUTH"));
    // A key of another mode chooses that mode.
    let loaded = ok(
        HTPASSWD_FILE,
        &[("BERTH_AUTH_BERTH_SERVICE", "registry.example.com")],
    );
    assert_eq!(
        loaded.config.auth,
        berth_auth(|b| b.service = "registry.example.com".into())
    );
    assert_eq!(
        loaded.sources["auth"],
        env_source("BERTH_AUTH_BERTH_SERVICE")
    );
    // Naming the file's mode keeps the file's settings, with the variables over them.
    let loaded = ok(
        HTPASSWD_FILE,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Other"),
        ],
    );
    assert_eq!(loaded.config.auth, htpasswd("Other", "/auth/htpasswd"));
    assert_eq!(loaded.sources["auth"], env_source("REGISTRY_AUTH"));
    assert_eq!(loaded.sources["auth.htpasswd.path"], Source::File);
    // Setting a key of the file's mode leaves the mode the file's.
    let loaded = ok(
        HTPASSWD_FILE,
        &[("REGISTRY_AUTH_HTPASSWD_PATH", "/etc/htpasswd")],
    );
    assert_eq!(loaded.config.auth, htpasswd("Registry", "/etc/htpasswd"));
    assert_eq!(loaded.sources["auth"], Source::File);
    // "none" from the file gives way to an htpasswd from the environment.
    let loaded = ok("auth: none\n", &REGISTRY_HTPASSWD_COMPOSE[1..]);
    assert_eq!(loaded.config.auth, htpasswd("Registry", "/auth/htpasswd"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn variables_asking_for_different_modes_are_errors() {
    // A key of a mode other than the one named: it would be ignored.
    let error = err(
        "",
        &[
            ("REGISTRY_AUTH", "none"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
        ],
    );
    assert_eq!(error.problems.len(), 1, "{error}");
    let p = problem(&error, "auth.htpasswd.path");
    assert_eq!(p.source, env_source("REGISTRY_AUTH_HTPASSWD_PATH"));
    assert_eq!(
        p.message,
        "sets a key of mode htpasswd, but auth is none (from env REGISTRY_AUTH); remove the variable, or choose mode htpasswd"
    );
    // BERTH_AUTH over a registry:2 compose environment leaves its htpasswd keys unused.
    let mut env = REGISTRY_HTPASSWD_COMPOSE.to_vec();
    env.push(("BERTH_AUTH", "berth"));
    let error = err("", &env);
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(
        problem(&error, "auth.htpasswd.realm")
            .message
            .contains("but auth is berth (from env BERTH_AUTH)")
    );
    // Keys of two modes, and no mode named.
    let error = err(
        HTPASSWD_FILE,
        &[
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            ("BERTH_AUTH_BERTH_SERVICE", "registry.example.com"),
        ],
    );
    assert_eq!(error.problems.len(), 1, "{error}");
    let p = problem(&error, "auth");
    assert_eq!(
        p.message,
        "the environment asks for several modes: htpasswd (env REGISTRY_AUTH_HTPASSWD_PATH) and berth (env BERTH_AUTH_BERTH_SERVICE); expected exactly one of none, htpasswd, berth"
    );
    assert_eq!(p.source, env_source("BERTH_AUTH_BERTH_SERVICE"));
}

#[test]
fn bad_auth_modes_name_auth_and_list_the_modes() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "auth:\n  htpasswd:\n    realm: Registry\n    path: /auth/htpasswd\n  berth: {}\n",
            "auth",
            "several modes given (htpasswd, berth); expected exactly one of none, htpasswd, berth",
        ),
        (
            "auth:\n  none:\n  berth:\n",
            "auth",
            "several modes given (none, berth)",
        ),
        (
            "auth:\n  ldap:\n    url: ldap://ldap.example.com\n",
            "auth",
            "unknown mode \"ldap\"; expected one of none, htpasswd, berth",
        ),
        (
            "auth: ldap\n",
            "auth",
            "unknown mode \"ldap\"; expected one of none, htpasswd, berth",
        ),
        (
            "auth:\n  Htpasswd: {}\n",
            "auth",
            "unknown mode \"Htpasswd\"; expected one of none, htpasswd, berth (did you mean htpasswd?)",
        ),
        (
            "auth: \"\"\n",
            "auth",
            "unknown mode \"\"; expected one of none, htpasswd, berth",
        ),
        (
            "auth:\n",
            "auth",
            "no mode given; expected exactly one of none, htpasswd, berth",
        ),
        ("auth: {}\n", "auth", "no mode given"),
        (
            "auth: [none]\n",
            "auth",
            "expected a mode (none, htpasswd, berth) or a mapping with one of them as its only key, found a list",
        ),
        ("auth: true\n", "auth", "found true"),
        (
            "auth:\n  1: {}\n",
            "auth",
            "a mode must be a name; expected one of none, htpasswd, berth, found 1",
        ),
        (
            "auth:\n  htpasswd: yes\n",
            "auth.htpasswd",
            "expected a mapping of keys, found \"yes\"",
        ),
        // Unknown keys inside a mode are unknown keys, with their path.
        (
            "auth:\n  berth:\n    audience: registry\n",
            "auth.berth.audience",
            "unknown key; expected one of service, issuer, realm, tokenexpiry, refreshtokenexpiry, key, certificate",
        ),
        (
            "auth:\n  none:\n    realm: Registry\n",
            "auth.none.realm",
            "unknown key; this section takes no keys",
        ),
    ];
    for (yaml, path, want) in cases {
        let error = err(yaml, &[]);
        assert_eq!(error.problems.len(), 1, "{yaml}:\n{error}");
        let p = problem(&error, path);
        assert!(
            p.message.contains(want),
            "{path}: {:?} does not contain {want:?}",
            p.message
        );
        assert_eq!(p.source, Source::File, "{yaml}");
    }

    // A misspelt key leaves the key it was meant to be missing, too.
    let error = err(
        "auth:\n  htpasswd:\n    relm: Registry\n    path: /auth/htpasswd\n",
        &[],
    );
    assert_eq!(error.problems.len(), 2, "{error}");
    assert_eq!(
        problem(&error, "auth.htpasswd.relm").message,
        "unknown key; expected one of realm, path (did you mean realm?)"
    );
    problem(&error, "auth.htpasswd.realm");

    // From the environment.
    let error = err("", &[("REGISTRY_AUTH", "ldap")]);
    let p = problem(&error, "auth");
    assert_eq!(
        p.message,
        "unknown mode \"ldap\"; expected one of none, htpasswd, berth"
    );
    assert_eq!(p.source, env_source("REGISTRY_AUTH"));
    let error = err("", &[("BERTH_AUTH_LDAP_URL", "ldap://ldap.example.com")]);
    assert!(
        problem(&error, "auth.ldap")
            .message
            .starts_with("unknown mode \"ldap\"; expected one of none, htpasswd, berth")
    );
    let error = err("", &[("BERTH_AUTH_HTPASSWD_RELM", "Registry")]);
    assert!(
        problem(&error, "auth.htpasswd.relm")
            .message
            .ends_with("(did you mean realm?)")
    );
    let error = err("", &[("REGISTRY_AUTH_HTPASSWD", "/auth/htpasswd")]);
    assert_eq!(
        problem(&error, "auth.htpasswd").message,
        "is a mode of auth; choose it with REGISTRY_AUTH=htpasswd, and set its keys with REGISTRY_AUTH_HTPASSWD_<KEY> variables"
    );
    // REGISTRY_ variables are shared with other software: an unknown one is a warning.
    let loaded = ok("", &[("REGISTRY_AUTH_LDAP_URL", "ldap://ldap.example.com")]);
    assert_eq!(loaded.config.auth, AuthConfig::default());
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].starts_with("auth.ldap: unknown mode"));
}

#[test]
fn registry_token_and_silly_modes_are_not_supported() {
    const TOKEN: &str = "not supported yet: berth is its own token server: use auth.berth, or point registry:2 at berth's /token";
    const SILLY: &str = "not supported yet: a development-only mode; use auth: none";
    let cases: &[(&str, &str, &str)] = &[
        (
            "auth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry\n    issuer: auth\n    rootcertbundle: /certs/bundle.pem\n",
            "auth.token",
            TOKEN,
        ),
        ("auth: token\n", "auth.token", TOKEN),
        (
            "auth:\n  silly:\n    realm: https://auth.example.com\n    service: registry\n",
            "auth.silly",
            SILLY,
        ),
        ("auth: silly\n", "auth.silly", SILLY),
    ];
    for (yaml, path, want) in cases {
        let error = err(yaml, &[]);
        assert_eq!(error.problems.len(), 1, "{yaml}:\n{error}");
        let p = problem(&error, path);
        assert_eq!(p.message, *want);
        assert_eq!(p.source, Source::File);
    }
    for (var, value, path, want) in [
        ("REGISTRY_AUTH", "token", "auth.token", TOKEN),
        (
            "REGISTRY_AUTH_TOKEN_REALM",
            "https://auth.example.com/token",
            "auth.token",
            TOKEN,
        ),
        ("REGISTRY_AUTH", "silly", "auth.silly", SILLY),
        ("BERTH_AUTH", "Silly", "auth.silly", SILLY),
    ] {
        let error = err("", &[(var, value)]);
        assert_eq!(error.problems.len(), 1, "{var}:\n{error}");
        let p = problem(&error, path);
        assert_eq!(p.message, want);
        assert_eq!(p.source, env_source(var));
    }
}

#[test]
fn bad_auth_values_name_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "auth:\n  htpasswd:\n    path: /auth/htpasswd\n",
            "auth.htpasswd.realm",
            "required with auth: htpasswd",
        ),
        (
            "auth:\n  htpasswd:\n    realm: \"\"\n    path: /auth/htpasswd\n",
            "auth.htpasswd.realm",
            "required with auth: htpasswd",
        ),
        (
            "auth:\n  htpasswd:\n    realm: Registry\n",
            "auth.htpasswd.path",
            "required with auth: htpasswd",
        ),
        (
            "auth:\n  htpasswd:\n    realm: 'My \"Registry\"'\n    path: /auth/htpasswd\n",
            "auth.htpasswd.realm",
            "invalid realm \"My \\\"Registry\\\"\": must not contain '\"'",
        ),
        (
            "auth:\n  htpasswd:\n    realm: [a]\n    path: /auth/htpasswd\n",
            "auth.htpasswd.realm",
            "invalid type: sequence",
        ),
        (
            "auth:\n  berth:\n    service: 'registry\"example'\n",
            "auth.berth.service",
            "invalid service \"registry\\\"example\": must not contain '\"' or '\\' (it is quoted in authentication challenges)",
        ),
        (
            "auth:\n  berth:\n    service: 'a\\b'\n",
            "auth.berth.service",
            "must not contain '\"' or '\\'",
        ),
        (
            "auth:\n  berth:\n    service: \"\"\n",
            "auth.berth.service",
            "must not be empty",
        ),
        (
            "auth:\n  berth:\n    issuer: \"berth\\tauth\"\n",
            "auth.berth.issuer",
            "must not contain control characters",
        ),
        (
            "auth:\n  berth:\n    issuer: dépôt\n",
            "auth.berth.issuer",
            "must be ASCII",
        ),
        (
            "auth:\n  berth:\n    realm: registry.example.com/token\n",
            "auth.berth.realm",
            "invalid URL",
        ),
        (
            "auth:\n  berth:\n    realm: ftp://registry.example.com/token\n",
            "auth.berth.realm",
            "must be an http:// or https:// URL",
        ),
        (
            "auth:\n  berth:\n    tokenexpiry: 29s\n",
            "auth.berth.tokenexpiry",
            "29s is out of range: registry tokens live from 30s to 24h",
        ),
        (
            "auth:\n  berth:\n    tokenexpiry: 24h0m1s\n",
            "auth.berth.tokenexpiry",
            "24h1s is out of range",
        ),
        (
            "auth:\n  berth:\n    tokenexpiry: 0\n",
            "auth.berth.tokenexpiry",
            "0s is out of range",
        ),
        (
            "auth:\n  berth:\n    tokenexpiry: 10\n",
            "auth.berth.tokenexpiry",
            "missing unit",
        ),
        (
            "auth:\n  berth:\n    refreshtokenexpiry: 59m59s\n",
            "auth.berth.refreshtokenexpiry",
            "59m59s is out of range: refresh tokens live from 1h to 8760h",
        ),
        (
            "auth:\n  berth:\n    refreshtokenexpiry: 8761h\n",
            "auth.berth.refreshtokenexpiry",
            "8761h is out of range",
        ),
        (
            "auth:\n  berth:\n    key: /keys/token.key\n",
            "auth.berth.certificate",
            "required when auth.berth.key is set",
        ),
        (
            "auth:\n  berth:\n    certificate: /keys/token.crt\n",
            "auth.berth.key",
            "required when auth.berth.certificate is set",
        ),
    ];
    for (yaml, path, want) in cases {
        let error = err(yaml, &[]);
        assert_eq!(error.problems.len(), 1, "{yaml}:\n{error}");
        let p = problem(&error, path);
        assert!(
            p.message.contains(want),
            "{path}: {:?} does not contain {want:?}",
            p.message
        );
        assert_eq!(p.source, Source::File, "{path}");
    }

    // The bounds themselves are allowed.
    for (token, refresh) in [("30s", "1h"), ("24h", "8760h")] {
        let yaml = format!(
            "auth:\n  berth:\n    tokenexpiry: {token}\n    refreshtokenexpiry: {refresh}\n"
        );
        ok(&yaml, &[]);
    }

    // From the environment, blamed on the variable.
    for (var, value, path) in [
        (
            "BERTH_AUTH_BERTH_TOKENEXPIRY",
            "25h",
            "auth.berth.tokenexpiry",
        ),
        (
            "REGISTRY_AUTH_BERTH_REFRESHTOKENEXPIRY",
            "30m",
            "auth.berth.refreshtokenexpiry",
        ),
        ("BERTH_AUTH_BERTH_SERVICE", "a\"b", "auth.berth.service"),
        (
            "BERTH_AUTH_BERTH_KEY",
            "/keys/token.key",
            "auth.berth.certificate",
        ),
        (
            "REGISTRY_AUTH_HTPASSWD_REALM",
            "Registry",
            "auth.htpasswd.path",
        ),
    ] {
        let error = err("", &[(var, value)]);
        assert_eq!(error.problems.len(), 1, "{var}:\n{error}");
        assert_eq!(problem(&error, path).source, env_source(var), "{var}");
    }
    // Both key and certificate, and an empty variable unsets the file's key.
    let loaded = ok(
        "",
        &[
            ("BERTH_AUTH_BERTH_KEY", "/keys/token.key"),
            ("BERTH_AUTH_BERTH_CERTIFICATE", "/keys/token.crt"),
        ],
    );
    let AuthConfig::Berth(berth) = &loaded.config.auth else {
        panic!("{:?}", loaded.config.auth);
    };
    assert_eq!(berth.key, Some(PathBuf::from("/keys/token.key")));
    assert_eq!(berth.certificate, Some(PathBuf::from("/keys/token.crt")));
    let loaded = ok(
        "auth:\n  berth:\n    key: /k.pem\n    certificate: /c.pem\n",
        &[
            ("BERTH_AUTH_BERTH_KEY", ""),
            ("BERTH_AUTH_BERTH_CERTIFICATE", ""),
        ],
    );
    assert_eq!(loaded.config.auth, AuthConfig::default());
}

#[test]
fn auth_none_warns() {
    const WARNING: &str = "auth: none: anyone who can reach berth can push, pull and delete";
    let loaded = ok("auth: none\n", &[]);
    assert_eq!(loaded.warnings, [format!("{WARNING} (from file)")]);
    let loaded = ok(HTPASSWD_FILE, &[("REGISTRY_AUTH", "none")]);
    assert_eq!(
        loaded.warnings,
        [format!("{WARNING} (from env REGISTRY_AUTH)")]
    );
    for yaml in ["", "auth: berth\n", HTPASSWD_FILE] {
        assert!(ok(yaml, &[]).warnings.is_empty(), "{yaml}");
    }
}

#[test]
fn explain_shows_the_auth_mode_then_its_settings() {
    let loaded = ok("", REGISTRY_HTPASSWD_COMPOSE);
    let text = crate::explain(&loaded);
    assert_eq!(
        auth_lines(&text),
        [
            "auth = htpasswd",
            "auth.htpasswd.realm = Registry",
            "auth.htpasswd.path = /auth/htpasswd",
        ],
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with("auth = ")).unwrap();
    assert!(line.contains("(env REGISTRY_AUTH)"), "{line}");
    assert!(line.contains("-- how clients authenticate"), "{line}");
    // Between http and storage, as in the key table.
    let lines: Vec<&str> = text.lines().collect();
    let auth = lines.iter().position(|l| l.starts_with("auth = ")).unwrap();
    assert!(lines[auth - 1].starts_with("http."), "{text}");
    assert!(lines[auth + 3].starts_with("storage."), "{text}");

    let loaded = ok("auth: none\n", &[]);
    let text = crate::explain(&loaded);
    assert_eq!(auth_lines(&text), ["auth = none"], "{text}");
    assert!(
        text.contains("\nwarnings:\n  - auth: none: anyone who can reach berth can push, pull and delete (from file)\n"),
        "{text}"
    );

    let text = crate::explain(&ok("", &[]));
    assert_eq!(
        auth_lines(&text),
        [
            "auth = berth",
            "auth.berth.service = berth",
            "auth.berth.issuer = berth",
            "auth.berth.realm = (from each request)",
            "auth.berth.tokenexpiry = 5m",
            "auth.berth.refreshtokenexpiry = 720h",
            "auth.berth.key = (unset; generated by berth)",
            "auth.berth.certificate = (unset; generated by berth)",
            "auth.berth.auditretention = 2160h",
        ],
        "{text}"
    );
    assert!(text.ends_with("\nno warnings\n"), "{text}");

    let loaded = ok(
        "auth:\n  berth:\n    service: registry.example.com\n    realm: https://registry.example.com/token\n    tokenexpiry: 1.5h\n    key: /keys/token.key\n    certificate: /keys/token.crt\n",
        &[("BERTH_AUTH_BERTH_ISSUER", "issuer.example.com")],
    );
    let text = crate::explain(&loaded);
    assert_eq!(
        auth_lines(&text),
        [
            "auth = berth",
            "auth.berth.service = registry.example.com",
            "auth.berth.issuer = issuer.example.com",
            "auth.berth.realm = https://registry.example.com/token",
            "auth.berth.tokenexpiry = 1h30m",
            "auth.berth.refreshtokenexpiry = 720h",
            "auth.berth.key = /keys/token.key",
            "auth.berth.certificate = /keys/token.crt",
            "auth.berth.auditretention = 2160h",
        ],
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("auth.berth.issuer = "))
        .unwrap();
    assert!(line.contains("(env BERTH_AUTH_BERTH_ISSUER)"), "{line}");
    let line = text.lines().find(|l| l.starts_with("auth = ")).unwrap();
    assert!(line.contains("(file)"), "{line}");
}
