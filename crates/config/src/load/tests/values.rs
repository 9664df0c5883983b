//! Values: bad values name their key; durations, proxies, headers, database URLs, secrets.

use super::*;

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
            "set by berth",
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
            "http:\n  maxconnections: 0\n",
            "http.maxconnections",
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
        only_problem(yaml, &[], path, want, Source::File);
    }
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
