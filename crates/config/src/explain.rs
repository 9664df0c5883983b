//! `berth config check`: every effective setting, where it came from and what it means.

use crate::Source;
use crate::load::Loaded;
use crate::model::Config;
use crate::schema::{self, ConfigValue};

/// One effective leaf setting, its value written as it would be in the file.
pub(crate) struct Setting {
    pub path: String,
    /// The key table's path for this setting; differs from `path` for map entries.
    pub key: String,
    pub value: String,
}

impl Setting {
    /// The setting of the key at `path`.
    pub fn leaf(path: &str, value: String) -> Setting {
        Setting {
            path: path.to_owned(),
            key: path.to_owned(),
            value,
        }
    }
}

/// Flattens the configuration into its leaf settings, in the order of the key table so that
/// the listing reads like the file. Maps list one setting per entry (or the map itself when
/// empty); an absent optional section (`http.tls`) is one setting rather than one per key. A
/// choice is its mode (`auth = htpasswd`) followed by that mode's settings. Each key's type
/// and its section's description say how its value is shown.
pub(crate) fn settings(config: &Config) -> Vec<Setting> {
    let mut out = Vec::new();
    config.explain("", config, &mut out);
    out
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
            let doc = schema::at(&setting.key).map_or("", |key| key.doc);
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
    use crate::model::{
        AuthConfig, BerthAuth, HtpasswdAuth, NotificationEndpoint, RemoteConfig, S3Config,
        TlsConfig, VirtualConfig, WebhookConfig,
    };
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
        // Not a valid configuration (one store at most), but it lists every store's keys.
        config.storage.gcs = Some(crate::GcsConfig::default());
        config.storage.azure = Some(crate::AzureConfig::default());
        config.storage.ipfs = Some(crate::IpfsConfig::default());
        config.notifications.endpoints.push(NotificationEndpoint {
            name: "listener".into(),
            url: Some("https://listener.example/events".parse().unwrap()),
            ..NotificationEndpoint::default()
        });
        config.webhooks.insert(
            "ci".into(),
            WebhookConfig {
                url: Some("https://ci.example/hook".parse().unwrap()),
                ..WebhookConfig::default()
            },
        );
        config.proxy.remoteurl = Some("https://registry-1.docker.io".parse().unwrap());
        config.remotes.insert(
            "hub".into(),
            RemoteConfig {
                prefix: Some("hub".into()),
                urls: vec!["https://registry-1.docker.io".parse().unwrap()],
                ..RemoteConfig::default()
            },
        );
        config.virtuals.insert(
            "all".into(),
            VirtualConfig {
                prefix: Some("all".into()),
                locals: vec!["team".into()],
                remotes: vec!["hub".into()],
                ..VirtualConfig::default()
            },
        );
        config.retention.rules.push(crate::RetentionRuleConfig {
            repositories: Some(berth_oci::Pattern::parse("ci/**").unwrap()),
            keeplastpushed: Some(3),
            ..crate::RetentionRuleConfig::default()
        });
        config.smtp = Some(crate::SmtpConfig {
            host: "mail.example.com".into(),
            from: "registry@example.com".into(),
            ..crate::SmtpConfig::default()
        });
        config
    }

    /// [`full_config`] in each authentication mode, so that together they list every key.
    fn full_configs() -> Vec<Config> {
        // With an LDAP directory and an OpenID provider, so that their keys are listed.
        let directory = BerthAuth {
            ldap: Some(crate::LdapConfig {
                url: "ldaps://ldap.example.com".into(),
                userbase: "ou=people,dc=example,dc=com".into(),
                ..Default::default()
            }),
            oidc: [(
                "sso".to_owned(),
                crate::OidcProvider {
                    issuer: "https://sso.example.com".into(),
                    clientid: "berth".into(),
                    ..Default::default()
                },
            )]
            .into(),
            ..BerthAuth::default()
        };
        let modes = [
            AuthConfig::None,
            AuthConfig::Htpasswd(HtpasswdAuth {
                realm: "Registry".into(),
                path: "/auth/htpasswd".into(),
            }),
            AuthConfig::Berth(BerthAuth {
                ldap: directory.ldap.clone(),
                oidc: directory.oidc.clone(),
                ..BerthAuth::default()
            }),
            AuthConfig::Berth(BerthAuth {
                realm: Some("https://r.example.com/token".parse().unwrap()),
                key: Some("/k.pem".into()),
                certificate: Some("/c.pem".into()),
                ..directory
            }),
        ];
        modes
            .into_iter()
            .map(|auth| Config {
                auth,
                ..full_config()
            })
            .collect()
    }

    /// `explain` lists every key of the table, each with a meaning: the macros derive both
    /// from one description, but a type's or a field's own `explain` could still skip a key.
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
                    // A list's or map's elements are listed under the table's path.
                    Kind::Section(children) | Kind::List(children) | Kind::Named(children) => {
                        leaves(children, &path, out)
                    }
                    // The choice's own setting is its mode; then each mode's keys.
                    Kind::Choice(modes) => {
                        leaves(modes, &path, out);
                        out.insert(path);
                    }
                    Kind::Leaf(_) | Kind::Map(_) => {
                        out.insert(path);
                    }
                    Kind::Ignored | Kind::Net | Kind::Unsupported | Kind::UnsupportedUnless(_) => {}
                }
            }
        }
        let mut table = BTreeSet::new();
        leaves(schema::ROOT, "", &mut table);
        let listed: BTreeSet<String> = full_configs()
            .iter()
            .flat_map(settings)
            .map(|s| s.key)
            .collect();
        assert_eq!(table, listed);
        let mut configs = full_configs();
        configs.push(Config::default());
        for setting in configs.iter().flat_map(settings) {
            let key = schema::at(&setting.key).expect(&setting.key);
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
        config.webhooks.get_mut("ci").unwrap().secret = Some("hunter4hunter4hunter4".into());
        config.storage.azure.as_mut().unwrap().accountkey = Some("hunter5".into());
        config.storage.ipfs.as_mut().unwrap().bearertoken = Some("hunter6".into());
        config.proxy.password = Some("hunter7".into());
        config.remotes.get_mut("hub").unwrap().password = Some("hunter8".into());
        let smtp = config.smtp.as_mut().unwrap();
        smtp.user = Some("mailer".into());
        smtp.password = Some("hunter9".into());
        let mut secrets = 0;
        for (config, want) in [(&config, "(set)"), (&full_config(), "(unset)")] {
            for setting in settings(config) {
                if schema::at(&setting.key).unwrap().secret {
                    assert_eq!(setting.value, want, "{}", setting.path);
                    secrets += 1;
                }
            }
        }
        assert_eq!(secrets, 16);
    }

    #[test]
    fn settings_read_like_the_file() {
        let paths: Vec<String> = settings(&Config::default())
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(paths.first().map(String::as_str), Some("log.level"));
        assert_eq!(paths.last().map(String::as_str), Some("smtp"));
        let addr = paths.iter().position(|p| p == "http.addr").unwrap();
        let headers = paths.iter().position(|p| p == "http.headers").unwrap();
        let storage = paths
            .iter()
            .position(|p| p.starts_with("storage."))
            .unwrap();
        assert!(addr < headers && headers < storage, "{paths:?}");
    }
}
