//! `auth.berth.ldap` and `auth.berth.oidc`: where directory and single sign-on users come
//! from, and how their groups become berth teams. They are sign-in methods of berth's own
//! mode: their users get berth accounts, teams and tokens.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::schema::{Problems, join, section};
use crate::values;

section! {
    /// An LDAP directory (OpenLDAP, Active Directory, FreeIPA) whose users sign in with their
    /// directory password.
    #[derive(Clone, PartialEq, Eq)]
    pub struct LdapConfig {
        url: String, "the directory's URL: ldaps://host[:port], or ldap://host[:port] upgraded with StartTLS (required)";
        /// Only for a directory on the same host or a trusted network.
        starttls: bool = true, "upgrade ldap:// connections with StartTLS; false sends passwords in clear text";
        cafile: Option<PathBuf>, "PEM file of the CA certificates that sign the directory's certificate; unset uses the system's",
            read = values::non_empty_path;
        binddn: Option<String>, "DN that berth binds as to search for users and groups; unset searches anonymously",
            read = values::non_empty;
        bindpassword: Option<String>, "password of binddn", read = values::non_empty, secret;
        userbase: String, "where users are searched for (required), e.g. ou=people,dc=example,dc=com";
        userfilter: String = "(objectClass=person)".to_owned(),
            "which entries under userbase are users; the login attribute's match is added to it";
        loginattribute: String = "uid".to_owned(), "attribute holding the user name (sAMAccountName on Active Directory)";
        emailattribute: String = "mail".to_owned(), "attribute holding the email address";
        displaynameattribute: String = "cn".to_owned(), "attribute holding the display name";
        groupbase: Option<String>, "where groups are searched for; unset: groups give no teams",
            read = values::non_empty;
        groupfilter: String = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))".to_owned(),
            "which entries under groupbase are groups; the member attribute's match is added to it";
        groupmemberattribute: String = "member".to_owned(),
            "attribute of a group naming its members (member, uniqueMember, memberUid)";
        groupmemberislogin: bool, "the member attribute holds user names (memberUid) rather than DNs";
        groupnameattribute: String = "cn".to_owned(), "attribute holding a group's name";
        teams: BTreeMap<String, String>, "group name to berth team (created when missing)";
        teamsbyname: bool, "a group named like an existing berth team gives that team";
        admingroup: Option<String>, "members of this group are berth administrators, others are not; unset: the directory does not decide",
            read = values::non_empty;
        timeout: Duration = Duration::from_secs(5), "how long berth waits for the directory before answering 503";
    }
    validate = LdapConfig::validate;
}

impl LdapConfig {
    fn validate(&self, at: &str, problems: &mut Problems) {
        let mut problem = |key: &str, message: String| problems.add(join(at, key), message);
        let lower = self.url.to_ascii_lowercase();
        if self.url.is_empty() {
            problem(
                "url",
                "required with auth.berth.ldap: the directory's URL".into(),
            );
        } else if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://"))
            || self.url.contains(char::is_whitespace)
        {
            problem(
                "url",
                format!(
                    "invalid URL {:?}: expected ldap://host[:port] or ldaps://host[:port]",
                    self.url
                ),
            );
        }
        if self.binddn.is_some() != self.bindpassword.is_some() {
            problem("bindpassword", "binddn and bindpassword go together".into());
        }
        if self.userbase.trim().is_empty() {
            problem(
                "userbase",
                "required with auth.berth.ldap: where users are searched for".into(),
            );
        }
        for (key, filter) in [
            ("userfilter", &self.userfilter),
            ("groupfilter", &self.groupfilter),
        ] {
            if let Err(why) = check_filter(filter) {
                problem(key, format!("invalid filter {filter:?}: {why}"));
            }
        }
        for (key, name) in [
            ("loginattribute", &self.loginattribute),
            ("emailattribute", &self.emailattribute),
            ("displaynameattribute", &self.displaynameattribute),
            ("groupmemberattribute", &self.groupmemberattribute),
            ("groupnameattribute", &self.groupnameattribute),
        ] {
            if !valid_attribute(name) {
                problem(
                    key,
                    format!(
                        "invalid attribute name {name:?}: letters, digits and -, starting with a letter"
                    ),
                );
            }
        }
        if self.timeout.is_zero() {
            problem("timeout", "must be more than 0s".into());
        }
    }
}

