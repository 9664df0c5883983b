//! berth's `webhooks`: a map from names to sections.

use super::*;
use crate::model::WebhookFormat;

const WEBHOOKS: &str = "\
webhooks:
  ci:
    url: https://ci.example.com/hooks/registry
    format: distribution
    events: [manifest.pushed, tag.deleted]
    repositories: [team/**, library/*]
    headers:
      Authorization: [Bearer hunter2]
    secret: whsec_aHVudGVyMmh1bnRlcjJodW50ZXIy
    timeout: 10s
    backoff: 2s
    maxbackoff: 10m
    maxage: 24h
    ignoredmediatypes: [application/octet-stream]
    disabled: true
  chat.ops:
    url: https://hooks.slack.example/services/T0/B0/x
    format: slack
    events: ['*']
";

#[test]
fn webhooks_load_from_the_file() {
    let loaded = ok(WEBHOOKS, &[]);
    let webhooks = &loaded.config.webhooks;
    assert_eq!(
        webhooks.keys().collect::<Vec<_>>(),
        ["chat.ops", "ci"],
        "{webhooks:?}"
    );
    let ci = &webhooks["ci"];
    assert_eq!(
        ci.url.as_ref().unwrap().as_str(),
        "https://ci.example.com/hooks/registry"
    );
    assert_eq!(ci.format, WebhookFormat::Distribution);
    assert_eq!(ci.events, ["manifest.pushed", "tag.deleted"]);
    let patterns: Vec<&str> = ci.repositories.iter().map(|p| p.as_str()).collect();
    assert_eq!(patterns, ["team/**", "library/*"]);
    assert_eq!(ci.headers["Authorization"], ["Bearer hunter2"]);
    assert_eq!(
        ci.secret.as_deref(),
        Some("whsec_aHVudGVyMmh1bnRlcjJodW50ZXIy")
    );
    assert_eq!(ci.timeout, Some(Duration::from_secs(10)));
    assert_eq!(ci.backoff, Some(Duration::from_secs(2)));
    assert_eq!(ci.maxbackoff, Some(Duration::from_secs(600)));
    assert_eq!(ci.maxage, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(ci.ignoredmediatypes, ["application/octet-stream"]);
    assert!(ci.disabled);
    // What a webhook leaves out.
    let chat = &webhooks["chat.ops"];
    assert_eq!(chat.format, WebhookFormat::Slack);
    assert_eq!(chat.events, ["*"]);
    assert!(chat.repositories.is_empty() && chat.headers.is_empty());
    assert_eq!((chat.secret.as_ref(), chat.timeout), (None, None));
    assert!(!chat.disabled);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.sources["webhooks.ci.maxage"], Source::File);
    assert_eq!(loaded.sources["webhooks.chat.ops.timeout"], Source::Default);

    let defaults = ok("webhooks:\n  ci:\n    url: http://h/x\n", &[]);
    assert_eq!(
        defaults.config.webhooks["ci"].format,
        WebhookFormat::CloudEvents
    );
    assert!(defaults.config.webhooks["ci"].events.is_empty());
    assert!(ok("", &[]).config.webhooks.is_empty());
    assert!(ok("webhooks:\n", &[]).config.webhooks.is_empty());
}

#[test]
fn explain_lists_each_webhook_with_secrets_hidden() {
    let loaded = ok(WEBHOOKS, &[]);
    let text = crate::explain(&loaded);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("aHVudGVy"), "{text}");
    let debug = format!("{:?}", loaded.config);
    assert!(
        !debug.contains("hunter2") && !debug.contains("aHVudGVy"),
        "{debug}"
    );
    for (path, value) in [
        ("webhooks.ci.secret", "(set)"),
        ("webhooks.ci.headers", "{Authorization: (set)}"),
        ("webhooks.ci.repositories", "[team/**, library/*]"),
        ("webhooks.ci.events", "[manifest.pushed, tag.deleted]"),
        ("webhooks.ci.format", "distribution"),
        ("webhooks.chat.ops.secret", "(unset)"),
        ("webhooks.chat.ops.timeout", "(unset)"),
        ("webhooks.chat.ops.headers", "{}"),
    ] {
        assert_eq!(setting(&loaded, path), value, "{path}");
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("webhooks.ci.maxage = 24h"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("(file)") && line.contains("-- how long an event is retried"),
        "{line}"
    );
    assert_eq!(setting(&ok("", &[]), "webhooks"), "{}");
}

#[test]
fn bad_webhooks_name_the_key() {
    let error = err(
        "\
webhooks:
  ci:
    format: xml
    events: [manifest.pushed, Manifest Pushed, tag]
    repositories: [Team/*]
    timeout: soon
    backoff: 1m
    maxbackoff: 30s
    maxage: 0s
    secret: 12345678901234567890
  Bad Name:
    url: http://h/x
  ftp:
    url: ftp://h/x
",
        &[],
    );
    let expected = [
        (
            "webhooks.ci.format",
            "invalid format \"xml\": expected cloudevents, distribution or slack",
        ),
        ("webhooks.ci.url", "required: the URL events are sent to"),
        (
            "webhooks.ci.events[1]",
            "invalid event \"Manifest Pushed\": expected an event kind such as manifest.pushed",
        ),
        ("webhooks.ci.events[2]", "invalid event \"tag\""),
        (
            "webhooks.ci.repositories[0]",
            "invalid repository pattern \"Team/*\"",
        ),
        ("webhooks.ci.timeout", "invalid duration \"soon\""),
        ("webhooks.ci.maxbackoff", "30s is shorter than backoff (1m)"),
        ("webhooks.ci.maxage", "must be greater than 0"),
        (
            "webhooks.ci.secret",
            "the value is a secret and is not shown",
        ),
        (
            "webhooks.Bad Name",
            "invalid name \"Bad Name\": expected 1 to 64 lowercase letters",
        ),
        ("webhooks.ftp.url", "must be an http:// or https:// URL"),
    ];
    for (path, want) in expected {
        let p = problem(&error, path);
        assert!(p.message.contains(want), "{path}: {}", p.message);
        assert_eq!(p.source, Source::File, "{path}");
    }
    assert_eq!(error.problems.len(), expected.len(), "{error}");
    assert!(
        !error.to_string().contains("12345678901234567890"),
        "{error}"
    );
}

#[test]
fn unknown_keys_in_a_webhook_name_it() {
    let error = err(
        "webhooks:\n  ci:\n    urll: http://h/x\n    evnets: ['*']\n",
        &[],
    );
    assert!(
        problem(&error, "webhooks.ci.urll")
            .message
            .ends_with("(did you mean url?)")
    );
    assert!(
        problem(&error, "webhooks.ci.evnets")
            .message
            .ends_with("(did you mean events?)")
    );
    only_problem(
        "webhooks:\n  - url: http://h/x\n",
        &[],
        "webhooks",
        "expected a mapping of keys, found a list",
        Source::File,
    );
    only_problem(
        "webhooks:\n  ci: http://h/x\n",
        &[],
        "webhooks.ci",
        "expected a mapping of keys, found \"http://h/x\"",
        Source::File,
    );
    only_problem(
        "webhooks:\n  1: {url: 'http://h/x'}\n",
        &[],
        "webhooks",
        "the names of its entries must be strings, found 1",
        Source::File,
    );
}

#[test]
fn webhook_and_notification_endpoint_names_differ() {
    let error = err(
        "notifications:\n  endpoints:\n    - name: ci\n      url: http://h/a\nwebhooks:\n  ci:\n    url: http://h/b\n",
        &[],
    );
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(
        problem(&error, "webhooks.ci").message,
        "\"ci\" is also the name of notifications.endpoints[0]; webhooks and notification endpoints need different names"
    );
}

#[test]
fn the_environment_cannot_address_webhooks() {
    for var in [
        "BERTH_WEBHOOKS_CI_URL",
        "BERTH_WEBHOOKS",
        "REGISTRY_WEBHOOKS_CI_URL",
    ] {
        only_problem(
            "",
            &[(var, "http://h/x")],
            "webhooks",
            "can only be set in the config file: it is a map of named sections, whose entries environment variables cannot address",
            env_source(var),
        );
    }
    // Together with the file's webhooks, still an error (not a silent merge).
    let error = err(WEBHOOKS, &[("BERTH_WEBHOOKS_CI_TIMEOUT", "1s")]);
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(
        error.to_string(),
        "webhooks: can only be set in the config file: it is a map of named sections, whose entries environment variables cannot address (from env BERTH_WEBHOOKS_CI_TIMEOUT)"
    );
    // The file's own problems below are still all reported.
    let error = err(
        "webhooks:\n  ci:\n    timeout: 1s\n  Bad:\n    url: http://h/x\n",
        &[("BERTH_WEBHOOKS_CI_URL", "http://h/y")],
    );
    assert_eq!(error.problems.len(), 3, "{error}");
    problem(&error, "webhooks");
    problem(&error, "webhooks.ci.url");
    problem(&error, "webhooks.Bad");
}
