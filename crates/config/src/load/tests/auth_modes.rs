//! `auth`: which mode the file and the environment choose, and modes berth lacks.

use super::*;

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
        only_problem(yaml, &[], path, want, Source::File);
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
