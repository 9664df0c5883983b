//! `berth config check`: every effective setting, where it came from and what it means.

use crate::Source;
use crate::load::Loaded;
use crate::model::Config;
use crate::schema;
use crate::values::format_duration;

/// One effective leaf setting, its value written as it would be in the file.
pub(crate) struct Setting {
    pub path: String,
    /// The key table's path for this setting; differs from `path` for map entries.
    pub key: &'static str,
    pub value: String,
}

/// Flattens the configuration into its leaf settings. Maps list one setting per entry (or
/// the map itself when empty); an absent `http.tls` is one setting rather than three.
pub(crate) fn settings(config: &Config) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut leaf = |key: &'static str, value: String| {
        out.push(Setting {
            path: key.to_owned(),
            key,
            value,
        })
    };
    let unset = || "(unset)".to_owned();
    // A secret's value is never shown, only whether there is one.
    let secret =
        |value: &Option<String>| if value.is_some() { "(set)" } else { "(unset)" }.to_owned();

    let log = &config.log;
    leaf("log.level", log.level.to_string());
    leaf("log.formatter", log.formatter.to_string());
    leaf("log.accesslog.disabled", log.accesslog.disabled.to_string());

    let http = &config.http;
    leaf("http.addr", http.addr.to_string());
    leaf(
        "http.host",
        http.host.as_ref().map_or_else(unset, |h| h.to_string()),
    );
    leaf("http.relativeurls", http.relativeurls.to_string());
    match &http.tls {
        None => leaf("http.tls", unset()),
        Some(tls) => {
            leaf(
                "http.tls.certificate",
                tls.certificate.display().to_string(),
            );
            leaf("http.tls.key", tls.key.display().to_string());
            leaf(
                "http.tls.minimumtls",
                tls.minimumtls.map_or_else(unset, |v| v.to_string()),
            );
        }
    }
    leaf("http.draintimeout", format_duration(http.draintimeout));
    let proxies: Vec<String> = http.trustedproxies.iter().map(|p| p.to_string()).collect();
    leaf("http.trustedproxies", format!("[{}]", proxies.join(", ")));

    let storage = &config.storage;
    leaf(
        "storage.filesystem.rootdirectory",
        storage.filesystem.rootdirectory.display().to_string(),
    );
    match &storage.s3 {
        None => leaf("storage.s3", unset()),
        Some(s3) => {
            leaf("storage.s3.bucket", s3.bucket.clone());
            leaf("storage.s3.region", s3.region.clone());
            leaf(
                "storage.s3.regionendpoint",
                s3.regionendpoint.clone().unwrap_or_else(unset),
            );
            leaf(
                "storage.s3.accesskey",
                s3.accesskey.clone().unwrap_or_else(unset),
            );
            leaf("storage.s3.secretkey", secret(&s3.secretkey));
            leaf("storage.s3.sessiontoken", secret(&s3.sessiontoken));
            leaf(
                "storage.s3.rootdirectory",
                if s3.rootdirectory.is_empty() {
                    "\"\"".to_owned()
                } else {
                    s3.rootdirectory.clone()
                },
            );
            leaf("storage.s3.forcepathstyle", s3.forcepathstyle.to_string());
            leaf("storage.s3.secure", s3.secure.to_string());
            leaf("storage.s3.chunksize", s3.chunksize.to_string());
        }
    }
    leaf(
        "storage.redirect.disable",
        storage.redirect.disable.to_string(),
    );
    leaf(
        "storage.redirect.expiry",
        format_duration(storage.redirect.expiry),
    );
    leaf("storage.delete.enabled", storage.delete.enabled.to_string());
    let purging = &storage.maintenance.uploadpurging;
    leaf(
        "storage.maintenance.uploadpurging.enabled",
        purging.enabled.to_string(),
    );
    leaf(
        "storage.maintenance.uploadpurging.age",
        format_duration(purging.age),
    );
    leaf(
        "storage.maintenance.uploadpurging.interval",
        format_duration(purging.interval),
    );
    leaf(
        "storage.maintenance.uploadpurging.dryrun",
        purging.dryrun.to_string(),
    );
    leaf(
        "storage.maintenance.readonly.enabled",
        storage.maintenance.readonly.enabled.to_string(),
    );

    let database = &config.database;
    leaf(
        "database.url",
        match &database.url {
            Some(_) => config.redacted_database_url(),
            None => format!("(unset; using {})", config.redacted_database_url()),
        },
    );
    leaf(
        "database.maxconnections",
        database.maxconnections.to_string(),
    );
    leaf(
        "database.connecttimeout",
        format_duration(database.connecttimeout),
    );

    let mut map = |key: &'static str, entries: Vec<(&String, String)>| {
        if entries.is_empty() {
            out.push(Setting {
                path: key.to_owned(),
                key,
                value: "{}".to_owned(),
            });
        }
        for (name, value) in entries {
            out.push(Setting {
                path: format!("{key}.{name}"),
                key,
                value,
            });
        }
    };
    map(
        "log.fields",
        log.fields.iter().map(|(k, v)| (k, v.clone())).collect(),
    );
    map(
        "http.headers",
        http.headers
            .iter()
            .map(|(name, values)| (name, format!("[{}]", values.join(", "))))
            .collect(),
    );

    out.sort_by_key(|setting| order(&setting.path));
    out
}

