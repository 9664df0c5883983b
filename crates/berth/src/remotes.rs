//! The pull-through caches the configuration declares (registry:2's `proxy`, berth's
//! `remotes`) and its virtual repositories (`virtuals`), mounted as namespaces of the
//! registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_cache::{Credentials, Member, Remote, RemoteSettings, UpstreamTls, Virtual};
use berth_config::{Config, ProxyConfig, RemoteConfig};
use berth_registry::{Namespaces, ReadPath, Registry};

/// The registry's namespaces: every configured remote and virtual repository at its prefix,
/// the rest local; and the remotes, for their upkeep.
pub fn namespaces(
    config: &Config,
    registry: &Arc<Registry>,
) -> Result<(Namespaces, Vec<Arc<Remote>>), String> {
    let mut mounted = Vec::new();
    let mut remotes = BTreeMap::new();
    for settings in remote_settings(config) {
        let name = settings.name.clone();
        let prefix = settings.prefix.clone();
        let remote = Arc::new(
            Remote::new(Arc::clone(registry), settings)
                .map_err(|e| format!("remotes.{name}: {e}"))?,
        );
        tracing::info!(remote = %name, prefix = %prefix, "pull-through cache");
        mounted.push(Arc::clone(&remote).mount());
        remotes.insert(name, (prefix, remote));
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
                reads: Arc::clone(registry) as Arc<dyn ReadPath>,
            })
            .collect();
        for remote in &config.remotes {
            let (prefix, remote) = remotes
                .get(remote)
                .ok_or_else(|| format!("virtuals.{name}.remotes: no remote {remote:?}"))?;
            members.push(Member {
                prefix: prefix.clone(),
                reads: Arc::clone(remote) as Arc<dyn ReadPath>,
            });
        }
        let deploy = config.deploy.as_ref().map(|d| format!("{d}/"));
        tracing::info!(%name, prefix = %prefix, members = members.len(), deploy = ?deploy, "virtual repository");
        let repository = Virtual::new(name.clone(), format!("{prefix}/"), members, deploy);
        mounted.push(Arc::new(repository).mount());
    }
    let remotes = remotes.into_values().map(|(_, remote)| remote).collect();
    Ok((Namespaces::new(Arc::clone(registry), mounted), remotes))
}

fn remote_settings(config: &Config) -> Vec<RemoteSettings> {
    // Downloads spool beside the blobs when they are on the file system.
    let spool_dir = config
        .storage
        .s3
        .is_none()
        .then(|| config.storage.filesystem.rootdirectory.clone());
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
            spool_dir: spool_dir.clone(),
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
            spool_dir: spool_dir.clone(),
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
