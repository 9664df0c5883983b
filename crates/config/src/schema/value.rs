//! What a key's Rust type means: [`ConfigValue`] says how the environment's text becomes a
//! value, how the value is read from the file, how `explain` shows it and how it is checked.
//! A field's type is all `section!` needs to know about it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use berth_oci::Pattern;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::{EnvValue, Kind, MapKind, section};
use crate::Config;
use crate::explain::Setting;
use crate::values::{self, format_duration};

/// A type a configuration key can have.
pub(crate) trait ConfigValue: Sized {
    /// What a key of this type is in the key table.
    const KIND: Kind;

    /// Reads the value from the merged YAML tree (where an environment variable's text has
    /// already become a YAML value as [`Kind`] says).
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;

    /// Adds the effective setting(s) at `path` for `explain`: one for a value, one per entry
    /// for a map, one per key for a section.
    fn explain(&self, path: &str, root: &Config, out: &mut Vec<Setting>);

    /// Adds what is wrong beyond the type, naming keys below `path` (this value's own path,
    /// `notifications.endpoints[0]` for an element of a list); sections run their
    /// validation hooks.
    fn check(&self, _path: &str, _problems: &mut Problems) {}

    /// Whether a value is given: all that is shown of a secret.
    fn is_set(&self) -> bool {
        true
    }
}

/// A `section!`: what a list or a map of sections holds.
pub(crate) trait Section: ConfigValue {}

/// Problems found by validation hooks, as `(key path, message)` pairs.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<(String, String)>);

impl Problems {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }
}

/// A single value whose `explain` text is `show`.
macro_rules! value {
    ($ty:ty, $env:ident, $read:expr, $show:expr) => {
        impl ConfigValue for $ty {
            const KIND: Kind = Kind::Leaf(EnvValue::$env);

            fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $read(d)
            }

            fn explain(&self, path: &str, _root: &Config, out: &mut Vec<Setting>) {
                let show: fn(&$ty) -> String = $show;
                out.push(Setting::leaf(path, show(self)));
            }
        }
    };
}

/// Empty text is shown quoted, so that it is visibly empty.
fn text(text: &str) -> String {
    if text.is_empty() {
        "\"\"".to_owned()
    } else {
        text.to_owned()
    }
}

value!(bool, Bool, bool::deserialize, bool::to_string);
value!(String, Text, String::deserialize, |s| text(s));
value!(PathBuf, Text, PathBuf::deserialize, |p| text(
    &p.display().to_string()
));
value!(Duration, Text, values::duration, |d| format_duration(*d));
value!(u32, Text, values::count, u32::to_string);
value!(u64, Text, values::count, u64::to_string);
value!(IpNet, Text, values::proxy, IpNet::to_string);
value!(Pattern, Text, values::pattern, Pattern::to_string);

/// Makes a type that parses from text with `FromStr` (its error says what was wrong and what
/// is expected) and shows with `Display` a configuration value: `parsed_value!(LogLevel, "a
/// log level")`, where the text is what serde's type errors say was expected.
macro_rules! parsed_value {
    ($ty:ty, $expecting:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::values::parsed(d, $expecting)
            }
        }

        impl $crate::schema::ConfigValue for $ty {
            const KIND: $crate::schema::Kind =
                $crate::schema::Kind::Leaf($crate::schema::EnvValue::Text);

            fn read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$ty as serde::Deserialize>::deserialize(d)
            }

            fn explain(
                &self,
                path: &str,
                _root: &$crate::Config,
                out: &mut Vec<$crate::explain::Setting>,
            ) {
                out.push($crate::explain::Setting::leaf(path, self.to_string()));
            }
        }
    };
}

pub(crate) use parsed_value;

/// A mapping whose keys the user chooses: one setting per entry, or the empty map.
fn explain_map<'a>(
    path: &str,
    entries: impl ExactSizeIterator<Item = (&'a String, String)>,
    out: &mut Vec<Setting>,
) {
    if entries.len() == 0 {
        out.push(Setting::leaf(path, "{}".to_owned()));
    }
    for (name, value) in entries {
        out.push(Setting {
            path: format!("{path}.{name}"),
            key: path.to_owned(),
            value,
        });
    }
}

/// `log.fields`.
impl ConfigValue for BTreeMap<String, String> {
    const KIND: Kind = Kind::Map(MapKind::Fields);

    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        values::string_map(d)
    }

    fn explain(&self, path: &str, _root: &Config, out: &mut Vec<Setting>) {
        explain_map(path, self.iter().map(|(k, v)| (k, v.clone())), out);
    }
}

/// `http.headers`: each header's values.
impl ConfigValue for BTreeMap<String, Vec<String>> {
    const KIND: Kind = Kind::Map(MapKind::Headers);

    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        values::headers(d)
    }

    fn explain(&self, path: &str, _root: &Config, out: &mut Vec<Setting>) {
        let entries = self
            .iter()
            .map(|(name, values)| (name, format!("[{}]", values.join(", "))));
        explain_map(path, entries, out);
    }
}

