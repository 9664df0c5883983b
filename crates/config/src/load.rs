//! Loading: the file and the environment merged into one YAML tree, then typed.
//!
//! The file is walked against the key table first, so that every unknown, ignored or
//! unsupported key is reported (serde alone would stop at the first). Environment variables
//! are then written into the same tree, which gives "env beats file beats defaults" for free
//! and makes an environment value go through exactly the parsing a file value does. Finally
//! the tree is deserialized with `serde_path_to_error`, which names the key of a bad value.
//! Where each value came from is recorded along the way, keyed by dotted path.
//!
//! A choice (`auth`) is normalised on the way: the file's `auth: none` becomes
//! `auth: {none: {}}`, and once every variable is applied the environment's mode replaces the
//! file's (see [`Loader::settle_modes`]), so that serde always sees exactly one mode.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde_path_to_error::Segment;
use serde_yaml_ng::{Mapping, Value};

use crate::model::Config;
use crate::schema::{self, EnvValue, Key, Kind, MapKind};
use crate::values::parse_bool;
use crate::{ConfigError, Problem, Source, explain};

/// A configuration that passed validation, with what an operator should know about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Settings that were accepted but have no effect, and ignored environment variables.
    pub warnings: Vec<String>,
    /// Where each effective leaf setting came from, keyed by dotted path ("http.addr").
    pub sources: BTreeMap<String, Source>,
}

/// Loads the configuration from an optional YAML file and the environment (pass
/// `std::env::vars()`), reporting every problem found.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let mut loader = Loader::default();
    let tree = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => loader.read_yaml(path, &text),
            Err(e) => {
                let message = format!("cannot read config file {}: {e}", path.display());
                loader.problem(String::new(), Source::File, message);
                Mapping::new()
            }
        },
        None => Mapping::new(),
    };
    loader.finish(tree, env)
}

#[derive(Default)]
struct Loader {
    problems: Vec<Problem>,
    warnings: Vec<String>,
    /// Where each key present in the merged tree came from, sections included, so that a
    /// problem found later can name a source.
    origins: BTreeMap<String, Source>,
    /// Kubernetes service-link variables, reported together in one warning.
    service_links: Vec<String>,
    /// The modes of choices that environment variables ask for, in the order applied.
    mode_claims: Vec<ModeClaim>,
}

/// An environment variable asking for a mode of a choice: by naming it
/// (`REGISTRY_AUTH=htpasswd`), or by setting one of its keys (`REGISTRY_AUTH_HTPASSWD_PATH`).
struct ModeClaim {
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
    fn problem(&mut self, path: String, source: Source, message: String) {
        self.problems.push(Problem {
            path,
            source,
            message,
        });
    }

    fn warn(&mut self, path: String, source: Source, message: String) {
        let warning = Problem {
            path,
            source,
            message,
        };
        self.warnings.push(warning.to_string());
    }

    fn read_yaml(&mut self, path: &Path, text: &str) -> Mapping {
        let whole_file = |why: String| format!("invalid config file {}: {why}", path.display());
        let mut value: Value = match serde_yaml_ng::from_str(text) {
            Ok(value) => value,
            Err(e) => {
                self.problem(String::new(), Source::File, whole_file(e.to_string()));
                return Mapping::new();
            }
        };
        // YAML merge keys (`<<: *defaults`) are part of how people write these files.
        if let Err(e) = value.apply_merge() {
            self.problem(String::new(), Source::File, whole_file(e.to_string()));
            return Mapping::new();
        }
        match value {
            Value::Null => Mapping::new(),
            Value::Mapping(map) => self.walk(schema::ROOT, "", map),
            other => {
                let why = format!("expected a mapping of keys, found {}", describe(&other));
                self.problem(String::new(), Source::File, whole_file(why));
                Mapping::new()
            }
        }
    }

    /// Checks the keys of one file section against the table, returning what serde should
    /// see: known keys only, ignored ones dropped, empty sections as empty mappings.
    fn walk(&mut self, keys: &'static [Key], prefix: &str, map: Mapping) -> Mapping {
        let mut out = Mapping::new();
        for (name, value) in map {
            let Value::String(name) = name else {
                let path = join(prefix, &describe(&name));
                self.problem(path, Source::File, "keys must be strings".into());
                continue;
            };
            let path = join(prefix, &name);
            let Some(key) = schema::find(keys, &name) else {
                self.problem(path, Source::File, schema::unknown_key(keys, &name));
                continue;
            };
            match key.kind {
                Kind::Section(children) => {
                    if let Some(section) = self.file_mapping(&path, value) {
                        let section = self.walk(children, &path, section);
                        self.origins.insert(path, Source::File);
                        out.insert(name.into(), section.into());
                    }
                }
                Kind::Choice(modes) => {
                    if let Some((mode, section)) = self.file_choice(&path, modes, value) {
                        self.origins.insert(join(&path, &mode), Source::File);
                        self.origins.insert(path, Source::File);
                        let mut choice = Mapping::new();
                        choice.insert(mode.into(), section.into());
                        out.insert(name.into(), choice.into());
                    }
                }
                Kind::Map(_) => {
                    if let Some(entries) = self.file_mapping(&path, value) {
                        for entry in entries.keys().filter_map(Value::as_str) {
                            self.origins.insert(format!("{path}.{entry}"), Source::File);
                        }
                        self.origins.insert(path, Source::File);
                        out.insert(name.into(), entries.into());
                    }
                }
                Kind::Leaf(_) => {
                    self.origins.insert(path, Source::File);
                    out.insert(name.into(), value);
                }
                Kind::Ignored => self.ignored(path, Source::File, key),
                Kind::Net => self.net(path, Source::File, key, value.as_str()),
                Kind::Unsupported => self.unsupported(path, Source::File, key),
                Kind::UnsupportedUnless(harmless) => {
                    let value = match value {
                        Value::Null => Some(String::new()),
                        Value::Bool(b) => Some(b.to_string()),
                        Value::Number(n) => Some(n.to_string()),
                        Value::String(s) => Some(s),
                        _ => None,
                    };
                    self.unsupported_unless(path, Source::File, key, harmless, value.as_deref());
                }
            }
        }
        out
    }

