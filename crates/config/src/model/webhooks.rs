//! `webhooks`: berth's own webhook endpoints, by name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use berth_oci::Pattern;

use super::headers::{check_headers, show_headers};
use crate::schema::{Problems, join, parsed_value, section};
use crate::values::{self, EndpointUrl, format_duration};

section! {
    /// One of berth's webhooks (`webhooks.<name>`), field for field what the admin API takes
    /// for a webhook. Unset durations take berth's webhook defaults.
    #[derive(Clone, PartialEq)]
    pub struct WebhookConfig {
        /// `Some` in every configuration that loaded: validation requires it.
        url: Option<EndpointUrl>, "the URL events are POSTed to (required)";
        format: WebhookFormat,
            "how events are written: cloudevents (CloudEvents 1.0 JSON), distribution (registry:2's envelope) or slack";
        /// Checked for their shape here; which kinds exist is berth-webhooks' to say.
        events: Vec<String>,
            "event kinds sent (manifest.pushed, tag.deleted, ..., or * for all, pulls included); empty: every change, no pulls";
        repositories: Vec<Pattern>,
            "repositories whose events are sent, as patterns (team/**, library/*); empty: all";
        headers: BTreeMap<String, Vec<String>>,
            "headers added to each request, each name with a list of values",
            show = |headers, _| show_headers(headers), debug = show_headers;
        /// Standard Webhooks signing key: `whsec_<base64>`, or any text of 16 characters or
        /// more (checked by berth-webhooks).
        secret: Option<String>,
            "key that signs each delivery (Standard Webhooks: whsec_<base64>, or text of 16 characters or more)",
            secret, read = values::non_empty;
        timeout: Option<Duration>, "how long one request may take; unset: 5s";
        backoff: Option<Duration>,
            "first wait after a failed delivery, doubling after each failure; unset: 1s";
        maxbackoff: Option<Duration>, "longest wait between attempts; unset: 5m";
        maxage: Option<Duration>,
            "how long an event is retried before it is given up as a dead letter; unset: 72h";
        ignoredmediatypes: Vec<String>,
            "events about content of these media types are not sent";
        disabled: bool, "send this webhook nothing";
    }
    validate = WebhookConfig::validate;
}

impl WebhookConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.url.is_none() {
            problems.add(join(path, "url"), "required: the URL events are sent to");
        }
        for (i, event) in self.events.iter().enumerate() {
            if let Err(why) = check_event_name(event) {
                problems.add(format!("{path}.events[{i}]"), why);
            }
        }
        check_headers(&join(path, "headers"), &self.headers, problems);
        let durations = [
            ("timeout", self.timeout),
            ("backoff", self.backoff),
            ("maxbackoff", self.maxbackoff),
            ("maxage", self.maxage),
        ];
        for (key, value) in durations {
            if value.is_some_and(|d| d.is_zero()) {
                problems.add(join(path, key), "must be greater than 0");
            }
        }
        if let (Some(backoff), Some(max)) = (self.backoff, self.maxbackoff)
            && max < backoff
        {
            problems.add(
                join(path, "maxbackoff"),
                format!(
                    "{} is shorter than backoff ({}); the longest wait cannot be shorter than the first",
                    format_duration(max),
                    format_duration(backoff)
                ),
            );
        }
    }
}

/// An event kind's shape: `*`, or lowercase words joined by dots (`manifest.pushed`).
fn check_event_name(event: &str) -> Result<(), String> {
    let valid = event == "*"
        || (event.contains('.')
            && event
                .split('.')
                .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase())));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid event {event:?}: expected an event kind such as manifest.pushed or tag.deleted, or * for all"
        ))
    }
}

/// How a webhook writes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// CloudEvents 1.0, structured JSON.
    #[default]
    CloudEvents,
    /// registry:2's notification envelope.
    Distribution,
    /// A Slack-compatible incoming-webhook message.
    Slack,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::CloudEvents => "cloudevents",
            WebhookFormat::Distribution => "distribution",
            WebhookFormat::Slack => "slack",
        }
    }
}

impl FromStr for WebhookFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cloudevents" => Ok(WebhookFormat::CloudEvents),
            "distribution" => Ok(WebhookFormat::Distribution),
            "slack" => Ok(WebhookFormat::Slack),
            _ => Err(format!(
                "invalid format {s:?}: expected cloudevents, distribution or slack"
            )),
        }
    }
}

impl fmt::Display for WebhookFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(WebhookFormat, "a webhook format");
