//! The environment: `REGISTRY_*` and `BERTH_*` variables mapped onto the key table and
//! written into the merged tree, and the modes of choices they ask for.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_yaml_ng::{Mapping, Value};

use super::{Loader, is_within, remove};
use crate::Source;
use crate::schema::{self, EnvValue, Key, Kind, MapKind, Step};
use crate::values::parse_bool;

/// An environment variable asking for a mode of a choice: by naming it
/// (`REGISTRY_AUTH=htpasswd`), or by setting one of its keys (`REGISTRY_AUTH_HTPASSWD_PATH`).
pub(super) struct ModeClaim {
    /// The choice's path ("auth").
    choice: String,
    mode: String,
    /// The key the variable sets ("auth.htpasswd.path"), or the choice's path when the
    /// variable names the mode.
    path: String,
    source: Source,
}

impl ModeClaim {
    fn names_the_mode(&self) -> bool {
        self.path == self.choice
    }
}

impl Loader {
    pub(super) fn apply_env(
        &mut self,
        tree: &mut Mapping,
        env: impl IntoIterator<Item = (String, String)>,
    ) {
        let mut registry = BTreeMap::new();
        let mut berth = BTreeMap::new();
        for (name, value) in env {
            if name.starts_with("REGISTRY_") {
                registry.insert(name, value);
            } else if let Some(rest) = name.strip_prefix("BERTH_") {
                // The config file's path, and the test and benchmark harnesses' own variables.
                let harness =
                    rest == "CONFIG" || rest.starts_with("TEST_") || rest.starts_with("BENCH_");
                if !harness {
                    berth.insert(name, value);
                }
            }
        }
        // BERTH_ is applied last so that it wins over REGISTRY_ for the same key.
        for (name, value) in &registry {
            self.apply_var(tree, name, "REGISTRY_", value);
        }
        for (name, value) in &berth {
            self.apply_var(tree, name, "BERTH_", value);
        }
        self.settle_modes(tree);
        if !self.service_links.is_empty() {
            self.warnings.push(format!(
                "ignored environment variables that Kubernetes sets for services: {}",
                self.service_links.join(", ")
            ));
        }
    }

