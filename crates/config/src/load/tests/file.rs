//! The file: registry:2 files, unknown and unsupported keys, precedence, problems, explain.

use super::*;

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
