//! `notifications`: registry:2's event notifications, each endpoint as registry:2 writes it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::headers::{check_headers, show_headers};
use crate::schema::{Problems, ignored, join, parsed_value, section};
use crate::values::EndpointUrl;

section! {
    #[derive(Clone, PartialEq)]
    pub struct NotificationsConfig {
        endpoints: Vec<NotificationEndpoint>,
            "where events are sent, in registry:2's envelope (berth's own webhooks: webhooks)";
        events: NotificationEvents, "what events say";
    }
    validate = NotificationsConfig::validate;
}

impl NotificationsConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let name_path = format!("{path}.endpoints[{i}].name");
            if endpoint.name.is_empty() {
                problems.add(name_path, "required: a unique name for the endpoint");
            } else if let Err(why) = check_endpoint_name(&endpoint.name) {
                problems.add(name_path, why);
            } else if let Some(first) = seen.insert(&endpoint.name, i) {
                problems.add(
                    name_path,
                    format!(
                        "{:?} is also the name of {path}.endpoints[{first}]; names must be unique",
                        endpoint.name
                    ),
                );
            }
        }
    }
}

section! {
    /// registry:2's `notifications.events`.
    #[derive(Clone, PartialEq, Eq)]
    pub struct NotificationEvents {}
    registry2 = [
        ignored(
            "includereferences",
            "berth's events do not list a manifest's references (its config and layers); a receiver that needs them fetches the manifest from the event's target.url",
        ),
    ];
}

section! {
    /// One of registry:2's `notifications.endpoints`. Its timeout, threshold and backoff
    /// default to registry:2's.
    #[derive(Clone, PartialEq)]
    pub struct NotificationEndpoint {
        /// Validated as berth's webhook names are: endpoints and webhooks share one namespace.
        name: String,
            "the endpoint's name (required): 1 to 64 of a-z, 0-9, '.', '_', '-', unique among endpoints and webhooks";
        disabled: bool, "send this endpoint nothing";
        /// `Some` in every configuration that loaded: validation requires it.
        url: Option<EndpointUrl>, "the URL events are POSTed to (required)";
        headers: BTreeMap<String, Vec<String>>,
            "headers added to each request, each name with a list of values",
            show = |headers, _| show_headers(headers), debug = show_headers;
        timeout: Duration = Duration::from_secs(1), "how long one request may take";
        /// registry:2's breaker: consecutive failures before the endpoint is backed off.
        threshold: u32 = 10, "how many failures in a row before berth backs off";
        backoff: Duration = Duration::from_secs(1), "how long berth backs off before retrying";
        ignoredmediatypes: Vec<String>,
            "events about content of these media types are not sent";
        ignore: NotificationIgnore, "events not sent, by media type or action";
    }
    validate = NotificationEndpoint::validate;
}

impl NotificationEndpoint {
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.url.is_none() {
            problems.add(join(path, "url"), "required: the URL events are sent to");
        }
        check_headers(&join(path, "headers"), &self.headers, problems);
        for (key, value) in [("timeout", self.timeout), ("backoff", self.backoff)] {
            if value.is_zero() {
                problems.add(join(path, key), "must be greater than 0");
            }
        }
        if self.threshold == 0 {
            problems.add(join(path, "threshold"), "must be at least 1");
        }
    }
}

section! {
    /// registry:2's `ignore` of an endpoint.
    #[derive(Clone, PartialEq)]
    pub struct NotificationIgnore {
        mediatypes: Vec<String>, "events about content of these media types are not sent";
        actions: Vec<NotificationAction>,
            "events of these actions are not sent: push, pull, delete or mount";
    }
}

/// An action of registry:2's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotificationAction {
    Push,
    Pull,
    Delete,
    Mount,
}

impl NotificationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationAction::Push => "push",
            NotificationAction::Pull => "pull",
            NotificationAction::Delete => "delete",
            NotificationAction::Mount => "mount",
        }
    }
}

impl FromStr for NotificationAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "push" => Ok(NotificationAction::Push),
            "pull" => Ok(NotificationAction::Pull),
            "delete" => Ok(NotificationAction::Delete),
            "mount" => Ok(NotificationAction::Mount),
            _ => Err(format!(
                "invalid action {s:?}: expected push, pull, delete or mount"
            )),
        }
    }
}

impl fmt::Display for NotificationAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

parsed_value!(NotificationAction, "an action: push, pull, delete or mount");

/// The longest endpoint name, as berth's webhook names.
const MAX_NAME_LENGTH: usize = 64;

/// A notification endpoint's or webhook's name: 1 to 64 of `[a-z0-9._-]`, starting with a
/// letter or digit (it names the endpoint in metrics, the API and the delivery log).
pub(crate) fn check_endpoint_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: expected 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}
