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
//! file's (see `Loader::settle_modes`), so that serde always sees exactly one mode.

mod env;

use std::collections::BTreeMap;
use std::path::Path;

use serde_path_to_error::Segment;
use serde_yaml_ng::{Mapping, Value};

use crate::model::Config;
use crate::schema::{self, Key, Kind, Step, join};
use crate::values::parse_bool;
use crate::{ConfigError, Problem, Source, explain};

/// A value written as text (on a command line), typed as its key reads one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextValue {
    Text(String),
    Bool(bool),
    List(Vec<String>),
}

/// Reads `text` as the value of the key at `path` (dotted, the names of a map's entries
/// left out: `remotes.urls` for every remote's `urls`) exactly as an environment variable's
/// text is read: a list comma-separated, a boolean true/false/1/0, anything else text
/// (which the key's own reading then checks). An unknown key is refused with the keys
/// accepted there.
pub fn value_from_text(path: &str, text: &str) -> Result<TextValue, String> {
    let unknown = || {
        let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
        let keys = if parent.is_empty() {
            schema::ROOT
        } else {
            schema::at(parent).map_or(&[][..], schema::children)
        };
        schema::unknown_key(keys, name)
    };
    let Some(schema::Key {
        kind: schema::Kind::Leaf(kind),
        ..
    }) = schema::at(path)
    else {
        return Err(unknown());
    };
    Ok(match env::text_value(*kind, text)? {
        Value::Bool(b) => TextValue::Bool(b),
        Value::Sequence(items) => TextValue::List(
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        Value::String(text) => TextValue::Text(text),
        _ => unreachable!("text_value makes text, booleans and lists"),
    })
}

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
    mode_claims: Vec<env::ModeClaim>,
    /// The problems (indices) that left the tree as it was: a variable addressing a list or
    /// map of sections. What validation finds there is still news.
    kept_tree: Vec<usize>,
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
                Kind::List(children) => {
                    if let Some(items) = self.file_list(&path, value) {
                        let items: Vec<Value> = items
                            .into_iter()
                            .enumerate()
                            .map(|(i, item)| {
                                let path = format!("{path}[{i}]");
                                // An element that is not a mapping stays as an empty one,
                                // so that the next elements keep their indices.
                                let item = self.file_mapping(&path, item).unwrap_or_default();
                                let item = self.walk(children, &path, item);
                                self.origins.insert(path, Source::File);
                                Value::Mapping(item)
                            })
                            .collect();
                        self.origins.insert(path, Source::File);
                        out.insert(name.into(), Value::Sequence(items));
                    }
                }
                Kind::Named(children) => {
                    if let Some(entries) = self.file_mapping(&path, value) {
                        let mut named = Mapping::new();
                        for (entry, item) in entries {
                            let Value::String(entry) = entry else {
                                let message = format!(
                                    "the names of its entries must be strings, found {}",
                                    describe(&entry)
                                );
                                self.problem(path.clone(), Source::File, message);
                                continue;
                            };
                            let entry_path = format!("{path}.{entry}");
                            if let Some(item) = self.file_mapping(&entry_path, item) {
                                let item = self.walk(children, &entry_path, item);
                                self.origins.insert(entry_path, Source::File);
                                named.insert(entry.into(), item.into());
                            }
                        }
                        self.origins.insert(path, Source::File);
                        out.insert(name.into(), named.into());
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

    /// A list of sections' value: a list, or nothing (`endpoints:`) meaning empty.
    fn file_list(&mut self, path: &str, value: Value) -> Option<Vec<Value>> {
        match value {
            Value::Null => Some(Vec::new()),
            Value::Sequence(items) => Some(items),
            other => {
                let message = format!(
                    "expected a list of mappings of keys, found {}",
                    describe(&other)
                );
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

    fn deserialize(&mut self, tree: Mapping) -> Option<Config> {
        let mut tree = Value::Mapping(tree);
        // Each failure names one bad value. Dropping it (so its default applies) and trying
        // again finds the next one; this ends because every round removes a value.
        loop {
            match serde_path_to_error::deserialize::<_, Config>(tree.clone()) {
                Ok(config) => return Some(config),
                Err(err) => {
                    let steps: Vec<Step> = err
                        .path()
                        .iter()
                        .map_while(|segment| match segment {
                            Segment::Map { key } => Some(Step::Key(key.clone())),
                            Segment::Seq { index } => Some(Step::Index(*index)),
                            _ => None,
                        })
                        .collect();
                    let path = schema::path_text(&steps);
                    let source = self.origin_of(&path);
                    let message = if schema::key_at(&steps).is_some_and(|key| key.secret) {
                        // serde's messages quote the value ("invalid type: integer `123`").
                        "invalid value: expected a string (the value is a secret and is not shown; quote it in YAML if it looks like a number)".to_owned()
                    } else {
                        err.into_inner().to_string()
                    };
                    self.problem(path, source, message);
                    if !remove(&mut tree, &steps) {
                        return None;
                    }
                }
            }
        }
    }

    fn validate(&mut self, config: &Config) {
        for (path, message) in config.validate() {
            // A malformed value was dropped and reported already; its absence is not news.
            let reported = self.problems.iter().enumerate().any(|(i, p)| {
                !self.kept_tree.contains(&i)
                    && (is_within(&p.path, &path) || is_within(&path, &p.path))
            });
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

/// Removes the value at `steps`, or the whole list holding it when it is an element of a
/// list of values (removing one element would renumber the others).
fn remove(tree: &mut Value, steps: &[Step]) -> bool {
    let Some(last_key) = steps.iter().rposition(|s| matches!(s, Step::Key(_))) else {
        return false;
    };
    let Step::Key(last) = &steps[last_key] else {
        unreachable!("found a key")
    };
    let mut node = tree;
    for step in &steps[..last_key] {
        let child = match step {
            Step::Key(key) => node.get_mut(key.as_str()),
            Step::Index(i) => node.get_mut(*i),
        };
        match child {
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
