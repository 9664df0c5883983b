//! The remote and virtual repositories in force: those of the configuration file and those
//! made through the admin API or the dashboard (stored in the database, `cache_definitions`),
//! mounted as the registry's namespaces. Every instance reads the stored ones again every
//! few seconds ([`REFRESH`]: the `cache-definitions` job) and at once after its own changes;
//! a remote whose settings did not change keeps its state (revalidation times, downloads in
//! progress, counters).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_config::{Config, ProxyConfig, RemoteConfig, VirtualConfig};
use berth_meta::{CacheDefinition, CacheStore, MetaError};
use berth_registry::{Mounted, Namespaces, ReadPath, Registry};

use crate::Shared;
use crate::remote::{Remote, RemoteSettings};
use crate::upstream::{Credentials, UpstreamTls};
use crate::virtuals::{Member, Virtual};

/// How often every instance reads the stored definitions again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// `remote` or `virtual`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Remote,
    Virtual,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Remote => "remote",
            Kind::Virtual => "virtual",
        }
    }

    /// The configuration section of its kind: `remotes` or `virtuals`.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Remote => "remotes",
            Kind::Virtual => "virtuals",
        }
    }
}

pub struct Caches {
    /// The configuration file's (its `remotes` and `virtuals` only from the file).
    file: Config,
    registry: Arc<Registry>,
    shared: Shared,
    namespaces: Arc<Namespaces>,
    state: Mutex<State>,
    /// Called after each blob any remote stores (the size cap's job).
    filled: OnceLock<Arc<dyn Fn() + Send + Sync>>,
    /// One refresh at a time (a refresh reads, builds and swaps).
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    remotes: BTreeMap<String, (RemoteSettings, Arc<Remote>)>,
    /// The stored definitions in force.
    stored: Vec<CacheDefinition>,
}

impl Caches {
    /// The configuration file's remotes and virtual repositories, mounted; the stored ones
    /// join at the first [`Caches::refresh`].
    pub fn new(file: &Config, registry: &Arc<Registry>, shared: Shared) -> Result<Caches, String> {
        let caches = Caches {
            file: file.clone(),
            registry: Arc::clone(registry),
            shared,
            namespaces: Arc::new(Namespaces::local(Arc::clone(registry))),
            state: Mutex::default(),
            filled: OnceLock::new(),
            refreshing: tokio::sync::Mutex::new(()),
        };
        let mut state = State::default();
        let mounted = caches.build(file, &mut state)?;
        caches.namespaces.replace(mounted);
        *caches.state() = state;
        Ok(caches)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn namespaces(&self) -> &Arc<Namespaces> {
        &self.namespaces
    }

    pub fn file(&self) -> &Config {
        &self.file
    }

    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.shared.store
    }

    /// The remotes in force.
    pub fn remotes(&self) -> Vec<Arc<Remote>> {
        self.state()
            .remotes
            .values()
            .map(|(_, r)| Arc::clone(r))
            .collect()
    }

    /// Calls `hook` after each blob any remote stores, now and after changes.
    pub fn when_filled(&self, hook: impl Fn() + Send + Sync + 'static) {
        let hook: Arc<dyn Fn() + Send + Sync> = Arc::new(hook);
        if self.filled.set(Arc::clone(&hook)).is_ok() {
            for remote in self.remotes() {
                let hook = Arc::clone(&hook);
                remote.stats().when_filled(move || hook());
            }
        }
    }

    /// Forgets the upstreams' answers past every remote's windows (the longest
    /// `revalidateafter` for tags checked, the longest `negativettl` for 404s); how many.
    pub async fn forget_old_answers(&self) -> Result<u64, MetaError> {
        let windows: Vec<_> = self
            .state()
            .remotes
            .values()
            .map(|(s, _)| (s.revalidate_after, s.negative_ttl))
            .collect();
        let longest = |pick: fn(&(Duration, Duration)) -> Duration| {
            let window = windows.iter().map(pick).max().unwrap_or_default();
            berth_meta::now_millis()
                .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
        };
        self.shared
            .store
            .forget_upstream_answers(longest(|w| w.0), longest(|w| w.1))
            .await
    }

    /// The stored definitions in force.
    pub fn stored(&self) -> Vec<CacheDefinition> {
        self.state().stored.clone()
    }

    /// Reads the stored definitions and, if they changed, mounts what they say. A stored
    /// definition that no longer fits the configuration file (a prefix the file took since)
    /// is left out, and logged.
    pub async fn refresh(&self) -> Result<bool, MetaError> {
        let _one = self.refreshing.lock().await;
        let stored = self.shared.store.cache_definitions().await?;
        if stored == self.state().stored {
            return Ok(false);
        }
        let mut kept = stored.clone();
        let mut merged = merge(&self.file, &kept);
        // Leave out what does not fit (named by a problem's key path), then try again.
        for _ in 0..2 {
            let problems = merged.problems();
            if problems.is_empty() {
                break;
            }
            let before = kept.len();
            kept.retain(|d| {
                let path = format!("{}.{}", kind_of(d).section(), d.name);
                let fits = !problems.iter().any(|(p, _)| p.starts_with(&path));
                if !fits {
                    tracing::error!(kind = %d.kind, name = %d.name, ?problems, "a stored definition no longer fits the configuration; left out");
                }
                fits
            });
            if kept.len() == before {
                kept.clear();
            }
            merged = merge(&self.file, &kept);
        }
        let mut state = State {
            remotes: self.state().remotes.clone(),
            stored: stored.clone(),
        };
        match self.build(&merged, &mut state) {
            Ok(mounted) => {
                self.namespaces.replace(mounted);
                *self.state() = state;
                Ok(true)
            }
            Err(e) => {
                tracing::error!(error = %e, "the stored remote and virtual repositories could not be mounted");
                Ok(false)
            }
        }
    }

