//! The environment: how variable names map onto keys, and what is wrong with them.

use super::*;

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
        only_problem("", &[(var, value)], path, want, env_source(var));
    }
}
