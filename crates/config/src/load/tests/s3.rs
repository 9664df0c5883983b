//! `storage.s3` and `storage.redirect`.

use super::*;

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
