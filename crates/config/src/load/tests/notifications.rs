//! registry:2's `notifications`: a list of endpoint sections, walked and typed per element.

use super::*;
use crate::model::NotificationAction;

/// registry:2's documented example, with a second endpoint that keeps every default.
const REGISTRY_NOTIFICATIONS: &str = "\
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer hunter2]
        X-Team: [ci, ops]
      timeout: 500ms
      threshold: 5
      backoff: 2s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
          - application/vnd.oci.image.config.v1+json
        actions:
          - pull
          - MOUNT
    - name: audit.log
      url: http://10.0.0.7:8080/in?source=berth
";

#[test]
fn registry_notification_endpoints_load_from_the_file() {
    let loaded = ok(REGISTRY_NOTIFICATIONS, &[]);
    let endpoints = &loaded.config.notifications.endpoints;
    assert_eq!(endpoints.len(), 2);
    let first = &endpoints[0];
    assert_eq!(first.name, "alistener");
    assert!(!first.disabled);
    assert_eq!(
        first.url.as_ref().unwrap().as_str(),
        "https://my.listener.com/event"
    );
    assert_eq!(
        first.headers["X-Team"],
        vec!["ci".to_owned(), "ops".to_owned()]
    );
    assert_eq!(first.timeout, Duration::from_millis(500));
    assert_eq!(first.threshold, 5);
    assert_eq!(first.backoff, Duration::from_secs(2));
    assert_eq!(first.ignoredmediatypes, ["application/octet-stream"]);
    assert_eq!(
        first.ignore.mediatypes,
        ["application/vnd.oci.image.config.v1+json"]
    );
    assert_eq!(
        first.ignore.actions,
        [NotificationAction::Pull, NotificationAction::Mount]
    );
    // registry:2's defaults for what the second endpoint leaves out.
    let second = &endpoints[1];
    assert_eq!(
        second.url.as_ref().unwrap().as_str(),
        "http://10.0.0.7:8080/in?source=berth"
    );
    assert_eq!(second.timeout, Duration::from_secs(1));
    assert_eq!(second.threshold, 10);
    assert_eq!(second.backoff, Duration::from_secs(1));
    assert!(second.headers.is_empty() && second.ignore.actions.is_empty());

    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].starts_with(
            "notifications.events.includereferences: ignored: berth's events do not list a manifest's references"
        ),
        "{}",
        loaded.warnings[0]
    );
    assert_eq!(
        loaded.sources["notifications.endpoints[0].timeout"],
        Source::File
    );
    assert_eq!(
        loaded.sources["notifications.endpoints[1].timeout"],
        Source::Default
    );
}