    /// A section's value: a mapping, or nothing (`delete:` with no keys) meaning empty.
    fn file_mapping(&mut self, path: &str, value: Value) -> Option<Mapping> {
        match value {
            Value::Null => Some(Mapping::new()),
            Value::Mapping(map) => Some(map),
            other => {
                let message = format!("expected a mapping of keys, found {}", describe(&other));
                self.problem(path.to_owned(), Source::File, message);
                None
            }
        }
    }

    /// A choice's value: the mode's name, or a mapping whose only key is the mode. Returns
    /// the mode and its section, checked against the table like any other.
    fn file_choice(
        &mut self,
        path: &str,
        modes: &'static [Key],
        value: Value,
    ) -> Option<(String, Mapping)> {
        let expected = schema::accepted(modes).join(", ");
        let (mode, section) = match value {
            // A value, so compared ignoring case like the other named values.
            Value::String(mode) => (mode.to_ascii_lowercase(), Value::Null),
            Value::Mapping(map) if map.len() == 1 => {
                let (mode, section) = map.into_iter().next().expect("one entry");
                let Value::String(mode) = mode else {
                    let message = format!(
                        "a mode must be a name; expected one of {expected}, found {}",
                        describe(&mode)
                    );
                    self.problem(path.to_owned(), Source::File, message);
                    return None;
                };
                (mode, section)
            }
            Value::Mapping(map) if map.len() > 1 => {
                let given: Vec<String> = map
                    .keys()
                    .map(|k| k.as_str().map_or_else(|| describe(k), str::to_owned))
                    .collect();
                let message = format!(
                    "several modes given ({}); expected exactly one of {expected}",
                    given.join(", ")
                );
                self.problem(path.to_owned(), Source::File, message);
                return None;
            }
            Value::Null | Value::Mapping(_) => {
                let message = format!("no mode given; expected exactly one of {expected}");
                self.problem(path.to_owned(), Source::File, message);
                return None;
            }
            other => {
                let message = format!(
                    "expected a mode ({expected}) or a mapping with one of them as its only key, found {}",
                    describe(&other)
                );
                self.problem(path.to_owned(), Source::File, message);
                return None;
            }
        };
        let keys = self.pick_mode(path, modes, &mode, &Source::File)?;
        let mode_path = join(path, &mode);
        let section = self.file_mapping(&mode_path, section)?;
        let section = self.walk(keys, &mode_path, section);
        Some((mode, section))
    }

