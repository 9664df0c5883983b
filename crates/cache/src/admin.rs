//! Managing remote and virtual repositories: the one write path the admin API and the
//! dashboard call. Those of the configuration file are shown but changed only there; those
//! made here are stored in the database and mounted on every instance within
//! [`crate::catalog::REFRESH`] (at once on this one). Every change is validated as the
//! configuration file's keys are (the same descriptions, the same checks, the same key
//! paths in the messages), audited, and never shows the upstream password again.

use std::sync::Arc;

use berth_auth::admin::{Actor, AdminError, AdminResult, Administration, timestamp};
use berth_config::{RemoteConfig, TextValue, VirtualConfig};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::{Caches, Kind, kind_of, merge};

/// A remote or virtual repository as it is shown: its live description (settings, status)
/// and where it is defined; for those made here, their definition without the password.
#[derive(Debug, Clone, Serialize)]
pub struct CacheView {
    #[serde(flatten)]
    pub description: Value,
    /// `configuration file` or `api`.
    pub source: &'static str,
    /// The stored definition (configuration keys), the password left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
    /// Whether an upstream password is set (never the password itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl CacheView {
    pub fn name(&self) -> &str {
        self.description["name"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.description["kind"].as_str().unwrap_or_default()
    }
}

pub struct CacheAdmin {
    caches: Arc<Caches>,
    audit: Administration,
}

impl CacheAdmin {
    pub fn new(caches: Arc<Caches>, audit: Administration) -> CacheAdmin {
        CacheAdmin { caches, audit }
    }

    pub fn caches(&self) -> &Arc<Caches> {
        &self.caches
    }

    /// Every remote (registry:2's proxy among them) and virtual repository in force.
    pub async fn list(&self) -> AdminResult<Vec<CacheView>> {
        self.caches.refresh().await?;
        let stored = self.caches.stored();
        Ok(self
            .caches
            .namespaces()
            .describe()
            .into_iter()
            .map(|description| {
                let kind = match description["kind"].as_str() {
                    Some("virtual") => Kind::Virtual,
                    _ => Kind::Remote,
                };
                let name = description["name"].as_str().unwrap_or_default();
                let definition = stored.iter().find(|d| d.name == name && kind_of(d) == kind);
                match definition {
                    None => CacheView {
                        description,
                        source: "configuration file",
                        definition: None,
                        password_set: None,
                        updated_at: None,
                        updated_by: None,
                    },
                    Some(stored) => {
                        let mut definition: Value =
                            serde_json::from_str(&stored.definition).unwrap_or(Value::Null);
                        let password_set = definition
                            .as_object_mut()
                            .and_then(|d| d.remove("password"))
                            .is_some();
                        CacheView {
                            description,
                            source: "api",
                            definition: Some(definition),
                            password_set: (kind == Kind::Remote).then_some(password_set),
                            updated_at: Some(timestamp(stored.updated_at)),
                            updated_by: Some(stored.updated_by.clone()),
                        }
                    }
                }
            })
            .collect())
    }

    pub async fn get(&self, kind: Kind, name: &str) -> AdminResult<CacheView> {
        self.list()
            .await?
            .into_iter()
            .find(|v| v.name() == name && v.kind() != other_kind(kind))
            .ok_or_else(|| not_found(kind, name))
    }

    /// Creates (`create`) or replaces a remote or virtual repository from its configuration
    /// keys (`prefix`, `urls`, ...). Replacing a remote without a `password` keeps the stored
    /// one when the user name stays the same.
    pub async fn put(
        &self,
        actor: &Actor,
        kind: Kind,
        name: &str,
        definition: Value,
        create: bool,
    ) -> AdminResult<CacheView> {
        let verb = if create { "create" } else { "replace" };
        let result = self
            .put_checked(actor, kind, name, definition, create)
            .await;
        self.audited(actor, kind, name, verb, &result).await;
        result?;
        self.get(kind, name).await
    }

    async fn put_checked(
        &self,
        actor: &Actor,
        kind: Kind,
        name: &str,
        definition: Value,
        create: bool,
    ) -> AdminResult<()> {
        valid_name(name)?;
        self.refuse_configured(kind, name)?;
        let Value::Object(mut definition) = definition else {
            return Err(AdminError::Invalid(format!(
                "a {} is a JSON object of its configuration keys",
                kind.as_str()
            )));
        };
        self.caches.refresh().await?;
        let mut stored = self.caches.stored();
        let old = stored
            .iter()
            .position(|d| d.name == name && kind_of(d) == kind);
        if kind == Kind::Remote && !definition.contains_key("password") {
            keep_password(&mut definition, old.map(|i| &stored[i].definition));
        }
        let text = Value::Object(definition.clone()).to_string();
        // Read as the configuration file's keys are: unknown keys and wrong types refused.
        let path = format!("{}.{name}", kind.section());
        let parsed = match kind {
            Kind::Remote => {
                serde_json::from_value::<RemoteConfig>(Value::Object(definition)).map(|_| ())
            }
            Kind::Virtual => {
                serde_json::from_value::<VirtualConfig>(Value::Object(definition)).map(|_| ())
            }
        };
        parsed.map_err(|e| AdminError::Invalid(format!("{path}: {e}")))?;
        let candidate = berth_meta::CacheDefinition {
            kind: kind.as_str().into(),
            name: name.into(),
            definition: text.clone(),
            created_at: 0,
            updated_at: 0,
            updated_by: String::new(),
        };
        match old {
            Some(i) => stored[i] = candidate,
            None => stored.push(candidate),
        }
        check(&merge(self.caches.file(), &stored))?;
        let done = self
            .caches
            .store()
            .put_cache_definition(kind.as_str(), name, &text, &actor.name(), create)
            .await?;
        if !done {
            return Err(if create {
                AdminError::Conflict(format!("a {} named {name} exists already", kind.as_str()))
            } else {
                not_found(kind, name)
            });
        }
        self.caches.refresh().await?;
        Ok(())
    }

