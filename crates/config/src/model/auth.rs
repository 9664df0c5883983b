//! `auth`: how clients authenticate (registry:2's `auth`, with berth's own `berth` mode).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::directory::{LdapConfig, OidcProvider, valid_provider_name};
use crate::schema::{Problems, choice, join, parsed_value, section, unsupported};
use crate::values::{self, PublicUrl, format_duration};

choice! {
    /// How clients authenticate (registry:2's `auth`, with berth's own `berth` mode).
    ///
    /// Written as registry:2 writes it: a mapping whose only key names the mode and holds its
    /// settings (`auth: {htpasswd: {realm: ..., path: ...}}`), or just the mode's name
    /// (`auth: none`), which is what `REGISTRY_AUTH=htpasswd` gives.
    // One value, read once at startup: its size does not matter.
    #[allow(clippy::large_enum_variant)]
    #[derive(Clone, PartialEq, Eq)]
    pub enum AuthConfig {
        /// Must be asked for explicitly.
        None = "none", "no authentication: anyone who can reach berth can push, pull and delete";
        /// Basic auth against an htpasswd file (bcrypt entries); every authenticated user may
        /// do everything.
        Htpasswd(HtpasswdAuth) = "htpasswd",
            "registry:2's htpasswd mode: Basic authentication against an htpasswd file";
        /// berth's own identity store and Docker token service. The default when `auth` is
        /// absent.
        Berth(BerthAuth) = "berth", "berth's own users and Docker token service (the default)";
    }
    default = AuthConfig::Berth(BerthAuth::default());
    registry2 = [
        unsupported(
            "token",
            "berth is its own token server: use auth.berth, or point registry:2 at berth's /token",
        ),
        unsupported("silly", "a development-only mode; use auth: none"),
    ];
}

section! {
    /// registry:2's `auth.htpasswd`. Both settings are required; an empty value means "not
    /// given" and is rejected by validation, which names the missing key.
    #[derive(Clone, PartialEq, Eq)]
    pub struct HtpasswdAuth {
        realm: String, "realm named in Basic authentication challenges (required)";
        /// Whether it exists is checked when the server starts, since it may be mounted after
        /// the configuration is checked.
        path: PathBuf,
            "htpasswd file of users and their bcrypt password hashes (required); read when berth starts";
    }
    validate = HtpasswdAuth::validate;
}

impl HtpasswdAuth {
    fn validate(&self, at: &str, problems: &mut Problems) {
        let mut problem = |key: &str, message: String| problems.add(join(at, key), message);
        if self.realm.is_empty() {
            problem(
                "realm",
                "required with auth: htpasswd: the realm named in Basic authentication challenges"
                    .into(),
            );
        } else if let Err(why) = check_challenge_text(&self.realm) {
            problem("realm", format!("invalid realm {:?}: {why}", self.realm));
        }
        if self.path.as_os_str().is_empty() {
            problem(
                "path",
                "required with auth: htpasswd: the htpasswd file of users and password hashes"
                    .into(),
            );
        }
    }
}

section! {
    /// berth's own identity store and Docker token service (`auth.berth`).
    #[derive(Clone, PartialEq, Eq)]
    pub struct BerthAuth {
        /// The token audience, and `service` in challenges.
        service: String = "berth".to_owned(),
            "service name in challenges and the audience of issued tokens";
        issuer: String = "berth".to_owned(), "issuer (iss) of issued tokens";
        /// `None` means "<the request's public base URL>/token".
        realm: Option<PublicUrl>,
            "token endpoint URL advertised in challenges; unset means /token under each request's public base URL",
            show = |realm, _| {
                realm.as_ref().map_or_else(|| "(from each request)".to_owned(), |r| r.to_string())
            };
        tokenexpiry: Duration = Duration::from_secs(5 * 60),
            "lifetime of issued registry tokens, from 30s to 24h";
        /// docker login's identity tokens.
        refreshtokenexpiry: Duration = Duration::from_secs(720 * 3600),
            "lifetime of refresh tokens (docker login's identity tokens), from 1h to 8760h";
        /// Signs tokens, with `certificate`; `None` means berth generates one and keeps it in
        /// its database. An empty value means unset.
        key: Option<PathBuf>,
            "PEM private key (EC P-256 or RSA) that signs tokens, with certificate; unset means berth generates one and keeps it in its database",
            read = values::non_empty_path, show = generated;
        /// Published for registry:2's `rootcertbundle`. Both or neither. An empty value means
        /// unset.
        certificate: Option<PathBuf>,
            "PEM certificate of key, for registry:2's auth.token.rootcertbundle; required with key",
            read = values::non_empty_path, show = generated;
        /// Users it covers sign in to the dashboard with a second factor (enrolling right after
        /// the password if they have none) and use access tokens, not their password, with
        /// podman, docker, skopeo and the admin API.
        requiremfa: RequireMfa,
            "who must sign in with a second factor (an authenticator app or a passkey): none, admins or all; they use access tokens, not their password, with podman and docker";
        /// The public URL (`http.host`) names the WebAuthn relying party: its host name is
        /// the relying party id and its origin the only one accepted.
        passkeys: PasskeysMode,
            "passkeys (WebAuthn) in the dashboard: auto (on when http.host is https, or http on localhost), on (berth refuses to start without such an http.host) or off";
        /// Directory users sign in with their directory password (dashboard, podman, docker).
        ldap: Option<LdapConfig>, "an LDAP directory whose users sign in with their directory password";
        /// Named providers: `auth.berth.oidc.<name>.issuer`.
        oidc: BTreeMap<String, OidcProvider>, "OpenID Connect providers offered as \"Sign in with ...\" on the dashboard";
        /// Zero keeps them forever.
        auditretention: Duration = Duration::from_secs(90 * 24 * 3600),
            "how long audit events are kept (default 2160h, 90 days); 0 keeps them forever",
            show = |retention, _| {
                if retention.is_zero() {
                    "forever".to_owned()
                } else {
                    format_duration(*retention)
                }
            };
    }
    validate = BerthAuth::validate;
}