/// An attribute description as RFC 4512 allows it (the "descr" form).
fn valid_attribute(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A filter written by the operator: parenthesized, balanced, on one line. (User input never
/// goes into it unescaped; berth adds its own term.)
fn check_filter(filter: &str) -> Result<(), &'static str> {
    if !filter.starts_with('(') || !filter.ends_with(')') {
        return Err("a filter is enclosed in parentheses, e.g. (objectClass=person)");
    }
    if filter.chars().any(char::is_control) {
        return Err("control characters");
    }
    let mut depth = 0i32;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced parentheses");
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses");
    }
    Ok(())
}

section! {
    /// An OpenID Connect provider (Keycloak, Dex, Okta, Entra ID, Google) that users sign in
    /// through, named by its key under `auth.berth.oidc` (the name is in its callback URL:
    /// `<public URL>/sign-in/oidc/<name>/callback`).
    #[derive(Clone, PartialEq, Eq)]
    pub struct OidcProvider {
        title: Option<String>, "what the sign-in button says: \"Sign in with <title>\"; unset: the provider's name",
            read = values::non_empty;
        issuer: String, "the provider's issuer URL, where /.well-known/openid-configuration is (required; https, or http on this host only)";
        clientid: String, "berth's client id at the provider (required)";
        clientsecret: Option<String>, "berth's client secret; unset for a public client (PKCE only)",
            read = values::non_empty, secret;
        scopes: Vec<String>, "scopes asked for besides openid, e.g. [profile, email, groups]; unset: profile and email";
        usernameclaim: String = "preferred_username".to_owned(), "ID token claim that is the berth user name";
        emailclaim: String = "email".to_owned(), "ID token claim holding the email address";
        displaynameclaim: String = "name".to_owned(), "ID token claim holding the display name";
        groupsclaim: Option<String>, "ID token claim holding the user's groups (a list of names); unset: groups give no teams",
            read = values::non_empty;
        teams: BTreeMap<String, String>, "group name to berth team (created when missing)";
        teamsbyname: bool, "a group named like an existing berth team gives that team";
        admingroup: Option<String>, "members of this group are berth administrators, others are not; unset: the provider does not decide",
            read = values::non_empty;
        cafile: Option<PathBuf>, "PEM file of the CA certificates that sign the provider's certificate; unset uses the system's",
            read = values::non_empty_path;
        timeout: Duration = Duration::from_secs(10), "how long berth waits for the provider before answering 503";
    }
    validate = OidcProvider::validate;
}

impl OidcProvider {
    fn validate(&self, at: &str, problems: &mut Problems) {
        let mut problem = |key: &str, message: String| problems.add(join(at, key), message);
        match self.issuer.split_once("://") {
            _ if self.issuer.is_empty() => {
                problem("issuer", "required: the provider's issuer URL".into())
            }
            Some(("https", rest)) if !rest.is_empty() => {}
            Some(("http", rest)) if loopback(rest) => {}
            _ => problem(
                "issuer",
                format!(
                    "invalid issuer {:?}: an https:// URL (http:// only for a provider on this host)",
                    self.issuer
                ),
            ),
        }
        if self.clientid.is_empty() {
            problem(
                "clientid",
                "required: berth's client id at the provider".into(),
            );
        }
        for claim in [
            &self.usernameclaim,
            &self.emailclaim,
            &self.displaynameclaim,
        ] {
            if claim.is_empty() {
                problem("usernameclaim", "claim names must not be empty".into());
            }
        }
        if self.timeout.is_zero() {
            problem("timeout", "must be more than 0s".into());
        }
    }
}

fn loopback(after_scheme: &str) -> bool {
    let host = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A provider's name is in URLs: letters, digits, `-` and `_`.
pub(crate) fn valid_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_must_be_balanced_and_parenthesized() {
        assert!(check_filter("(objectClass=person)").is_ok());
        assert!(check_filter("(&(a=b)(|(c=d)(e=f)))").is_ok());
        for bad in ["objectClass=person", "(a=b))(", "((a=b)", "(a=b)\n"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_issuers_only_on_this_host() {
        assert!(loopback("127.0.0.1:4000/realms/x"));
        assert!(loopback("localhost"));
        assert!(!loopback("idp.example.com/"));
        assert!(!loopback("127.0.0.1.evil.example/"));
    }
}