    fn apply_var(&mut self, tree: &mut Mapping, var: &str, prefix: &str, value: &str) {
        let ours = prefix == "BERTH_";
        let rest = &var[prefix.len()..];
        let source = Source::Env(var.to_owned());
        match resolve(rest) {
            Target::Leaf(parts, kind) => {
                let path = parts.join(".");
                let value = match text_value(kind, value) {
                    Ok(value) => value,
                    Err(message) => return self.problem(path, source, message),
                };
                self.claim_mode(&parts, &source);
                let (name, parents) = parts.split_last().expect("a leaf has a name");
                self.mapping_at(tree, parents, &source)
                    .insert(name.as_str().into(), value);
                self.origins.insert(path, source);
            }
            Target::MapEntry(parts, kind, entry) => {
                let path = format!("{}.{entry}", parts.join("."));
                let value = match kind {
                    MapKind::Fields => Value::String(value.to_owned()),
                    MapKind::Headers => Value::Sequence(vec![Value::String(value.to_owned())]),
                };
                self.claim_mode(&parts, &source);
                let map = self.mapping_at(tree, &parts, &source);
                if let MapKind::Headers = kind {
                    // Header names ignore case: the variable replaces the file's header.
                    map.retain(|k, _| !k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(&entry)));
                }
                map.insert(entry.into(), value);
                self.origins.insert(path, source);
            }
            Target::Choice(parts, modes) => {
                let path = parts.join(".");
                // A value, so compared ignoring case like the other named values.
                let mode = value.to_ascii_lowercase();
                if self.pick_mode(&path, modes, &mode, &source).is_some() {
                    self.mode_claims.push(ModeClaim {
                        choice: path.clone(),
                        mode,
                        path,
                        source,
                    });
                }
            }
            Target::Section(parts) => {
                let (last, parents) = parts.split_last().expect("a section has a name");
                let message = if is_choice(parents) {
                    // Mode names have no '_': the choice's variable is this one without it.
                    let choice_var = &var[..var.len() - last.len() - 1];
                    format!(
                        "is a mode of {}; choose it with {choice_var}={last}, and set its keys with {var}_<KEY> variables",
                        parents.join(".")
                    )
                } else {
                    format!("is a section; set its keys with {var}_<KEY> variables")
                };
                self.problem(parts.join("."), source, message);
            }
            Target::Map(parts) => {
                let message = format!("is a map; set its entries with {var}_<NAME> variables");
                self.problem(parts.join("."), source, message);
            }
            Target::FileOnly(parts, what) => {
                let message = format!(
                    "can only be set in the config file: it is a {what}, whose entries environment variables cannot address"
                );
                self.kept_tree.push(self.problems.len());
                self.problem(parts.join("."), source, message);
            }
            Target::Ignored(parts, key) => {
                self.claim_mode(&parts, &source);
                self.create_parent(tree, &parts, &source);
                self.ignored(parts.join("."), source, key);
            }
            Target::Net(parts, key) => self.net(parts.join("."), source, key, Some(value)),
            Target::Unsupported(parts, key) => {
                if is_kubernetes_service_link(rest, value) {
                    self.service_links.push(var.to_owned());
                } else {
                    self.claim_mode(&parts, &source);
                    self.create_parent(tree, &parts, &source);
                    self.unsupported(parts.join("."), source, key);
                }
            }
            Target::UnsupportedUnless(parts, key, harmless) => {
                self.claim_mode(&parts, &source);
                self.create_parent(tree, &parts, &source);
                let path = parts.join(".");
                self.unsupported_unless(path, source, key, harmless, Some(value));
            }
            Target::Unknown(parts, message) => {
                if is_kubernetes_service_link(rest, value) {
                    self.service_links.push(var.to_owned());
                } else if ours {
                    // BERTH_ variables are ours alone: a typo must not pass.
                    self.problem(parts.join("."), source, message);
                } else {
                    // Other software sets REGISTRY_ variables too (Kubernetes does for a
                    // service named "registry"), so an unknown one cannot be an error.
                    let message = format!("{message}; variable ignored");
                    self.warn(parts.join("."), source, message);
                }
            }
        }
    }

    /// Creates the section holding the key at `parts`: as in the file, naming a key creates
    /// its section (REGISTRY_STORAGE_S3_V4AUTH alone is an s3 section without a bucket). A
    /// choice is not created by naming a mode it does not have (REGISTRY_AUTH_TOKEN_REALM).
    fn create_parent(&mut self, tree: &mut Mapping, parts: &[String], source: &Source) {
        let parent = &parts[..parts.len() - 1];
        if !is_choice(parent) {
            self.mapping_at(tree, parent, source);
        }
    }

    /// Records the mode a variable setting the key at `parts` asks for, when that key lies
    /// in a mode of a choice.
    fn claim_mode(&mut self, parts: &[String], source: &Source) {
        if let Some((choice, mode)) = mode_of(parts) {
            self.mode_claims.push(ModeClaim {
                choice,
                mode,
                path: parts.join("."),
                source: source.clone(),
            });
        }
    }

    /// Settles the mode of each choice the environment asks for. A variable naming the mode
    /// (`REGISTRY_AUTH=none`) decides it, a BERTH_ one over a REGISTRY_ one; otherwise the
    /// mode whose keys variables set does (`REGISTRY_AUTH_HTPASSWD_PATH` selects htpasswd,
    /// as in registry:2). The environment beats the file here as everywhere: the file's
    /// section for another mode is dropped, not merged into a choice of two modes; the
    /// file's section for the same mode is kept, with the variables applied over it.
    /// Variables asking for different modes are errors: one of them would be ignored.
    fn settle_modes(&mut self, tree: &mut Mapping) {
        let claims = std::mem::take(&mut self.mode_claims);
        let mut choices: Vec<&str> = claims.iter().map(|c| c.choice.as_str()).collect();
        choices.sort_unstable();
        choices.dedup();
        for choice in choices {
            let claims: Vec<&ModeClaim> = claims.iter().filter(|c| c.choice == choice).collect();
            // BERTH_ variables are applied after REGISTRY_ ones: the last one wins.
            let named = claims.iter().rev().find(|c| c.names_the_mode());
            let keyed: Vec<&ModeClaim> = claims
                .iter()
                .copied()
                .filter(|c| !c.names_the_mode())
                .collect();
            let (mode, source) = if let Some(named) = named {
                for claim in keyed.iter().filter(|c| c.mode != named.mode) {
                    let message = format!(
                        "sets a key of mode {}, but {choice} is {} (from {}); remove the variable, or choose mode {}",
                        claim.mode, named.mode, named.source, claim.mode
                    );
                    self.problem(claim.path.clone(), claim.source.clone(), message);
                }
                (named.mode.clone(), named.source.clone())
            } else {
                let first = keyed[0];
                if let Some(other) = keyed.iter().find(|c| c.mode != first.mode) {
                    let expected = schema::at(choice)
                        .map(|key| schema::accepted(schema::children(key)).join(", "))
                        .unwrap_or_default();
                    let message = format!(
                        "the environment asks for several modes: {} ({}) and {} ({}); expected exactly one of {expected}",
                        first.mode, first.source, other.mode, other.source
                    );
                    self.problem(choice.to_owned(), other.source.clone(), message);
                    let steps: Vec<Step> =
                        choice.split('.').map(|k| Step::Key(k.to_owned())).collect();
                    let mut whole = Value::Mapping(std::mem::take(tree));
                    remove(&mut whole, &steps);
                    *tree = match whole {
                        Value::Mapping(map) => map,
                        _ => unreachable!("the tree is a mapping"),
                    };
                    continue;
                }
                // Setting a key of the file's mode keeps the file's choice of it.
                let mode_path = format!("{choice}.{}", first.mode);
                let source = match self.origins.get(&mode_path) {
                    Some(Source::File) => Source::File,
                    _ => first.source.clone(),
                };
                (first.mode.clone(), source)
            };
            let parts: Vec<String> = choice.split('.').map(str::to_owned).collect();
            let modes = self.mapping_at(tree, &parts, &source);
            let section = modes
                .remove(mode.as_str())
                .filter(Value::is_mapping)
                .unwrap_or_else(|| Value::Mapping(Mapping::new()));
            let dropped: Vec<String> = modes
                .keys()
                .filter_map(Value::as_str)
                .map(|other| format!("{choice}.{other}"))
                .collect();
            modes.clear();
            modes.insert(mode.as_str().into(), section);
            self.origins
                .retain(|path, _| !dropped.iter().any(|d| is_within(path, d)));
            self.origins.insert(choice.to_owned(), source.clone());
            self.origins
                .entry(format!("{choice}.{mode}"))
                .or_insert(source);
        }
    }

    /// The mapping at `parts`, created (and attributed to `source`) where missing.
    fn mapping_at<'t>(
        &mut self,
        tree: &'t mut Mapping,
        parts: &[String],
        source: &Source,
    ) -> &'t mut Mapping {
        let mut map = tree;
        for (i, part) in parts.iter().enumerate() {
            let slot = map.entry(part.as_str().into()).or_insert(Value::Null);
            // The file walk left only mappings at section paths; anything else here is a
            // section the file did not have.
            if !slot.is_mapping() {
                *slot = Value::Mapping(Mapping::new());
            }
            self.origins
                .entry(parts[..=i].join("."))
                .or_insert_with(|| source.clone());
            map = slot.as_mapping_mut().expect("made a mapping above");
        }
        map
    }
}

