//! Webhook endpoints: where events go, which ones, in what format, how hard to try.
//!
//! An endpoint comes from the configuration (registry:2's `notifications.endpoints`, or
//! berth's own `webhooks`) or from the admin API (stored in the database as an
//! [`EndpointSpec`] in JSON). Either way it is validated into an [`Endpoint`] before use.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_meta::events::{Event, EventKind};
use berth_oci::Pattern;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

/// How an event is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CloudEvents 1.0, structured JSON (`application/cloudevents+json`).
    #[default]
    CloudEvents,
    /// registry:2's notification envelope (`application/vnd.docker.distribution.events.v2+json`).
    Distribution,
    /// A Slack-compatible incoming-webhook message (`{"text": ...}`).
    Slack,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "cloudevents" => Some(Format::CloudEvents),
            "distribution" => Some(Format::Distribution),
            "slack" => Some(Format::Slack),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudEvents => "cloudevents",
            Format::Distribution => "distribution",
            Format::Slack => "slack",
        }
    }
}

/// Where an endpoint was defined; only API endpoints can be changed through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
}

/// An endpoint as written by a person (API body, stored definition, berth's config). Every
/// field but `url` has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub url: String,
    #[serde(default)]
    pub format: Format,
    /// Event kinds (`manifest.pushed`, `tag.deleted`, ... or `*` for all, pulls included).
    /// Empty: every change, no pulls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Repository globs (`team/**`); empty: all repositories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Signs deliveries (Standard Webhooks: `whsec_<base64>` or any text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Per attempt (`5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// First wait after a failure; it doubles up to `maxbackoff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxbackoff: Option<String>,
    /// How long an event is retried before it becomes a dead letter (`72h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxage: Option<String>,
    /// Events about content of these media types are not sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignoredmediatypes: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// A validated endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub url: Url,
    pub format: Format,
    pub kinds: BTreeSet<EventKind>,
    /// Empty: every repository.
    pub repositories: Vec<Pattern>,
    pub headers: HeaderMap,
    pub secret: Option<Vec<u8>>,
    pub timeout: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub max_age: Duration,
    pub ignored_media_types: Vec<String>,
    pub enabled: bool,
    pub source: Source,
    /// The definition as written (secret included), for the API to show without the secret.
    pub spec: EndpointSpec,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(72 * 3600);
const MAX_NAME_LENGTH: usize = 64;

/// Every change, no pulls: what an endpoint gets unless it says otherwise.
pub fn default_kinds() -> BTreeSet<EventKind> {
    EventKind::ALL
        .into_iter()
        .filter(|k| !k.is_pull())
        .collect()
}

