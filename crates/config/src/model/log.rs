//! `log`: what berth logs and how.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::schema::{ignored, parsed_value, section};

section! {
    #[derive(Clone, PartialEq)]
    pub struct LogConfig {
        level: LogLevel, "least severe level logged: error, warn, info, debug or trace";
        formatter: LogFormat, "log line format: text or json";
        /// registry:2's `log.fields`.
        fields: BTreeMap<String, String>, "static fields added to every log line";
        accesslog: AccessLogConfig, "the one-line-per-request access log";
    }
    registry2 = [
        ignored("hooks", "berth has no log hooks; collect its log output instead"),
        ignored("reportcaller", "berth's log lines do not record the calling function"),
    ];
}

section! {
    #[derive(Clone, PartialEq)]
    pub struct AccessLogConfig {
        disabled: bool, "turns off the one-line-per-request access log";
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    /// Case-insensitive, and "warning" is accepted, as registry:2 (logrus) does.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "invalid log level {s:?}: expected error, warn, info, debug or trace"
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(LogLevel, "a log level");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            "logstash" => Err("the logstash formatter is not supported; use json".into()),
            _ => Err(format!(
                "invalid log formatter {s:?}: expected text or json"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(LogFormat, "a log formatter");