/// What an environment variable's name designates.
enum Target {
    Leaf(Vec<String>, EnvValue),
    /// The choice itself: the variable's value names the mode.
    Choice(Vec<String>, &'static [Key]),
    MapEntry(Vec<String>, MapKind, String),
    Section(Vec<String>),
    Map(Vec<String>),
    /// A list or map of sections, or a key inside one: what it is.
    FileOnly(Vec<String>, &'static str),
    Ignored(Vec<String>, &'static Key),
    Net(Vec<String>, &'static Key),
    Unsupported(Vec<String>, &'static Key),
    UnsupportedUnless(Vec<String>, &'static Key, &'static [&'static str]),
    Unknown(Vec<String>, String),
}

/// Maps the part after the prefix (`HTTP_TLS_CERTIFICATE`) onto the key table. No key has
/// an underscore, so each `_` separates two keys, except inside a map entry's name.
fn resolve(rest: &str) -> Target {
    let components: Vec<&str> = rest.split('_').collect();
    let mut keys = schema::ROOT;
    // Whether `keys` are the modes of a choice rather than the keys of a section.
    let mut modes = false;
    let mut parts = Vec::new();
    for (i, component) in components.iter().enumerate() {
        let name = component.to_ascii_lowercase();
        let Some(key) = schema::find(keys, &name) else {
            let message = if modes {
                schema::unknown_mode(keys, &name)
            } else {
                schema::unknown_key(keys, &name)
            };
            parts.push(name);
            return Target::Unknown(parts, message);
        };
        parts.push(name);
        modes = false;
        let below = &components[i + 1..];
        match key.kind {
            Kind::Section(children) => keys = children,
            Kind::Choice(choices) if below.is_empty() => return Target::Choice(parts, choices),
            Kind::Choice(choices) => {
                keys = choices;
                modes = true;
            }
            Kind::Leaf(kind) if below.is_empty() => return Target::Leaf(parts, kind),
            Kind::Net if below.is_empty() => return Target::Net(parts, key),
            Kind::Leaf(_) | Kind::Net => {
                let message = format!("{} takes a single value and has no keys", parts.join("."));
                parts.push(below.join("_").to_ascii_lowercase());
                return Target::Unknown(parts, message);
            }
            Kind::Map(_) if below.iter().all(|c| c.is_empty()) => return Target::Map(parts),
            Kind::Map(kind) => {
                let entry = match kind {
                    MapKind::Fields => below.join("_").to_ascii_lowercase(),
                    MapKind::Headers => below
                        .iter()
                        .map(|w| title_case(w))
                        .collect::<Vec<_>>()
                        .join("-"),
                };
                return Target::MapEntry(parts, kind, entry);
            }
            Kind::List(_) => return Target::FileOnly(parts, "list of sections"),
            Kind::Named(_) => return Target::FileOnly(parts, "map of named sections"),
            Kind::Ignored => return Target::Ignored(parts, key),
            Kind::Unsupported => return Target::Unsupported(parts, key),
            // A value with keys below it is none of the harmless values.
            Kind::UnsupportedUnless(_) if !below.is_empty() => {
                return Target::Unsupported(parts, key);
            }
            Kind::UnsupportedUnless(harmless) => {
                return Target::UnsupportedUnless(parts, key, harmless);
            }
        }
    }
    Target::Section(parts)
}

/// Whether the key at `parts` is a choice.
fn is_choice(parts: &[String]) -> bool {
    !parts.is_empty()
        && schema::at(&parts.join(".")).is_some_and(|key| matches!(key.kind, Kind::Choice(_)))
}

/// The choice and the mode that the key at `parts` lies in, as ("auth", "htpasswd"); `None`
/// when it lies in no supported mode of a choice.
fn mode_of(parts: &[String]) -> Option<(String, String)> {
    let mut keys = schema::ROOT;
    for (i, part) in parts.iter().enumerate() {
        let key = schema::find(keys, part)?;
        if let Kind::Choice(modes) = key.kind {
            let mode = parts.get(i + 1)?;
            let supported = matches!(schema::find(modes, mode)?.kind, Kind::Section(_));
            return supported.then(|| (parts[..=i].join("."), mode.clone()));
        }
        keys = schema::children(key);
    }
    None
}

/// `CONTENT` -> `Content`, for header names written in an environment variable's name.
fn title_case(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Whether a variable is one Kubernetes injects for a service whose name starts with the
/// prefix ("berth", "registry", "registry-auth", ...): `<NAME>_SERVICE_HOST=10.0.0.1`,
/// `<NAME>_SERVICE_PORT[_<PORT>]=5000`, `<NAME>_PORT=tcp://10.0.0.1:5000`, and
/// `<NAME>_PORT_5000_TCP[_PROTO|_PORT|_ADDR]`. The value must have the matching shape too,
/// so that an operator's own `BERTH_PORT=8080` is still reported as unknown.
fn is_kubernetes_service_link(rest: &str, value: &str) -> bool {
    let is_ip = value.parse::<IpAddr>().is_ok();
    let is_port = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && value.parse::<u16>().is_ok();
    let is_url = ["tcp://", "udp://", "sctp://"].iter().any(|scheme| {
        value
            .strip_prefix(scheme)
            .is_some_and(|a| a.parse::<SocketAddr>().is_ok())
    });
    let words: Vec<&str> = rest.split('_').collect();
    let n = words.len();
    // `PORT_<number>_<PROTOCOL>` ending at word `i`.
    let is_protocol = |i: usize| {
        i >= 2
            && words[i - 2] == "PORT"
            && words[i - 1].parse::<u16>().is_ok()
            && matches!(words[i], "TCP" | "UDP" | "SCTP")
    };
    // Any pattern may match, because the service name itself may contain "SERVICE" or "PORT".
    let service_host = words.ends_with(&["SERVICE", "HOST"]) && is_ip;
    let service_port = words.windows(2).any(|w| w == ["SERVICE", "PORT"]) && is_port;
    let port = words.ends_with(&["PORT"]) && is_url;
    let protocol = is_protocol(n - 1) && is_url;
    let protocol_field = n >= 2
        && is_protocol(n - 2)
        && match words[n - 1] {
            "PROTO" => value.eq_ignore_ascii_case(words[n - 2]),
            "PORT" => is_port,
            "ADDR" => is_ip,
            _ => false,
        };
    service_host || service_port || port || protocol || protocol_field
}

/// A value written as text, as a key of `kind` reads it: a list comma-separated, a
/// boolean true/false/1/0, anything else the text itself.
pub(crate) fn text_value(kind: EnvValue, text: &str) -> Result<Value, String> {
    Ok(match kind {
        EnvValue::Text => Value::String(text.to_owned()),
        EnvValue::Bool => match parse_bool(text) {
            Some(b) => Value::Bool(b),
            None => {
                return Err(format!(
                    "invalid boolean {text:?}: expected true, false, 1 or 0"
                ));
            }
        },
        EnvValue::List => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| Value::String(item.to_owned()))
            .collect(),
    })
}