/// How `explain` shows the signing key and certificate.
fn generated(path: &Option<PathBuf>, _: &crate::Config) -> String {
    path.as_ref().map_or_else(
        || "(unset; generated by berth)".to_owned(),
        |p| p.display().to_string(),
    )
}

const MIN_TOKEN_EXPIRY: Duration = Duration::from_secs(30);
const MAX_TOKEN_EXPIRY: Duration = Duration::from_secs(24 * 3600);
const MIN_REFRESH_TOKEN_EXPIRY: Duration = Duration::from_secs(3600);
const MAX_REFRESH_TOKEN_EXPIRY: Duration = Duration::from_secs(8760 * 3600);

impl BerthAuth {
    fn validate(&self, at: &str, problems: &mut Problems) {
        for name in self.oidc.keys() {
            if !valid_provider_name(name) {
                problems.add(
                    join(at, "oidc"),
                    format!("invalid provider name {name:?}: 1 to 64 letters, digits, - and _ (it is in the callback URL)"),
                );
            }
        }
        let mut problem = |path: &str, message: String| problems.add(path, message);
        let path = |key: &str| join(at, key);
        for (key, value) in [("service", &self.service), ("issuer", &self.issuer)] {
            if value.is_empty() {
                problem(&path(key), "must not be empty".into());
            } else if let Err(why) = check_challenge_text(value) {
                problem(&path(key), format!("invalid {key} {value:?}: {why}"));
            }
        }
        let bounds = [
            (
                "tokenexpiry",
                self.tokenexpiry,
                MIN_TOKEN_EXPIRY,
                MAX_TOKEN_EXPIRY,
                "registry tokens",
            ),
            (
                "refreshtokenexpiry",
                self.refreshtokenexpiry,
                MIN_REFRESH_TOKEN_EXPIRY,
                MAX_REFRESH_TOKEN_EXPIRY,
                "refresh tokens",
            ),
        ];
        for (key, value, min, max, what) in bounds {
            if !(min..=max).contains(&value) {
                problem(
                    &path(key),
                    format!(
                        "{} is out of range: {what} live from {} to {}",
                        format_duration(value),
                        format_duration(min),
                        format_duration(max)
                    ),
                );
            }
        }
        match (&self.key, &self.certificate) {
            (Some(_), None) => problem(
                &path("certificate"),
                "required when auth.berth.key is set: the PEM certificate of the signing key"
                    .into(),
            ),
            (None, Some(_)) => problem(
                &path("key"),
                "required when auth.berth.certificate is set: the PEM private key of the certificate"
                    .into(),
            ),
            _ => {}
        }
    }
}

/// Text that is quoted in a `WWW-Authenticate` challenge (`realm="..."`, `service="..."`):
/// printable ASCII, so that it is a valid header value, without the quote that would end
/// it or the backslash that would escape the next character.
fn check_challenge_text(value: &str) -> Result<(), String> {
    if value.contains(|c: char| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    if value.contains(['"', '\\']) {
        return Err(
            "must not contain '\"' or '\\' (it is quoted in authentication challenges)".into(),
        );
    }
    if !value.is_ascii() {
        return Err("must be ASCII (it is sent in authentication challenges)".into());
    }
    Ok(())
}

/// Who must sign in with a second factor (`auth.berth.requiremfa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequireMfa {
    #[default]
    None,
    Admins,
    All,
}

impl RequireMfa {
    pub fn as_str(self) -> &'static str {
        match self {
            RequireMfa::None => "none",
            RequireMfa::Admins => "admins",
            RequireMfa::All => "all",
        }
    }
}

impl FromStr for RequireMfa {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(RequireMfa::None),
            "admins" => Ok(RequireMfa::Admins),
            "all" => Ok(RequireMfa::All),
            _ => Err(format!("invalid value {s:?}: expected none, admins or all")),
        }
    }
}

impl fmt::Display for RequireMfa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(RequireMfa, "who must use a second factor");

/// Whether the dashboard offers passkeys (`auth.berth.passkeys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasskeysMode {
    /// On when `http.host` can name the relying party, else off.
    #[default]
    Auto,
    /// On; berth refuses to start when `http.host` cannot name the relying party.
    On,
    Off,
}

impl PasskeysMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PasskeysMode::Auto => "auto",
            PasskeysMode::On => "on",
            PasskeysMode::Off => "off",
        }
    }
}

impl FromStr for PasskeysMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(PasskeysMode::Auto),
            "on" | "true" => Ok(PasskeysMode::On),
            "off" | "false" => Ok(PasskeysMode::Off),
            _ => Err(format!("invalid value {s:?}: expected auto, on or off")),
        }
    }
}

impl fmt::Display for PasskeysMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(PasskeysMode, "whether passkeys are offered");