/// An invalid endpoint definition; `field` is the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    pub field: String,
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A webhook's name: 1 to 64 of `[a-z0-9._-]`, starting with a letter or digit.
pub fn valid_name(name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LENGTH
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

fn duration(field: &str, text: &Option<String>, default: Duration) -> Result<Duration, SpecError> {
    match text {
        None => Ok(default),
        Some(text) => {
            let value = humantime::parse_duration(text.trim())
                .map_err(|e| invalid(field, format!("{text:?} is not a duration: {e}")))?;
            if value.is_zero() {
                return Err(invalid(field, "must be more than zero"));
            }
            Ok(value)
        }
    }
}

/// `whsec_<base64>` is the Standard Webhooks key encoding; anything else is used as bytes.
fn secret_key(secret: &str) -> Result<Vec<u8>, SpecError> {
    if secret.len() < 16 {
        return Err(invalid("secret", "at least 16 characters"));
    }
    match secret.strip_prefix("whsec_") {
        Some(encoded) => data_encoding::BASE64
            .decode(encoded.as_bytes())
            .map_err(|_| invalid("secret", "whsec_ must be followed by base64")),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

impl EndpointSpec {
    /// Validates the definition of endpoint `name`.
    pub fn validate(&self, name: &str, source: Source) -> Result<Endpoint, SpecError> {
        valid_name(name)?;
        let url = Url::parse(self.url.trim())
            .map_err(|e| invalid("url", format!("{:?} is not a URL: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid(
                "url",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "credentials in the URL would be logged; use headers (Authorization) instead",
            ));
        }
        let kinds = if self.events.is_empty() {
            default_kinds()
        } else {
            let mut kinds = BTreeSet::new();
            for text in &self.events {
                if text == "*" {
                    kinds.extend(EventKind::ALL);
                } else {
                    kinds.insert(EventKind::parse(text).ok_or_else(|| {
                        invalid(
                            "events",
                            format!(
                                "unknown event {text:?} (known: {})",
                                EventKind::ALL.map(EventKind::as_str).join(", ")
                            ),
                        )
                    })?);
                }
            }
            kinds
        };
        let repositories = self
            .repositories
            .iter()
            .map(|p| Pattern::parse(p).map_err(|e| invalid("repositories", e.to_string())))
            .collect::<Result<_, _>>()?;
        let mut headers = HeaderMap::new();
        for (header, values) in &self.headers {
            let header = HeaderName::try_from(header.as_str())
                .map_err(|_| invalid("headers", format!("{header:?} is not a header name")))?;
            for value in values {
                let value = HeaderValue::try_from(value.as_str()).map_err(|_| {
                    invalid(
                        "headers",
                        format!("the value of {header} is not a header value"),
                    )
                })?;
                headers.append(header.clone(), value);
            }
        }
        let backoff = duration("backoff", &self.backoff, DEFAULT_BACKOFF)?;
        let max_backoff = duration("maxbackoff", &self.maxbackoff, DEFAULT_MAX_BACKOFF)?;
        if max_backoff < backoff {
            return Err(invalid("maxbackoff", "must not be shorter than backoff"));
        }
        Ok(Endpoint {
            name: name.to_string(),
            url,
            format: self.format,
            kinds,
            repositories,
            headers,
            secret: self.secret.as_deref().map(secret_key).transpose()?,
            timeout: duration("timeout", &self.timeout, DEFAULT_TIMEOUT)?,
            backoff,
            max_backoff,
            max_age: duration("maxage", &self.maxage, DEFAULT_MAX_AGE)?,
            ignored_media_types: self.ignoredmediatypes.clone(),
            enabled: !self.disabled,
            source,
            spec: self.clone(),
        })
    }
}

impl Endpoint {
    /// Whether this endpoint wants `event`.
    pub fn wants(&self, event: &Event) -> bool {
        self.enabled
            && self.kinds.contains(&event.kind)
            && (self.repositories.is_empty()
                || self
                    .repositories
                    .iter()
                    .any(|p| p.matches(event.repository.as_str())))
            && !event
                .media_type
                .as_ref()
                .is_some_and(|m| self.ignored_media_types.iter().any(|i| i == m))
    }

    /// The wait before attempt `attempts + 1`: `backoff` doubling per failure up to
    /// `max_backoff`, with up to 20% of jitter either way so that instances and endpoints
    /// recovering together do not retry in step.
    pub fn retry_delay(&self, attempts: u32, jitter: f64) -> Duration {
        let base = self
            .backoff
            .saturating_mul(1u32 << attempts.min(20))
            .min(self.max_backoff);
        base.mul_f64(1.0 + 0.2 * jitter.clamp(-1.0, 1.0))
    }

    /// The definition without its secret, for showing.
    pub fn redacted_spec(&self) -> EndpointSpec {
        EndpointSpec {
            secret: self.spec.secret.as_ref().map(|_| "(set)".to_string()),
            ..self.spec.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_meta::events::Origin;
    use berth_oci::RepositoryName;

    use super::*;

    fn spec(url: &str) -> EndpointSpec {
        EndpointSpec {
            url: url.to_string(),
            ..EndpointSpec::default()
        }
    }

    fn event(kind: EventKind, repository: &str) -> Event {
        Event::new(
            kind,
            &RepositoryName::parse(repository).unwrap(),
            &Arc::new(Origin::system("test")),
        )
    }

    #[test]
    fn defaults_are_every_change_without_pulls() {
        let endpoint = spec("http://hooks.example/x")
            .validate("ci", Source::Api)
            .unwrap();
        assert!(endpoint.wants(&event(EventKind::ManifestPushed, "a/b")));
        assert!(endpoint.wants(&event(EventKind::TagDeleted, "a")));
        assert!(!endpoint.wants(&event(EventKind::ManifestPulled, "a")));
        assert_eq!(endpoint.timeout, DEFAULT_TIMEOUT);
        assert_eq!(endpoint.max_age, DEFAULT_MAX_AGE);
    }

    #[test]
    fn filters_by_kind_repository_and_media_type() {
        let endpoint = EndpointSpec {
            events: vec!["manifest.pushed".into(), "manifest.pulled".into()],
            repositories: vec!["team/**".into()],
            ignoredmediatypes: vec!["application/octet-stream".into()],
            ..spec("https://hooks.example/x")
        }
        .validate("ci", Source::Api)
        .unwrap();
        assert!(endpoint.wants(&event(EventKind::ManifestPulled, "team/app")));
        assert!(!endpoint.wants(&event(EventKind::ManifestPushed, "other/app")));
        assert!(!endpoint.wants(&event(EventKind::TagCreated, "team/app")));
        let blob =
            event(EventKind::ManifestPushed, "team/app").media_type("application/octet-stream");
        assert!(!endpoint.wants(&blob));
        let star = EndpointSpec {
            events: vec!["*".into()],
            ..spec("http://h/x")
        }
        .validate("all", Source::Api)
        .unwrap();
        assert_eq!(star.kinds.len(), EventKind::ALL.len());
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let field = |s: EndpointSpec| s.validate("x", Source::Api).unwrap_err().field;
        assert_eq!(field(spec("ftp://h/x")), "url");
        assert_eq!(field(spec("not a url")), "url");
        assert_eq!(field(spec("http://user:pw@h/x")), "url");
        assert_eq!(
            field(EndpointSpec {
                events: vec!["manifest.eaten".into()],
                ..spec("http://h/x")
            }),
            "events"
        );
        assert_eq!(
            field(EndpointSpec {
                repositories: vec!["Team/*".into()],
                ..spec("http://h/x")
            }),
            "repositories"
        );
        assert_eq!(
            field(EndpointSpec {
                timeout: Some("soon".into()),
                ..spec("http://h/x")
            }),
            "timeout"
        );
        assert_eq!(
            field(EndpointSpec {
                secret: Some("short".into()),
                ..spec("http://h/x")
            }),
            "secret"
        );
        assert_eq!(
            field(EndpointSpec {
                headers: BTreeMap::from([("bad header".into(), vec!["v".into()])]),
                ..spec("http://h/x")
            }),
            "headers"
        );
        assert_eq!(
            spec("http://h/x")
                .validate("Bad Name", Source::Api)
                .unwrap_err()
                .field,
            "name"
        );
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_maximum() {
        let endpoint = spec("http://h/x").validate("x", Source::Api).unwrap();
        assert_eq!(endpoint.retry_delay(0, 0.0), Duration::from_secs(1));
        assert_eq!(endpoint.retry_delay(3, 0.0), Duration::from_secs(8));
        assert_eq!(endpoint.retry_delay(30, 0.0), DEFAULT_MAX_BACKOFF);
        assert_eq!(endpoint.retry_delay(1, 1.0), Duration::from_millis(2400));
        assert_eq!(endpoint.retry_delay(1, -1.0), Duration::from_millis(1600));
    }

    #[test]
    fn secrets_decode_whsec_and_are_redacted() {
        let key = data_encoding::BASE64.encode(b"0123456789abcdef0123");
        let endpoint = EndpointSpec {
            secret: Some(format!("whsec_{key}")),
            ..spec("http://h/x")
        }
        .validate("x", Source::Api)
        .unwrap();
        assert_eq!(
            endpoint.secret.as_deref(),
            Some(&b"0123456789abcdef0123"[..])
        );
        assert_eq!(endpoint.redacted_spec().secret.as_deref(), Some("(set)"));
    }
}