/// An optional value or section: unset is one setting, whatever it would hold.
impl<T: ConfigValue> ConfigValue for Option<T> {
    const KIND: Kind = T::KIND;

    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Via<T>>::deserialize(d)?.map(|v| v.0))
    }

    fn explain(&self, path: &str, root: &Config, out: &mut Vec<Setting>) {
        match self {
            None => out.push(Setting::leaf(path, "(unset)".to_owned())),
            Some(value) => value.explain(path, root, out),
        }
    }

    fn check(&self, path: &str, problems: &mut Problems) {
        if let Some(value) = self {
            value.check(path, problems);
        }
    }

    fn is_set(&self) -> bool {
        self.is_some()
    }
}

/// A list: of values (`events: [manifest.pushed]`, from the environment a comma-separated
/// list), or of sections (`notifications.endpoints`, only in the file). Absent or empty in
/// the file (`events:`) is the empty list.
impl<T: ConfigValue> ConfigValue for Vec<T> {
    const KIND: Kind = match T::KIND {
        Kind::Section(keys) => Kind::List(keys),
        Kind::Leaf(_) => Kind::Leaf(EnvValue::List),
        _ => panic!("a list holds values or sections"),
    };

    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Option::<Vec<Via<T>>>::deserialize(d)?.unwrap_or_default();
        Ok(items.into_iter().map(|item| item.0).collect())
    }

    /// A list of values is one setting (`[a, b]`), a list of sections one per key of each
    /// element (`notifications.endpoints[0].url`).
    fn explain(&self, path: &str, root: &Config, out: &mut Vec<Setting>) {
        if let Kind::List(_) = Self::KIND {
            if self.is_empty() {
                out.push(Setting::leaf(path, "[]".to_owned()));
            }
            for (i, item) in self.iter().enumerate() {
                explain_entry(item, &format!("{path}[{i}]"), path, root, out);
            }
        } else {
            let mut shown = Vec::new();
            for item in self {
                item.explain(path, root, &mut shown);
            }
            let shown: Vec<String> = shown.into_iter().map(|s| s.value).collect();
            out.push(Setting::leaf(path, format!("[{}]", shown.join(", "))));
        }
    }

    fn check(&self, path: &str, problems: &mut Problems) {
        for (i, item) in self.iter().enumerate() {
            item.check(&format!("{path}[{i}]"), problems);
        }
    }
}

/// A map from names the user chooses to sections (`webhooks: {ci: {url: ...}}`), only in the
/// file. Absent or empty is the empty map.
impl<T: Section> ConfigValue for BTreeMap<String, T> {
    const KIND: Kind = match T::KIND {
        Kind::Section(keys) => Kind::Named(keys),
        _ => panic!("a map of sections holds sections"),
    };

    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Option::<BTreeMap<String, Via<T>>>::deserialize(d)?.unwrap_or_default();
        Ok(entries.into_iter().map(|(k, v)| (k, v.0)).collect())
    }

    fn explain(&self, path: &str, root: &Config, out: &mut Vec<Setting>) {
        if self.is_empty() {
            out.push(Setting::leaf(path, "{}".to_owned()));
        }
        for (name, entry) in self {
            explain_entry(entry, &format!("{path}.{name}"), path, root, out);
        }
    }

    fn check(&self, path: &str, problems: &mut Problems) {
        for (name, entry) in self {
            entry.check(&format!("{path}.{name}"), problems);
        }
    }
}

/// The settings of one element of a list or map of sections at `entry_path`, each keyed by
/// the table's path (`webhooks.url` for `webhooks.ci.url`), where its meaning is.
fn explain_entry<T: ConfigValue>(
    entry: &T,
    entry_path: &str,
    key_path: &str,
    root: &Config,
    out: &mut Vec<Setting>,
) {
    let start = out.len();
    entry.explain(entry_path, root, out);
    for setting in &mut out[start..] {
        if let Some(rest) = setting.key.strip_prefix(entry_path) {
            setting.key = format!("{key_path}{rest}");
        }
    }
}

/// Reads a `T` where serde wants a `Deserialize` type.
pub(crate) struct Via<T>(pub T);

impl<'de, T: ConfigValue> Deserialize<'de> for Via<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::read(d).map(Via)
    }
}

/// One field's settings for `explain`, as `section!` describes it: a secret shows only
/// whether it is set, `show` replaces the type's own text.
pub(crate) fn explain_field<T: ConfigValue>(
    value: &T,
    path: &str,
    root: &Config,
    secret: bool,
    show: Option<fn(&T, &Config) -> String>,
    out: &mut Vec<Setting>,
) {
    if secret {
        let shown = if value.is_set() { "(set)" } else { "(unset)" };
        out.push(Setting::leaf(path, shown.to_owned()));
    } else if let Some(show) = show {
        out.push(Setting::leaf(path, show(value, root)));
    } else {
        value.explain(path, root, out);
    }
}

/// One field in a section's `Debug`: a secret shows only whether it is set, `debug` replaces
/// the value's own `Debug`.
pub(crate) struct DebugField<'a, T> {
    pub value: &'a T,
    pub secret: bool,
    pub debug: Option<fn(&T) -> String>,
}

impl<T: ConfigValue + fmt::Debug> fmt::Debug for DebugField<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str(if self.value.is_set() {
                "(set)"
            } else {
                "(unset)"
            })
        } else if let Some(debug) = self.debug {
            f.write_str(&debug(self.value))
        } else {
            self.value.fmt(f)
        }
    }
}

section! {
    /// The section of a mode that has no settings (`auth: {none: {}}`).
    #[derive(Clone, PartialEq, Eq)]
    pub struct NoSettings {}
}