    /// The keys of mode `mode` of the choice at `path`; an unknown or unsupported mode is
    /// reported instead.
    fn pick_mode(
        &mut self,
        path: &str,
        modes: &'static [Key],
        mode: &str,
        source: &Source,
    ) -> Option<&'static [Key]> {
        match schema::find(modes, mode) {
            Some(Key {
                kind: Kind::Section(keys),
                ..
            }) => Some(keys),
            Some(key) => {
                self.unsupported(join(path, mode), source.clone(), key);
                None
            }
            None => {
                let message = schema::unknown_mode(modes, mode);
                self.problem(path.to_owned(), source.clone(), message);
                None
            }
        }
    }

    fn ignored(&mut self, path: String, source: Source, key: &Key) {
        // `version` is in every registry:2 file and means nothing; a warning would be noise.
        if !key.doc.is_empty() {
            self.warn(path, source, format!("ignored: {}", key.doc));
        }
    }

    fn unsupported(&mut self, path: String, source: Source, key: &Key) {
        self.problem(path, source, format!("not supported yet: {}", key.doc));
    }

    /// A setting berth has only at the values that ask for what it does anyway.
    fn unsupported_unless(
        &mut self,
        path: String,
        source: Source,
        key: &Key,
        harmless: &[&str],
        value: Option<&str>,
    ) {
        // 1/0 from the environment mean true/false, as for berth's own booleans.
        let value = value.map(|v| parse_bool(v).map_or(v, |b| if b { "true" } else { "false" }));
        if value.is_some_and(|v| harmless.iter().any(|h| h.eq_ignore_ascii_case(v))) {
            self.warn(path, source, format!("ignored: {}", key.doc));
        } else {
            self.unsupported(path, source, key);
        }
    }

    fn net(&mut self, path: String, source: Source, key: &Key, value: Option<&str>) {
        match value {
            Some("tcp") => self.warn(path, source, format!("ignored: {}", key.doc)),
            Some("unix") => self.problem(
                path,
                source,
                "not supported yet: berth listens on TCP only, not on a unix socket".into(),
            ),
            _ => self.problem(path, source, "invalid network: expected tcp".into()),
        }
    }

    /// Applies the environment, types the merged tree and validates it.
    fn finish(
        mut self,
        mut tree: Mapping,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        self.apply_env(&mut tree, env);
        let config = self.deserialize(tree);
        if let Some(config) = &config {
            self.validate(config);
            for (path, message) in config.warnings() {
                let source = self.origin_of(&path);
                self.warn(path, source, message);
            }
        }
        let config = match config {
            Some(config) if self.problems.is_empty() => config,
            _ => {
                return Err(ConfigError {
                    problems: self.problems,
                });
            }
        };
        let sources = explain::settings(&config)
            .into_iter()
            .map(|setting| {
                let source = self.origins.get(&setting.path).cloned();
                (setting.path, source.unwrap_or(Source::Default))
            })
            .collect();
        Ok(Loaded {
            config,
            warnings: self.warnings,
            sources,
        })
    }

    fn apply_env(&mut self, tree: &mut Mapping, env: impl IntoIterator<Item = (String, String)>) {
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
                let value = match kind {
                    EnvValue::Text => Value::String(value.to_owned()),
                    EnvValue::Bool => match parse_bool(value) {
                        Some(b) => Value::Bool(b),
                        None => {
                            let message =
                                format!("invalid boolean {value:?}: expected true, false, 1 or 0");
                            return self.problem(path, source, message);
                        }
                    },
                    EnvValue::List => value
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| Value::String(item.to_owned()))
                        .collect(),
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
                    let parts: Vec<String> = choice.split('.').map(str::to_owned).collect();
                    let mut whole = Value::Mapping(std::mem::take(tree));
                    remove(&mut whole, &parts);
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

    fn deserialize(&mut self, tree: Mapping) -> Option<Config> {
        let mut tree = Value::Mapping(tree);
        // Each failure names one bad value. Dropping it (so its default applies) and trying
        // again finds the next one; this ends because every round removes a value.
        loop {
            match serde_path_to_error::deserialize::<_, Config>(tree.clone()) {
                Ok(config) => return Some(config),
                Err(err) => {
                    let keys: Vec<String> = err
                        .path()
                        .iter()
                        .map_while(|segment| match segment {
                            Segment::Map { key } => Some(key.clone()),
                            _ => None,
                        })
                        .collect();
                    let path = err.path().to_string();
                    let path = if path == "." { String::new() } else { path };
                    let key_path = keys.join(".");
                    let source = self.origin_of(&key_path);
                    let message = if schema::at(&key_path).is_some_and(|key| key.secret) {
                        // serde's messages quote the value ("invalid type: integer `123`").
                        "invalid value: expected a string (the value is a secret and is not shown; quote it in YAML if it looks like a number)".to_owned()
                    } else {
                        err.into_inner().to_string()
                    };
                    self.problem(path, source, message);
                    if keys.is_empty() || !remove(&mut tree, &keys) {
                        return None;
                    }
                }
            }
        }
    }

    fn validate(&mut self, config: &Config) {
        for (path, message) in config.validate() {
            // A malformed value was dropped and reported already; its absence is not news.
            let reported = self
                .problems
                .iter()
                .any(|p| is_within(&p.path, &path) || is_within(&path, &p.path));
            if !reported {
                let source = self.origin_of(&path);
                self.problem(path, source, message);
            }
        }
    }

    /// The source of the nearest key at or above `path` that was set.
    fn origin_of(&self, mut path: &str) -> Source {
        loop {
            if let Some(source) = self.origins.get(path) {
                return source.clone();
            }
            match path.rsplit_once('.') {
                Some((parent, _)) => path = parent,
                None => return Source::Default,
            }
        }
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

fn remove(tree: &mut Value, keys: &[String]) -> bool {
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let mut node = tree;
    for key in parents {
        match node.get_mut(key.as_str()) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.as_mapping_mut()
        .is_some_and(|map| map.remove(last.as_str()).is_some())
}

/// Whether `path` is `ancestor` or lies below it (`http.tls.key` is within `http.tls`;
/// `http.trustedproxies[1]` is within `http.trustedproxies`).
fn is_within(path: &str, ancestor: &str) -> bool {
    match path.strip_prefix(ancestor) {
        Some("") => !ancestor.is_empty(),
        Some(rest) => rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A short description of a YAML value for "found ..." messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

#[cfg(test)]
mod tests;
