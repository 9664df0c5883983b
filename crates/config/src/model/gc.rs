//! `gc`: online garbage collection (berth's own section; registry:2 collects only offline).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::schema::{Problems, join, parsed_value, section};
use crate::values::{format_duration, parse_duration};

section! {
    /// Garbage collection while berth serves. `berth gc` and the admin API run one on
    /// demand whatever `enabled` says.
    #[derive(Clone, PartialEq)]
    pub struct GcConfig {
        enabled: bool = true, "collect garbage on a schedule";
        interval: Duration = Duration::from_secs(24 * 3600), "how often a scheduled collection runs";
        window: Option<TimeWindow>,
            "a daily window (UTC) scheduled collections start in, such as 01:00-06:00; unset: any time";
        grace: Duration = Duration::from_secs(24 * 3600),
            "blobs pushed or mounted within this long are kept even if no manifest references them yet";
        untagged: UntaggedPolicy,
            "untagged manifests (no tag, no tagged index, no subject reaches them): keep, or delete after DURATION (delete after 72h)";
    }
    validate = GcConfig::validate;
}

impl GcConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.enabled && self.interval.is_zero() {
            problems.add(
                join(path, "interval"),
                "must be greater than 0 when garbage collection is enabled",
            );
        }
    }
}

/// A daily time window in UTC, `HH:MM-HH:MM` (it may wrap past midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow(pub berth_jobs::Window);

impl FromStr for TimeWindow {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(TimeWindow)
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

parsed_value!(TimeWindow, "a time window such as \"01:00-06:00\"");

/// What garbage collection does with untagged manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UntaggedPolicy {
    /// Keep them (and what they reference).
    #[default]
    Keep,
    /// Delete those older than this.
    DeleteAfter(Duration),
}

impl UntaggedPolicy {
    /// How old an untagged manifest must be to be deleted; `None` keeps them.
    pub fn age(self) -> Option<Duration> {
        match self {
            UntaggedPolicy::Keep => None,
            UntaggedPolicy::DeleteAfter(age) => Some(age),
        }
    }
}

impl FromStr for UntaggedPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words[..] {
            ["keep"] => Ok(UntaggedPolicy::Keep),
            ["delete", "after", age] => parse_duration(age).map(UntaggedPolicy::DeleteAfter),
            _ => Err(format!(
                "invalid untagged policy {text:?}: expected \"keep\" or \"delete after DURATION\" (e.g. \"delete after 72h\")"
            )),
        }
    }
}

impl fmt::Display for UntaggedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UntaggedPolicy::Keep => f.write_str("keep"),
            UntaggedPolicy::DeleteAfter(age) => write!(f, "delete after {}", format_duration(*age)),
        }
    }
}

parsed_value!(UntaggedPolicy, "\"keep\" or \"delete after DURATION\"");
