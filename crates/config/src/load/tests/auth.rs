//! `auth`: its modes in the file, their settings, and how explain shows them.

use super::*;

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
        only_problem(yaml, &[], path, want, Source::File);
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
            "auth.berth.requiremfa = none",
            "auth.berth.passkeys = auto",
            "auth.berth.ldap = (unset)",
            "auth.berth.oidc = {}",
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
            "auth.berth.requiremfa = none",
            "auth.berth.passkeys = auto",
            "auth.berth.ldap = (unset)",
            "auth.berth.oidc = {}",
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

#[test]
fn requiremfa_from_the_file_the_environment_and_refused_when_unknown() {
    let AuthConfig::Berth(default) = ok("", &[]).config.auth else {
        panic!("berth's own mode by default");
    };
    assert_eq!(default.requiremfa, RequireMfa::None);
    assert_eq!(
        ok("auth:\n  berth:\n    requiremfa: admins\n", &[])
            .config
            .auth,
        berth_auth(|b| b.requiremfa = RequireMfa::Admins)
    );
    let loaded = ok("", &[("BERTH_AUTH_BERTH_REQUIREMFA", "all")]);
    assert_eq!(
        loaded.config.auth,
        berth_auth(|b| b.requiremfa = RequireMfa::All)
    );
    assert_eq!(
        loaded.sources["auth.berth.requiremfa"],
        env_source("BERTH_AUTH_BERTH_REQUIREMFA")
    );
    let error = err("auth:\n  berth:\n    requiremfa: everyone\n", &[]);
    let problem = problem(&error, "auth.berth.requiremfa");
    assert!(
        problem.message.contains("expected none, admins or all"),
        "{problem}"
    );
}

#[test]
fn passkeys_from_the_file_and_the_environment_and_on_needs_the_public_url() {
    let AuthConfig::Berth(default) = ok("", &[]).config.auth else {
        panic!("berth's own mode by default");
    };
    assert_eq!(default.passkeys, PasskeysMode::Auto);
    assert_eq!(
        ok("auth:\n  berth:\n    passkeys: off\n", &[]).config.auth,
        berth_auth(|b| b.passkeys = PasskeysMode::Off)
    );
    let loaded = ok(
        "http:\n  host: https://registry.example.com\n",
        &[("BERTH_AUTH_BERTH_PASSKEYS", "on")],
    );
    assert_eq!(
        loaded.config.auth,
        berth_auth(|b| b.passkeys = PasskeysMode::On)
    );
    let error = err("auth:\n  berth:\n    passkeys: on\n", &[]);
    let found = problem(&error, "auth.berth.passkeys");
    assert!(found.message.contains("set http.host"), "{found}");
    let error = err("auth:\n  berth:\n    passkeys: maybe\n", &[]);
    let problem = problem(&error, "auth.berth.passkeys");
    assert!(
        problem.message.contains("expected auto, on or off"),
        "{problem}"
    );
}

#[test]
fn ldap_and_oidc_from_the_file_the_environment_and_refused_when_wrong() {
    let loaded = ok(
        "auth:\n  berth:\n    ldap:\n      url: ldaps://ldap.example.com\n      binddn: cn=berth,dc=example,dc=com\n      userbase: ou=people,dc=example,dc=com\n      teams:\n        cn-devs: developers\n    oidc:\n      keycloak:\n        issuer: https://sso.example.com/realms/main\n        clientid: berth\n        groupsclaim: groups\n",
        &[("BERTH_AUTH_BERTH_LDAP_BINDPASSWORD", "directory secret")],
    );
    let AuthConfig::Berth(berth) = &loaded.config.auth else {
        panic!("{:?}", loaded.config.auth);
    };
    let ldap = berth.ldap.as_ref().unwrap();
    assert_eq!(ldap.url, "ldaps://ldap.example.com");
    assert_eq!(ldap.bindpassword.as_deref(), Some("directory secret"));
    assert_eq!(ldap.loginattribute, "uid");
    assert_eq!(ldap.teams["cn-devs"], "developers");
    assert_eq!(
        loaded.sources["auth.berth.ldap.bindpassword"],
        env_source("BERTH_AUTH_BERTH_LDAP_BINDPASSWORD")
    );
    let keycloak = &berth.oidc["keycloak"];
    assert_eq!(keycloak.clientid, "berth");
    assert_eq!(keycloak.usernameclaim, "preferred_username");
    assert_eq!(keycloak.groupsclaim.as_deref(), Some("groups"));
    let text = crate::explain(&loaded);
    assert!(!text.contains("directory secret"), "{text}");

    let error = err(
        "auth:\n  berth:\n    ldap:\n      url: http://ldap.example.com\n      userbase: ''\n      userfilter: objectClass=person\n",
        &[],
    );
    for (path, wanted) in [
        ("auth.berth.ldap.url", "expected ldap://"),
        ("auth.berth.ldap.userbase", "required"),
        ("auth.berth.ldap.userfilter", "parentheses"),
    ] {
        let problem = problem(&error, path);
        assert!(problem.message.contains(wanted), "{problem}");
    }
    let error = err(
        "auth:\n  berth:\n    oidc:\n      bad/name:\n        issuer: http://sso.example.com\n        clientid: berth\n",
        &[],
    );
    let issuer = problem(&error, "auth.berth.oidc.bad/name.issuer");
    assert!(
        issuer
            .message
            .contains("http:// only for a provider on this host"),
        "{issuer}"
    );
    let error = err(
        "auth:\n  berth:\n    oidc:\n      bad/name:\n        issuer: http://127.0.0.1:4000\n        clientid: berth\n",
        &[],
    );
    let problem = problem(&error, "auth.berth.oidc");
    assert!(
        problem
            .message
            .contains("invalid provider name \"bad/name\""),
        "{problem}"
    );
}