    /// Removes a remote or virtual repository made here. What a remote cached stays (ordinary
    /// content: garbage collection and retention apply); a remote a virtual repository still
    /// names cannot be removed.
    pub async fn delete(&self, actor: &Actor, kind: Kind, name: &str) -> AdminResult<()> {
        let result = async {
            self.refuse_configured(kind, name)?;
            self.caches.refresh().await?;
            let mut stored = self.caches.stored();
            let before = stored.len();
            stored.retain(|d| !(d.name == name && kind_of(d) == kind));
            if stored.len() == before {
                return Err(not_found(kind, name));
            }
            check(&merge(self.caches.file(), &stored)).map_err(|e| match e {
                AdminError::Invalid(why) => AdminError::Conflict(format!(
                    "removing the {} {name} would leave: {why}",
                    kind.as_str()
                )),
                other => other,
            })?;
            if !self
                .caches
                .store()
                .delete_cache_definition(kind.as_str(), name)
                .await?
            {
                return Err(not_found(kind, name));
            }
            self.caches.refresh().await?;
            Ok(())
        }
        .await;
        self.audited(actor, kind, name, "delete", &result).await;
        result
    }

    fn refuse_configured(&self, kind: Kind, name: &str) -> AdminResult<()> {
        let file = self.caches.file();
        let configured = match kind {
            Kind::Remote => file.remotes.contains_key(name) || name == "proxy",
            Kind::Virtual => file.virtuals.contains_key(name),
        };
        if configured {
            return Err(AdminError::Conflict(format!(
                "the {} {name} is defined in the configuration file; change it there",
                kind.as_str()
            )));
        }
        Ok(())
    }

    async fn audited<T>(
        &self,
        actor: &Actor,
        kind: Kind,
        name: &str,
        what: &str,
        result: &AdminResult<T>,
    ) {
        let target = format!("{}:{name}", kind.as_str());
        let (outcome, detail) = match result {
            Ok(_) => ("allowed", what.to_string()),
            Err(e) => ("failed", format!("{what}: {e}")),
        };
        self.audit
            .record_management(actor, &target, outcome, &detail)
            .await;
    }
}

/// A definition from `key=value` texts (the command line's, the dashboard form's), each
/// read as its configuration key reads an environment variable's text: lists
/// comma-separated, booleans true/false/1/0, the rest as text that the key's own reading
/// checks when the definition is stored. Empty texts are left out (unset).
pub fn definition_from_texts<'a>(
    kind: Kind,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> AdminResult<Map<String, Value>> {
    let mut definition = Map::new();
    for (key, text) in pairs {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let path = format!("{}.{key}", kind.section());
        let value = berth_config::value_from_text(&path, text)
            .map_err(|why| AdminError::Invalid(format!("{path}: {why}")))?;
        definition.insert(
            key.to_string(),
            match value {
                TextValue::Text(text) => Value::String(text),
                TextValue::Bool(flag) => Value::Bool(flag),
                TextValue::List(items) => items.into_iter().map(Value::String).collect(),
            },
        );
    }
    Ok(definition)
}

/// The configuration with a change applied passes the configuration's own checks.
fn check(config: &berth_config::Config) -> AdminResult<()> {
    let problems = config.problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(AdminError::Invalid(
        problems
            .iter()
            .map(|(path, why)| format!("{path}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
    ))
}

/// Keeps the stored password when the user name did not change.
fn keep_password(definition: &mut Map<String, Value>, old: Option<&String>) {
    let Some(old) = old.and_then(|o| serde_json::from_str::<Value>(o).ok()) else {
        return;
    };
    if definition.get("username").is_some()
        && definition.get("username") == old.get("username")
        && let Some(password) = old.get("password")
    {
        definition.insert("password".into(), password.clone());
    }
}

fn other_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Remote => "virtual",
        Kind::Virtual => "remote",
    }
}

/// Names as the configuration's map keys: lowercase letters, digits, `-` and `_`.
fn valid_name(name: &str) -> AdminResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "{name:?} is not a valid name: 1 to 64 lowercase letters, digits, '-' and '_', starting with a letter or digit"
        )))
    }
}

fn not_found(kind: Kind, name: &str) -> AdminError {
    AdminError::NotFound(format!("no {} named {name}", kind.as_str()))
}
