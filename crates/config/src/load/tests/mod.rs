use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::{
    AuthConfig, BerthAuth, HtpasswdAuth, LogFormat, LogLevel, PasskeysMode, RequireMfa, S3Config,
    TlsVersion,
};

mod auth;
mod auth_modes;
mod env;
mod file;
mod metrics;
mod notifications;
mod proxy;
mod retention;
mod s3;
mod smtp;
mod stores;
mod values;
mod virtuals;
mod webhooks;

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

/// Loading `yaml` with `env` finds exactly one problem: at `path`, from `source`, with `want`
/// in its message.
fn only_problem(yaml: &str, env: &[(&str, &str)], path: &str, want: &str, source: Source) {
    let error = err(yaml, env);
    assert_eq!(error.problems.len(), 1, "{yaml} {env:?}:\n{error}");
    let p = problem(&error, path);
    assert!(
        p.message.contains(want),
        "{path}: {:?} does not contain {want:?}",
        p.message
    );
    assert_eq!(p.source, source, "{path}");
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
