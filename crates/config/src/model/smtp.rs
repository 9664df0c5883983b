//! `smtp`: the mail server berth sends password reset links through (berth's own section).

use std::fmt;
use std::str::FromStr;

use crate::schema::{Problems, join, parsed_value, section};
use crate::values;

section! {
    /// Where mail goes out. Absent: berth sends no mail, and "forgot password" is not offered.
    #[derive(Clone, PartialEq, Eq)]
    pub struct SmtpConfig {
        host: String, "the mail server's host name (required)";
        /// Unset: 587 with starttls, 465 with tls, 25 with none.
        port: Option<u32>, "the mail server's port; unset means 587 (starttls), 465 (tls) or 25 (none)";
        security: SmtpSecurity, "starttls (the default), tls (implicit TLS) or none (plain text: only on a trusted network)";
        /// Both or neither.
        user: Option<String>, "user name to authenticate with; required with password",
            read = values::non_empty;
        password: Option<String>, "password to authenticate with; required with user",
            read = values::non_empty, secret;
        from: String, "the sender of berth's mail, e.g. \"berth <registry@example.com>\" (required)";
    }
    validate = SmtpConfig::validate;
}

impl SmtpConfig {
    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        match self.port {
            Some(port) => u16::try_from(port).unwrap_or(u16::MAX),
            None => match self.security {
                SmtpSecurity::Starttls => 587,
                SmtpSecurity::Tls => 465,
                SmtpSecurity::None => 25,
            },
        }
    }

    fn validate(&self, at: &str, problems: &mut Problems) {
        let mut problem = |key: &str, message: String| problems.add(join(at, key), message);
        if self.host.trim().is_empty() {
            problem(
                "host",
                "required with smtp: the mail server's host name".into(),
            );
        } else if self.host.contains(|c: char| c.is_whitespace() || c == '/') {
            problem("host", format!("invalid host name {:?}", self.host));
        }
        if let Some(port) = self.port
            && !(1..=65535).contains(&port)
        {
            problem("port", format!("{port} is not a port (1 to 65535)"));
        }
        match (&self.user, &self.password) {
            (Some(_), None) => problem("password", "required when smtp.user is set".into()),
            (None, Some(_)) => problem("user", "required when smtp.password is set".into()),
            _ => {}
        }
        let address = self
            .from
            .rsplit_once('<')
            .map_or(self.from.as_str(), |(_, rest)| rest.trim_end_matches('>'));
        let valid = address
            .split_once('@')
            .is_some_and(|(local, domain)| !local.trim().is_empty() && !domain.trim().is_empty());
        if self.from.trim().is_empty() {
            problem(
                "from",
                "required with smtp: the sender address of berth's mail".into(),
            );
        } else if !valid || self.from.contains(['\r', '\n']) {
            problem(
                "from",
                format!(
                    "invalid sender {:?}: expected an address such as registry@example.com or \"berth <registry@example.com>\"",
                    self.from
                ),
            );
        }
    }
}

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption.
    None,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::Starttls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::None => "none",
        }
    }
}

impl FromStr for SmtpSecurity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "starttls" => Ok(SmtpSecurity::Starttls),
            "tls" => Ok(SmtpSecurity::Tls),
            "none" => Ok(SmtpSecurity::None),
            _ => Err(format!(
                "invalid value {s:?}: expected starttls, tls or none"
            )),
        }
    }
}

impl fmt::Display for SmtpSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(SmtpSecurity, "an SMTP connection security");
