//! Signing in against an LDAP directory (`auth.berth.ldap`): berth binds with its search
//! account, finds the user by the login attribute, binds as the user with the password given,
//! and reads the user's groups. One connection per sign-in, secured with StartTLS or
//! ldaps; every step bounded by the configured timeout.
//!
//! User input reaches a filter only escaped (RFC 4515, `ldap3::ldap_escape`), and only after
//! the name passed berth's user name rules; the operator's filters are checked when the
//! configuration is.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};
use rustls::ClientConfig;

use crate::external::{ExternalUser, GroupMapping};

/// The source name of directory users (in the audit log and their identity record).
pub const SOURCE: &str = "ldap";

/// LDAP's "invalid credentials" result code.
const INVALID_CREDENTIALS: u32 = 49;

/// How to reach the directory and read it.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub url: String,
    pub starttls: bool,
    /// PEM CA certificates; `None`: the system's.
    pub ca_pem: Option<Vec<u8>>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub user_base: String,
    pub user_filter: String,
    pub login_attribute: String,
    pub email_attribute: String,
    pub display_name_attribute: String,
    pub group_base: Option<String>,
    pub group_filter: String,
    pub group_member_attribute: String,
    pub group_member_is_login: bool,
    pub group_name_attribute: String,
    pub mapping: GroupMapping,
    pub timeout: Duration,
}

/// What the directory says about a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryAnswer {
    /// The password is right: the user as the directory describes it.
    User(ExternalUser),
    WrongPassword,
    /// No entry has that login (the account is gone, or never was).
    Unknown,
}

/// The directory could not answer (down, unreachable, misconfigured). The text is for the
/// log; it never holds a password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DirectoryDown(pub String);

pub struct LdapDirectory {
    settings: LdapSettings,
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

fn down(step: &str, err: LdapError) -> DirectoryDown {
    DirectoryDown(format!("{step}: {err}"))
}

impl LdapDirectory {
    /// Checks the settings' certificates; nothing is contacted yet.
    pub fn new(settings: LdapSettings) -> Result<LdapDirectory, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &settings.ca_pem {
            Some(pem) => {
                use rustls_pki_types::pem::PemObject;
                let certificates: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
                if certificates.is_empty() {
                    return Err("the CA file holds no certificate".into());
                }
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|e| format!("a CA certificate is invalid: {e}"))?;
                }
            }
            None => {
                for certificate in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(certificate);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(LdapDirectory {
            settings,
            tls: Arc::new(tls),
        })
    }

    pub fn mapping(&self) -> &GroupMapping {
        &self.settings.mapping
    }

    /// The filter finding `login` among users: the operator's filter and the login
    /// attribute's match, the name escaped.
    fn user_filter(&self, login: &str) -> String {
        format!(
            "(&{}({}={}))",
            self.settings.user_filter,
            self.settings.login_attribute,
            ldap_escape(login)
        )
    }

    /// Binds as berth's search account, if one is configured (else searches are anonymous).
    async fn bind_service(&self, ldap: &mut ldap3::Ldap) -> Result<(), DirectoryDown> {
        let s = &self.settings;
        if let (Some(dn), Some(secret)) = (&s.bind_dn, &s.bind_password) {
            ldap.with_timeout(s.timeout)
                .simple_bind(dn, secret)
                .await
                .and_then(|r| r.success())
                .map_err(|e| down("binding as binddn", e))?;
        }
        Ok(())
    }

