//! `metrics` and registry:2's `http.debug`: what is measured, and where it is served.

use super::*;

#[test]
fn metrics_and_the_debug_listener_default_to_off_the_side() {
    let config = ok("", &[]).config;
    assert!(config.metrics.enabled);
    assert!(config.metrics.repositories.is_empty());
    assert!(!config.metrics.open);
    assert_eq!(config.http.debug.addr, None);
    assert!(!config.http.debug.prometheus.enabled);
    assert_eq!(config.http.debug.prometheus.path, "/metrics");
}

#[test]
fn registry_debug_listener_from_the_file() {
    let loaded = ok(
        "http:\n  debug:\n    addr: localhost:5001\n    prometheus:\n      enabled: true\n      path: /metrics\n",
        &[],
    );
    let debug = &loaded.config.http.debug;
    assert_eq!(
        debug.addr.as_ref().unwrap().socket_addr(),
        "127.0.0.1:5001".parse::<SocketAddr>().unwrap()
    );
    assert!(debug.prometheus.enabled);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(setting(&loaded, "http.debug.addr"), "localhost:5001");
    assert_eq!(
        loaded.sources["http.debug.prometheus.enabled"],
        Source::File
    );
}

#[test]
fn metrics_from_the_file() {
    let loaded = ok(
        "metrics:\n  enabled: true\n  repositories:\n    - team/**\n    - library/*\n  open: true\n",
        &[],
    );
    let metrics = &loaded.config.metrics;
    let patterns: Vec<&str> = metrics.repositories.iter().map(|p| p.as_str()).collect();
    assert_eq!(patterns, ["team/**", "library/*"]);
    assert!(metrics.open);
    assert_eq!(
        setting(&loaded, "metrics.repositories"),
        "[team/**, library/*]"
    );
    assert_eq!(setting(&ok("", &[]), "metrics.repositories"), "[]");
    assert!(
        ok("metrics:\n  repositories:\n", &[])
            .config
            .metrics
            .repositories
            .is_empty()
    );
}

#[test]
fn metrics_and_the_debug_listener_from_the_environment() {
    let loaded = ok(
        "metrics:\n  repositories: [other/*]\n",
        &[
            ("BERTH_METRICS_REPOSITORIES", "team/**, library/*,"),
            ("BERTH_METRICS_OPEN", "1"),
            ("REGISTRY_HTTP_DEBUG_ADDR", ":5001"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH", "/internal/metrics"),
        ],
    );
    let config = &loaded.config;
    let patterns: Vec<&str> = config
        .metrics
        .repositories
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(patterns, ["team/**", "library/*"]);
    assert!(config.metrics.open);
    assert_eq!(
        config.http.debug.addr.as_ref().unwrap().to_string(),
        ":5001"
    );
    assert!(config.http.debug.prometheus.enabled);
    assert_eq!(config.http.debug.prometheus.path, "/internal/metrics");
    assert_eq!(
        loaded.sources["metrics.repositories"],
        env_source("BERTH_METRICS_REPOSITORIES")
    );
    assert_eq!(
        loaded.sources["http.debug.addr"],
        env_source("REGISTRY_HTTP_DEBUG_ADDR")
    );
}

#[test]
fn bad_metrics_and_debug_settings_name_the_key() {
    only_problem(
        "metrics:\n  repositories: [team/**, Team/*]\n",
        &[],
        "metrics.repositories[1]",
        "invalid repository pattern \"Team/*\"",
        Source::File,
    );
    only_problem(
        "",
        &[("BERTH_METRICS_REPOSITORIES", "a/*,b//c")],
        "metrics.repositories[1]",
        "empty path component",
        env_source("BERTH_METRICS_REPOSITORIES"),
    );
    only_problem(
        "",
        &[("BERTH_METRICS_ENABLED", "yes")],
        "metrics.enabled",
        "invalid boolean \"yes\"",
        env_source("BERTH_METRICS_ENABLED"),
    );
    only_problem(
        "http:\n  debug:\n    addr: 5001\n",
        &[],
        "http.debug.addr",
        "invalid type: integer `5001`",
        Source::File,
    );
    only_problem(
        "http:\n  debug:\n    addr: :5000\n",
        &[],
        "http.debug.addr",
        ":5000 takes the port of http.addr (:5000); the debug listener needs a port of its own",
        Source::File,
    );
    only_problem(
        "http:\n  addr: 127.0.0.1:5000\n",
        &[("REGISTRY_HTTP_DEBUG_ADDR", "0.0.0.0:5000")],
        "http.debug.addr",
        "takes the port of http.addr",
        env_source("REGISTRY_HTTP_DEBUG_ADDR"),
    );
    // Another address on the same port, or port 0, is a listener of its own.
    ok(
        "http:\n  addr: 127.0.0.1:5000\n  debug:\n    addr: 127.0.0.2:5000\n",
        &[],
    );
    ok("http:\n  addr: :0\n  debug:\n    addr: :0\n", &[]);
    only_problem(
        "http:\n  debug:\n    prometheus:\n      path: metrics\n",
        &[],
        "http.debug.prometheus.path",
        "invalid path \"metrics\": expected an absolute URL path such as /metrics",
        Source::File,
    );
    only_problem(
        "http:\n  debug:\n    profiling: true\n",
        &[],
        "http.debug.profiling",
        "unknown key; expected one of addr, prometheus",
        Source::File,
    );
}

#[test]
fn settings_without_effect_are_warned_about() {
    let warnings = |yaml: &str| ok(yaml, &[]).warnings;
    assert_eq!(
        warnings("http:\n  debug:\n    prometheus:\n      enabled: true\n"),
        [
            "http.debug.prometheus.enabled: true has no effect without http.debug.addr: there is no debug listener (from file)"
        ]
    );
    assert_eq!(
        warnings(
            "http:\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\nmetrics:\n  enabled: false\n"
        ),
        [
            "http.debug.prometheus.enabled: true has no effect while metrics.enabled is false (from file)"
        ]
    );
    assert_eq!(
        warnings("metrics:\n  enabled: false\n  open: true\n"),
        ["metrics.open: true has no effect while metrics.enabled is false (from file)"]
    );
}
