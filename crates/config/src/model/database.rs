//! `database`: the metadata database (berth's own section).

use std::time::Duration;

use crate::schema::{Problems, join, section};
use crate::values;

section! {
    /// The metadata database (berth's own section).
    #[derive(Clone, PartialEq)]
    pub struct DatabaseConfig {
        /// A `sqlite:` or `postgres://` (`postgresql://`) URL; unset means a SQLite file in
        /// the storage root directory. It may hold a password: log
        /// [`Config::redacted_database_url`](crate::Config::redacted_database_url) instead.
        url: Option<String>,
            "metadata database, a sqlite: or postgres:// URL; unset means berth.db in storage.filesystem.rootdirectory",
            show = |url, config| match url {
                Some(_) => config.redacted_database_url(),
                None => format!("(unset; using {})", config.redacted_database_url()),
            },
            debug = |url| format!("{:?}", url.as_deref().map(values::redact_url));
        maxconnections: u32 = 16, "PostgreSQL connection pool size (ignored for SQLite)";
        connecttimeout: Duration = Duration::from_secs(5),
            "how long a request waits for a database connection before it is answered 503";
    }
    validate = DatabaseConfig::validate;
}

impl DatabaseConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if let Some(url) = &self.url
            && let Err(why) = check_database_url(url)
        {
            problems.add(join(path, "url"), why);
        }
        if self.maxconnections == 0 {
            problems.add(
                join(path, "maxconnections"),
                "must be at least 1 (it is the PostgreSQL connection pool's size)",
            );
        }
        if self.connecttimeout.is_zero() {
            problems.add(
                join(path, "connecttimeout"),
                "must be greater than 0 (it is how long a request waits for a database connection)",
            );
        }
    }
}

/// A URL berth can open. Messages show it redacted: it may hold a password.
fn check_database_url(url: &str) -> Result<(), String> {
    let shown = values::redact_url(url);
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(()),
        Some("postgres" | "postgresql") => {
            let invalid = |why: &str| {
                format!(
                    "invalid PostgreSQL URL {shown:?}: {why}; expected e.g. \"postgres://berth:PASSWORD@db.example.com:5432/berth\""
                )
            };
            // Parsed as the driver will parse it; url's own messages quote nothing.
            let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
            if parsed.cannot_be_a_base() {
                return Err(invalid("missing \"//\" after the scheme"));
            }
            if parsed.fragment().is_some() {
                return Err(invalid("must not have a fragment (#)"));
            }
            Ok(())
        }
        _ => Err(format!(
            "invalid database URL {shown:?}: expected a sqlite: or postgres:// URL, e.g. \"sqlite:///var/lib/berth/berth.db\" or \"postgres://berth:PASSWORD@db.example.com:5432/berth\""
        )),
    }
}