    /// Mounts every remote and virtual repository `config` declares, reusing the remotes of
    /// `state` whose settings are unchanged; `state.remotes` becomes the new set.
    fn build(&self, config: &Config, state: &mut State) -> Result<Vec<Mounted>, String> {
        let mut mounted = Vec::new();
        let mut remotes = BTreeMap::new();
        for settings in remote_settings(config) {
            let name = settings.name.clone();
            let remote = match state.remotes.get(&name) {
                Some((old, remote)) if *old == settings => Arc::clone(remote),
                _ => {
                    let remote = Arc::new(
                        Remote::new(Arc::clone(&self.registry), settings.clone(), &self.shared)
                            .map_err(|e| format!("remotes.{name}: {e}"))?,
                    );
                    if let Some(hook) = self.filled.get() {
                        let hook = Arc::clone(hook);
                        remote.stats().when_filled(move || hook());
                    }
                    tracing::info!(remote = %name, prefix = %settings.prefix, "pull-through cache");
                    remote
                }
            };
            mounted.push(Arc::clone(&remote).mount());
            remotes.insert(name, (settings, remote));
        }
        for (name, config) in &config.virtuals {
            let Some(prefix) = &config.prefix else {
                continue; // refused by validation
            };
            // Locals first, then remotes, each in the configured order.
            let mut members: Vec<Member> = config
                .locals
                .iter()
                .map(|local| Member {
                    prefix: format!("{local}/"),
                    reads: Arc::clone(&self.registry) as Arc<dyn ReadPath>,
                })
                .collect();
            for remote in &config.remotes {
                let (settings, remote) = remotes
                    .get(remote)
                    .ok_or_else(|| format!("virtuals.{name}.remotes: no remote {remote:?}"))?;
                members.push(Member {
                    prefix: settings.prefix.clone(),
                    reads: Arc::clone(remote) as Arc<dyn ReadPath>,
                });
            }
            let deploy = config.deploy.as_ref().map(|d| format!("{d}/"));
            let repository = Virtual::new(name.clone(), format!("{prefix}/"), members, deploy);
            mounted.push(Arc::new(repository).mount());
        }
        state.remotes = remotes;
        Ok(mounted)
    }
}

pub(crate) fn kind_of(definition: &CacheDefinition) -> Kind {
    if definition.kind == "virtual" {
        Kind::Virtual
    } else {
        Kind::Remote
    }
}

/// The configuration file with the stored definitions added (those that do not parse are
/// left out: they were checked when stored).
pub(crate) fn merge(file: &Config, stored: &[CacheDefinition]) -> Config {
    let mut config = file.clone();
    for definition in stored {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&definition.definition) else {
            continue;
        };
        match kind_of(definition) {
            Kind::Remote => {
                if let Ok(remote) = serde_json::from_value::<RemoteConfig>(value) {
                    config.remotes.insert(definition.name.clone(), remote);
                }
            }
            Kind::Virtual => {
                if let Ok(repository) = serde_json::from_value::<VirtualConfig>(value) {
                    config.virtuals.insert(definition.name.clone(), repository);
                }
            }
        }
    }
    config
}

fn remote_settings(config: &Config) -> Vec<RemoteSettings> {
    let mut remotes = Vec::new();
    if let ProxyConfig {
        remoteurl: Some(url),
        username,
        password,
        ..
    } = &config.proxy
    {
        let defaults = RemoteConfig::default();
        remotes.push(RemoteSettings {
            name: "proxy".into(),
            prefix: String::new(),
            urls: vec![url.url().clone()],
            credentials: credentials(username, password),
            tls: UpstreamTls::default(),
            revalidate_after: defaults.revalidateafter,
            immutable_tags: Vec::new(),
            negative_ttl: defaults.negativettl,
            serve_stale: defaults.servestale,
            timeout: defaults.timeout,
            rate_limit: None,
            platforms: Vec::new(),
            max_size: None,
        });
    }
    for (name, remote) in &config.remotes {
        let Some(prefix) = &remote.prefix else {
            continue; // refused by validation
        };
        remotes.push(RemoteSettings {
            name: name.clone(),
            prefix: format!("{prefix}/"),
            urls: remote.urls.iter().map(|u| u.url().clone()).collect(),
            credentials: credentials(&remote.username, &remote.password),
            tls: UpstreamTls {
                ca_file: remote.cafile.clone(),
                insecure: remote.insecure,
            },
            revalidate_after: remote.revalidateafter,
            immutable_tags: remote.immutabletags.clone(),
            negative_ttl: remote.negativettl,
            serve_stale: remote.servestale,
            timeout: remote.timeout,
            rate_limit: remote.ratelimit,
            platforms: remote.platforms.clone(),
            max_size: (remote.maxsize > 0).then_some(remote.maxsize),
        });
    }
    remotes
}

fn credentials(username: &Option<String>, password: &Option<String>) -> Option<Credentials> {
    match (username, password) {
        (Some(username), Some(password)) => Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    }
}
