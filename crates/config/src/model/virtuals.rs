//! `virtuals` (berth's virtual repositories: one name prefix over an ordered list of local
//! prefixes and remote repositories).

use std::collections::BTreeMap;

use berth_oci::RepositoryName;

use super::RemoteConfig;
use crate::schema::{Problems, join, section};
use crate::values;

section! {
    /// A virtual repository (`virtuals.<name>`): a name under `prefix` is read from the first
    /// member that has it, local prefixes first, then remotes, each in list order; writes go to
    /// `deploy`.
    #[derive(Clone, PartialEq)]
    pub struct VirtualConfig {
        /// `Some` in every configuration that loaded: validation requires it.
        prefix: Option<String>,
            "the name prefix in berth (all: all/team/app is read from each member's team/app; required)",
            read = values::non_empty;
        locals: Vec<String>,
            "local name prefixes, searched first, in order (team: team/app for all/app)";
        remotes: Vec<String>,
            "names of remote repositories (remotes.<name>), searched after the locals, in order";
        deploy: Option<String>,
            "the local prefix (one of locals) that pushes and deletes go to; unset: writes are refused",
            read = values::non_empty;
    }
    validate = VirtualConfig::validate;
}

impl VirtualConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        match &self.prefix {
            None => problems.add(join(path, "prefix"), "required: the name prefix in berth"),
            Some(prefix) => check_prefix(&join(path, "prefix"), prefix, problems),
        }
        if self.locals.is_empty() && self.remotes.is_empty() {
            problems.add(
                join(path, "locals"),
                "a virtual repository needs at least one member (locals or remotes)",
            );
        }
        for (i, local) in self.locals.iter().enumerate() {
            check_prefix(&format!("{}[{i}]", join(path, "locals")), local, problems);
        }
        if let Some(deploy) = &self.deploy
            && !self.locals.contains(deploy)
        {
            problems.add(
                join(path, "deploy"),
                format!("{deploy:?} is not one of locals: pushes can only go to a local prefix"),
            );
        }
    }
}

fn check_prefix(path: &str, prefix: &str, problems: &mut Problems) {
    if let Err(e) = RepositoryName::parse(prefix) {
        problems.add(
            path.to_owned(),
            format!("{prefix:?} is not a repository name prefix: {}", e.message),
        );
    }
}

/// Whether one of two `/`-terminated prefixes contains the other.
fn overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Members that name what they cannot: an unknown remote, a local prefix inside a remote's
/// or a virtual repository's prefix (its own included: a virtual repository over a virtual
/// one could loop, so there are none).
pub(super) fn check_members(
    virtuals: &BTreeMap<String, VirtualConfig>,
    remotes: &BTreeMap<String, RemoteConfig>,
    proxy: bool,
    problems: &mut Problems,
) {
    let slash = |p: &String| format!("{p}/");
    let remote_prefixes: Vec<(&String, String)> = remotes
        .iter()
        .filter_map(|(name, r)| r.prefix.as_ref().map(|p| (name, slash(p))))
        .collect();
    let virtual_prefixes: Vec<(&String, String)> = virtuals
        .iter()
        .filter_map(|(name, v)| v.prefix.as_ref().map(|p| (name, slash(p))))
        .collect();
    for (name, config) in virtuals {
        for (i, local) in config.locals.iter().enumerate() {
            let path = format!("virtuals.{name}.locals[{i}]");
            let local = slash(local);
            if proxy {
                problems.add(
                    path.clone(),
                    "proxy.remoteurl makes every name a cache: there are no local prefixes",
                );
            }
            if let Some((remote, _)) = remote_prefixes.iter().find(|(_, p)| overlap(p, &local)) {
                problems.add(
                    path.clone(),
                    format!(
                        "overlaps remotes.{remote}.prefix: name the remote in remotes: [{remote}] instead"
                    ),
                );
            }
            if let Some((other, _)) = virtual_prefixes.iter().find(|(_, p)| overlap(p, &local)) {
                let what = if *other == name {
                    "this virtual repository's own prefix: it would contain itself".to_owned()
                } else {
                    format!(
                        "virtuals.{other}.prefix: a virtual repository cannot contain another (it could loop)"
                    )
                };
                problems.add(path, format!("overlaps {what}"));
            }
        }
        for (i, remote) in config.remotes.iter().enumerate() {
            let path = format!("virtuals.{name}.remotes[{i}]");
            if remotes.contains_key(remote) {
                continue;
            }
            let why = if virtuals.contains_key(remote) {
                format!(
                    "{remote:?} is a virtual repository, not a remote: a virtual repository cannot contain another (it could loop)"
                )
            } else {
                format!("{remote:?} is not a remote repository (no remotes.{remote})")
            };
            problems.add(path, why);
        }
    }
}
