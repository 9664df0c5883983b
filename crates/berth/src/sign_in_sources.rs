//! The directory and the OpenID providers of `auth.berth.ldap` and `auth.berth.oidc`, built
//! from the configuration (files read, nothing contacted yet).

use berth_auth::external::GroupMapping;
use berth_auth::ldap::{LdapDirectory, LdapSettings};
use berth_auth::oidc::{OidcProvider, OidcSettings};
use berth_config::{LdapConfig, OidcProvider as OidcConfig};

/// The LDAP directory `config` describes.
pub fn ldap_directory(config: &LdapConfig) -> Result<LdapDirectory, String> {
    let ca_pem = config
        .cafile
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| format!("auth.berth.ldap.cafile: reading {}: {e}", path.display()))
        })
        .transpose()?;
    LdapDirectory::new(LdapSettings {
        url: config.url.clone(),
        starttls: config.starttls,
        ca_pem,
        bind_dn: config.binddn.clone(),
        bind_password: config.bindpassword.clone(),
        user_base: config.userbase.clone(),
        user_filter: config.userfilter.clone(),
        login_attribute: config.loginattribute.clone(),
        email_attribute: config.emailattribute.clone(),
        display_name_attribute: config.displaynameattribute.clone(),
        group_base: config.groupbase.clone(),
        group_filter: config.groupfilter.clone(),
        group_member_attribute: config.groupmemberattribute.clone(),
        group_member_is_login: config.groupmemberislogin,
        group_name_attribute: config.groupnameattribute.clone(),
        mapping: GroupMapping {
            teams: config.teams.clone(),
            by_name: config.teamsbyname,
            admin_group: config.admingroup.clone(),
        },
        timeout: config.timeout,
    })
    .map_err(|e| format!("auth.berth.ldap: {e}"))
}

/// The OpenID providers `configs` describe (by name).
pub fn oidc_providers<'a>(
    configs: impl IntoIterator<Item = (&'a String, &'a OidcConfig)>,
) -> Result<Vec<OidcProvider>, String> {
    configs
        .into_iter()
        .map(|(name, config)| {
            let ca_pem = config
                .cafile
                .as_ref()
                .map(|path| {
                    std::fs::read(path).map_err(|e| {
                        format!(
                            "auth.berth.oidc.{name}.cafile: reading {}: {e}",
                            path.display()
                        )
                    })
                })
                .transpose()?;
            let scopes = if config.scopes.is_empty() {
                vec!["profile".to_string(), "email".to_string()]
            } else {
                config.scopes.clone()
            };
            OidcProvider::new(OidcSettings {
                name: name.clone(),
                title: config.title.clone().unwrap_or_else(|| name.clone()),
                issuer: config.issuer.clone(),
                client_id: config.clientid.clone(),
                client_secret: config.clientsecret.clone(),
                scopes,
                username_claim: config.usernameclaim.clone(),
                email_claim: config.emailclaim.clone(),
                display_name_claim: config.displaynameclaim.clone(),
                groups_claim: config.groupsclaim.clone(),
                mapping: GroupMapping {
                    teams: config.teams.clone(),
                    by_name: config.teamsbyname,
                    admin_group: config.admingroup.clone(),
                },
                ca_pem,
                timeout: config.timeout,
            })
            .map_err(|e| format!("auth.berth.oidc.{name}: {e}"))
        })
        .collect()
}