    /// Checks `login` and `password` against the directory and reads the user's groups.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
    ) -> Result<DirectoryAnswer, DirectoryDown> {
        // An empty password would be an unauthenticated bind, which succeeds.
        if password.is_empty() {
            return Ok(DirectoryAnswer::WrongPassword);
        }
        let s = &self.settings;
        let connection = LdapConnSettings::new()
            .set_conn_timeout(s.timeout)
            .set_starttls(s.starttls && s.url.to_ascii_lowercase().starts_with("ldap://"))
            .set_config(Arc::clone(&self.tls));
        let (driver, mut ldap) = LdapConnAsync::with_settings(connection, &s.url)
            .await
            .map_err(|e| down("connecting", e))?;
        ldap3::drive!(driver);
        let result = async {
            self.bind_service(&mut ldap).await?;
            let attributes = [
                s.login_attribute.as_str(),
                s.email_attribute.as_str(),
                s.display_name_attribute.as_str(),
            ];
            let (entries, _) = ldap
                .with_timeout(s.timeout)
                .search(
                    &s.user_base,
                    Scope::Subtree,
                    &self.user_filter(login),
                    &attributes,
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| down("searching for the user", e))?;
            let mut entries = entries.into_iter().map(SearchEntry::construct);
            let entry = match (entries.next(), entries.next()) {
                (None, _) => return Ok(DirectoryAnswer::Unknown),
                (Some(entry), None) => entry,
                (Some(_), Some(_)) => {
                    return Err(DirectoryDown(format!(
                        "more than one entry under {} has {}={login:?}: the user filter must find one",
                        s.user_base, s.login_attribute
                    )));
                }
            };
            match ldap
                .with_timeout(s.timeout)
                .simple_bind(&entry.dn, password)
                .await
            {
                Ok(result) if result.rc == 0 => {}
                Ok(result) if result.rc == INVALID_CREDENTIALS => {
                    return Ok(DirectoryAnswer::WrongPassword);
                }
                Ok(result) => {
                    return Err(DirectoryDown(format!(
                        "binding as the user: result code {} ({})",
                        result.rc, result.text
                    )));
                }
                Err(e) => return Err(down("binding as the user", e)),
            }
            let first = |attribute: &str| {
                entry
                    .attrs
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                    .and_then(|(_, values)| values.first().cloned())
                    .filter(|v| !v.is_empty())
            };
            let directory_login = first(&s.login_attribute).unwrap_or_else(|| login.to_string());
            // Back to berth's own account to read groups the user may not see.
            self.bind_service(&mut ldap).await?;
            let groups = match &s.group_base {
                None => Vec::new(),
                Some(base) => {
                    let member = if s.group_member_is_login {
                        directory_login.as_str()
                    } else {
                        entry.dn.as_str()
                    };
                    let filter = format!(
                        "(&{}({}={}))",
                        s.group_filter,
                        s.group_member_attribute,
                        ldap_escape(member)
                    );
                    let (groups, _) = ldap
                        .with_timeout(s.timeout)
                        .search(
                            base,
                            Scope::Subtree,
                            &filter,
                            &[s.group_name_attribute.as_str()],
                        )
                        .await
                        .and_then(|r| r.success())
                        .map_err(|e| down("searching for groups", e))?;
                    groups
                        .into_iter()
                        .map(SearchEntry::construct)
                        .filter_map(|group| {
                            group
                                .attrs
                                .into_iter()
                                .find(|(name, _)| name.eq_ignore_ascii_case(&s.group_name_attribute))
                                .and_then(|(_, values)| values.into_iter().next())
                        })
                        .collect()
                }
            };
            Ok(DirectoryAnswer::User(ExternalUser {
                source: SOURCE.into(),
                subject: directory_login.clone(),
                login: directory_login,
                email: first(&s.email_attribute),
                display_name: first(&s.display_name_attribute),
                groups,
            }))
        }
        .await;
        let _ = ldap.unbind().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> LdapDirectory {
        LdapDirectory::new(LdapSettings {
            url: "ldap://127.0.0.1:1".into(),
            starttls: false,
            ca_pem: None,
            bind_dn: None,
            bind_password: None,
            user_base: "ou=people,dc=example,dc=com".into(),
            user_filter: "(objectClass=person)".into(),
            login_attribute: "uid".into(),
            email_attribute: "mail".into(),
            display_name_attribute: "cn".into(),
            group_base: None,
            group_filter: "(objectClass=groupOfNames)".into(),
            group_member_attribute: "member".into(),
            group_member_is_login: false,
            group_name_attribute: "cn".into(),
            mapping: GroupMapping::default(),
            timeout: Duration::from_millis(200),
        })
        .unwrap()
    }

    #[test]
    fn filters_escape_the_user_name_as_rfc_4515_says() {
        let directory = directory();
        assert_eq!(
            directory.user_filter("alice"),
            "(&(objectClass=person)(uid=alice))"
        );
        assert_eq!(
            directory.user_filter("*)(uid=*"),
            r"(&(objectClass=person)(uid=\2a\29\28uid=\2a))"
        );
        assert_eq!(
            directory.user_filter("a\\b\0"),
            r"(&(objectClass=person)(uid=a\5cb\00))"
        );
    }

    #[tokio::test]
    async fn a_directory_that_does_not_answer_is_down() {
        let answer = directory().sign_in("alice", "secret").await;
        assert!(answer.is_err(), "{answer:?}");
    }
}
