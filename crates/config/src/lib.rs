//! berth's configuration.
//!
//! A YAML file shaped like the official registry's (CNCF distribution, "registry:2")
//! `config.yml` wherever the concepts match, overridden by `REGISTRY_*` (registry:2's names)
//! and `BERTH_*` (berth's own) environment variables, and validated strictly: every problem
//! names the key path and where the value came from, so an operator can fix all of them in
//! one go. registry:2 keys that mean nothing for berth are accepted with a warning; registry:2
//! features berth does not have yet are errors, because ignoring them would silently change
//! behaviour or security.

mod explain;
mod load;
mod model;
mod schema;
mod stores;
mod values;

use std::fmt;

pub use explain::explain;
pub use load::{Loaded, load};
pub use model::{
    AccessLogConfig, AuthConfig, BerthAuth, Config, DatabaseConfig, DeleteConfig, FilesystemConfig,
    HtpasswdAuth, HttpConfig, LogConfig, LogFormat, LogLevel, MaintenanceConfig, ReadOnly,
    RedirectConfig, S3Config, StorageConfig, TlsConfig, TlsVersion, UploadPurging,
};
pub use stores::{AzureConfig, GcsConfig, IpfsConfig, ScrubConfig};
pub use values::{ListenAddr, PublicUrl, parse_byte_size, percent_decode};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    /// The environment variable's name.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File => f.write_str("file"),
            Source::Env(name) => write!(f, "env {name}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key path, e.g. "http.addr"; empty for the file as a whole.
    pub path: String,
    pub source: Source,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
            match &self.source {
                Source::Default => Ok(()),
                source => write!(f, " (from {source})"),
            }
        }
    }
}

/// Every problem found, so that they can all be fixed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