/// Sorts settings in the key table's order, so the listing reads like the file.
fn order(path: &str) -> Vec<usize> {
    let mut keys = schema::ROOT;
    let mut position = Vec::new();
    for name in path.split('.') {
        match keys.iter().position(|k| k.name == name) {
            Some(i) => {
                position.push(i);
                keys = match keys[i].kind {
                    schema::Kind::Section(children) => children,
                    _ => &[],
                };
            }
            // A map entry: entries keep their (sorted) order after the map's position.
            None => break,
        }
    }
    position
}

/// Every effective setting as `path = value    (source)  -- meaning`, then the warnings.
pub fn explain(loaded: &Loaded) -> String {
    let rows: Vec<(String, String, &str)> = settings(&loaded.config)
        .into_iter()
        .map(|setting| {
            let source = loaded
                .sources
                .get(&setting.path)
                .cloned()
                .unwrap_or(Source::Default);
            let doc = schema::at(setting.key).map_or("", |key| key.doc);
            (
                format!("{} = {}", setting.path, setting.value),
                format!("({source})"),
                doc,
            )
        })
        .collect();
    // Align the columns, but do not let one long value push everything far right.
    let width = rows
        .iter()
        .map(|(s, _, _)| s.len())
        .max()
        .unwrap_or(0)
        .min(60);
    let source_width = rows.iter().map(|(_, s, _)| s.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (setting, source, doc) in &rows {
        let line = format!("{setting:width$}    {source:source_width$}  -- {doc}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if loaded.warnings.is_empty() {
        out.push_str("\nno warnings\n");
    } else {
        out.push_str("\nwarnings:\n");
        for warning in &loaded.warnings {
            out.push_str(&format!("  - {warning}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::{S3Config, TlsConfig};
    use crate::schema::{Key, Kind};

    fn full_config() -> Config {
        let mut config = Config::default();
        config.http.tls = Some(TlsConfig {
            certificate: "/c.pem".into(),
            key: "/k.pem".into(),
            minimumtls: None,
        });
        config.storage.s3 = Some(S3Config {
            bucket: "b".into(),
            ..S3Config::default()
        });
        config
    }

    /// The key table and the model must describe the same settings; a key added to one and
    /// not the other would be accepted but never applied, or applied but never explained.
    #[test]
    fn settings_cover_every_key_in_the_table() {
        fn leaves(keys: &'static [Key], prefix: &str, out: &mut BTreeSet<String>) {
            for key in keys {
                let path = if prefix.is_empty() {
                    key.name.to_owned()
                } else {
                    format!("{prefix}.{}", key.name)
                };
                match key.kind {
                    Kind::Section(children) => leaves(children, &path, out),
                    Kind::Leaf(_) | Kind::Map(_) => {
                        out.insert(path);
                    }
                    Kind::Ignored | Kind::Net | Kind::Unsupported | Kind::UnsupportedUnless(_) => {}
                }
            }
        }
        let mut table = BTreeSet::new();
        leaves(schema::ROOT, "", &mut table);
        let listed: BTreeSet<String> = settings(&full_config())
            .iter()
            .map(|s| s.key.to_owned())
            .collect();
        assert_eq!(table, listed);
        for setting in settings(&full_config())
            .iter()
            .chain(&settings(&Config::default()))
        {
            let key = schema::at(setting.key).expect(setting.key);
            assert!(
                !key.doc.is_empty(),
                "{} has no meaning to explain",
                setting.key
            );
        }
    }

    /// Every key the table marks as a secret shows only whether it is set.
    #[test]
    fn secrets_show_only_whether_they_are_set() {
        let mut config = full_config();
        let s3 = config.storage.s3.as_mut().unwrap();
        s3.accesskey = Some("AKIAEXAMPLE".into());
        s3.secretkey = Some("hunter2".into());
        s3.sessiontoken = Some("hunter3".into());
        let mut secrets = 0;
        for (config, want) in [(&config, "(set)"), (&full_config(), "(unset)")] {
            for setting in settings(config) {
                if schema::at(setting.key).unwrap().secret {
                    assert_eq!(setting.value, want, "{}", setting.path);
                    secrets += 1;
                }
            }
        }
        assert_eq!(secrets, 4);
    }

    #[test]
    fn settings_read_like_the_file() {
        let paths: Vec<String> = settings(&Config::default())
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(paths.first().map(String::as_str), Some("log.level"));
        assert_eq!(
            paths.last().map(String::as_str),
            Some("database.connecttimeout")
        );
        let addr = paths.iter().position(|p| p == "http.addr").unwrap();
        let headers = paths.iter().position(|p| p == "http.headers").unwrap();
        let storage = paths
            .iter()
            .position(|p| p.starts_with("storage."))
            .unwrap();
        assert!(addr < headers && headers < storage, "{paths:?}");
    }
}