#[test]
fn explain_lists_each_endpoint_with_credentials_hidden() {
    let loaded = ok(REGISTRY_NOTIFICATIONS, &[]);
    assert_eq!(
        setting(&loaded, "notifications.endpoints[0].url"),
        "https://my.listener.com/event"
    );
    assert_eq!(
        setting(&loaded, "notifications.endpoints[0].headers"),
        "{Authorization: (set), X-Team: [ci, ops]}"
    );
    assert_eq!(
        setting(&loaded, "notifications.endpoints[0].ignore.actions"),
        "[pull, mount]"
    );
    assert_eq!(setting(&loaded, "notifications.endpoints[1].timeout"), "1s");
    let text = crate::explain(&loaded);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
    // Each element's settings carry their key's meaning.
    let line = text
        .lines()
        .find(|l| l.starts_with("notifications.endpoints[1].threshold = 10"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("(default)") && line.contains("-- how many failures in a row"),
        "{line}"
    );
    assert!(
        text.contains("notifications.endpoints[0].name = alistener"),
        "{text}"
    );
    // No endpoints: one setting.
    let none = ok("", &[]);
    assert_eq!(setting(&none, "notifications.endpoints"), "[]");
    assert!(
        ok("notifications:\n  endpoints:\n", &[])
            .config
            .notifications
            .endpoints
            .is_empty()
    );
}

#[test]
fn unknown_keys_in_an_endpoint_name_the_element() {
    let error = err(
        "notifications:\n  endpoints:\n    - name: a\n      url: http://h/a\n      ignore:\n        action: [pull]\n    - name: b\n      urll: http://h/b\n  endpionts: []\n",
        &[],
    );
    assert_eq!(error.problems.len(), 4, "{error}");
    let p = problem(&error, "notifications.endpoints[1].urll");
    assert!(p.message.ends_with("(did you mean url?)"), "{}", p.message);
    assert_eq!(p.source, Source::File);
    let p = problem(&error, "notifications.endpoints[0].ignore.action");
    assert!(
        p.message.ends_with("(did you mean actions?)"),
        "{}",
        p.message
    );
    assert!(
        problem(&error, "notifications.endpionts")
            .message
            .ends_with("(did you mean endpoints?)")
    );
    // The element whose url was misspelt has none.
    assert!(
        problem(&error, "notifications.endpoints[1].url")
            .message
            .starts_with("required")
    );
}

#[test]
fn bad_endpoint_values_name_the_element() {
    let error = err(
        "\
notifications:
  endpoints:
    - name: a
      url: ftp://h/a
      timeout: soon
      threshold: -1
    - name: b
      url: http://h/b
      backoff: 10
      disabled: maybe
      headers:
        Content-Length: ['1']
      ignore:
        actions: [push, eat]
",
        &[],
    );
    let expected = [
        ("notifications.endpoints[0].url", "http:// or https://"),
        (
            "notifications.endpoints[0].timeout",
            "invalid duration \"soon\"",
        ),
        (
            "notifications.endpoints[0].threshold",
            "must not be negative",
        ),
        ("notifications.endpoints[1].backoff", "missing unit"),
        ("notifications.endpoints[1].disabled", "expected a boolean"),
        (
            "notifications.endpoints[1].headers.Content-Length",
            "set by berth",
        ),
        (
            "notifications.endpoints[1].ignore.actions[1]",
            "invalid action \"eat\": expected push, pull, delete or mount",
        ),
    ];
    for (path, want) in expected {
        let p = problem(&error, path);
        assert!(p.message.contains(want), "{path}: {}", p.message);
        assert_eq!(p.source, Source::File, "{path}");
    }
    assert_eq!(error.problems.len(), expected.len(), "{error}");
    assert!(
        error
            .to_string()
            .contains("notifications.endpoints[0].timeout: invalid duration \"soon\""),
        "{error}"
    );

    let zero = err(
        "notifications:\n  endpoints:\n    - {name: a, url: 'http://h/a', timeout: 0s, threshold: 0}\n",
        &[],
    );
    assert_eq!(
        problem(&zero, "notifications.endpoints[0].timeout").message,
        "must be greater than 0"
    );
    assert_eq!(
        problem(&zero, "notifications.endpoints[0].threshold").message,
        "must be at least 1"
    );
}

#[test]
fn endpoints_need_a_unique_valid_name_and_a_url() {
    let error = err(
        "\
notifications:
  endpoints:
    - url: http://h/a
    - name: listener
    - name: listener
      url: http://h/c
    - name: My Listener
      url: http://h/d
",
        &[],
    );
    assert_eq!(error.problems.len(), 4, "{error}");
    assert_eq!(
        problem(&error, "notifications.endpoints[0].name").message,
        "required: a unique name for the endpoint"
    );
    assert_eq!(
        problem(&error, "notifications.endpoints[1].url").message,
        "required: the URL events are sent to"
    );
    assert_eq!(
        problem(&error, "notifications.endpoints[2].name").message,
        "\"listener\" is also the name of notifications.endpoints[1]; names must be unique"
    );
    assert!(
        problem(&error, "notifications.endpoints[3].name")
            .message
            .starts_with("invalid name \"My Listener\": expected 1 to 64 lowercase letters")
    );
}

#[test]
fn endpoints_are_a_list_of_mappings() {
    only_problem(
        "notifications:\n  endpoints:\n    name: a\n",
        &[],
        "notifications.endpoints",
        "expected a list of mappings of keys, found a mapping",
        Source::File,
    );
    // A bad element is reported, and the next keeps its index.
    let error = err(
        "notifications:\n  endpoints:\n    - http://h/a\n    - name: b\n      url: http://h/b\n      timeout: x\n",
        &[],
    );
    assert_eq!(error.problems.len(), 2, "{error}");
    assert_eq!(
        problem(&error, "notifications.endpoints[0]").message,
        "expected a mapping of keys, found \"http://h/a\""
    );
    assert!(
        problem(&error, "notifications.endpoints[1].timeout")
            .message
            .contains("invalid duration")
    );
}

#[test]
fn the_environment_cannot_address_endpoints() {
    for var in [
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL",
        "REGISTRY_NOTIFICATIONS_ENDPOINTS",
        "BERTH_NOTIFICATIONS_ENDPOINTS_0_NAME",
    ] {
        only_problem(
            "",
            &[(var, "x")],
            "notifications.endpoints",
            "can only be set in the config file: it is a list of sections, whose entries environment variables cannot address",
            env_source(var),
        );
    }
    // With the file's endpoints, still an error: not a merge into one of them.
    only_problem(
        REGISTRY_NOTIFICATIONS,
        &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "5s")],
        "notifications.endpoints",
        "can only be set in the config file",
        env_source("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT"),
    );
    // The events section's key is a value, which a variable can give.
    let loaded = ok(
        "",
        &[("REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES", "false")],
    );
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].starts_with("notifications.events.includereferences: ignored: "),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded.warnings[0].ends_with("(from env REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES)")
    );
    only_problem(
        "",
        &[("BERTH_NOTIFICATIONS_EVENTS_BOGUS", "1")],
        "notifications.events.bogus",
        "unknown key",
        env_source("BERTH_NOTIFICATIONS_EVENTS_BOGUS"),
    );
}
