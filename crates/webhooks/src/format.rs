//! Events on the wire: registry:2's envelope, CloudEvents 1.0 and Slack messages.

use std::time::{Duration, UNIX_EPOCH};

use berth_meta::events::{Event, EventKind};
use serde_json::{Map, Value, json};

use crate::endpoint::Format;

/// What registry:2 (distribution 2.x, Debian's docker-registry 2.8) sends, and what its
/// receivers parse (distribution 3 changed it to `...events.v2+json`).
pub const DISTRIBUTION_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
pub const CLOUDEVENTS_MEDIA_TYPE: &str = "application/cloudevents+json";
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// This berth instance, as events name their source.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Stable for the process (registry:2's `source.instanceID`).
    pub id: String,
    /// `host:port` this instance serves on (registry:2's `source.addr`).
    pub addr: String,
    /// The public base URL (`http.host`), for URLs in events; else the request's host.
    pub public_base: Option<String>,
    pub tls: bool,
}

impl Instance {
    /// The base URL of links in an event: configured, else the host the request went to.
    fn base_url(&self, event: &Event) -> String {
        if let Some(base) = &self.public_base {
            return base.trim_end_matches('/').to_string();
        }
        let scheme = if self.tls { "https" } else { "http" };
        let host = event.origin.host.as_deref().unwrap_or(&self.addr);
        format!("{scheme}://{host}")
    }
}

/// A body ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub content_type: &'static str,
    pub body: String,
}

fn rfc3339(millis: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Renders `event` for `format`; `None` when the format has no way to say it (registry:2's
/// envelope knows push, pull, mount and delete, not tag moves or referrers).
pub fn render(format: Format, event: &Event, instance: &Instance) -> Option<Payload> {
    match format {
        // A test is an empty envelope: valid, and nothing a receiver could act on.
        Format::Distribution if event.kind == EventKind::Test => Some(Payload {
            content_type: DISTRIBUTION_MEDIA_TYPE,
            body: json!({ "events": [] }).to_string(),
        }),
        Format::Distribution => distribution_event(event, instance).map(|e| Payload {
            content_type: DISTRIBUTION_MEDIA_TYPE,
            body: json!({ "events": [e] }).to_string(),
        }),
        Format::CloudEvents => Some(Payload {
            content_type: CLOUDEVENTS_MEDIA_TYPE,
            body: cloud_event(event, instance).to_string(),
        }),
        Format::Slack => Some(Payload {
            content_type: "application/json",
            body: json!({ "text": slack_text(event) }).to_string(),
        }),
    }
}

/// The action registry:2 reports for an event kind.
fn distribution_action(kind: EventKind) -> Option<&'static str> {
    Some(match kind {
        EventKind::ManifestPushed | EventKind::BlobPushed => "push",
        EventKind::ManifestPulled | EventKind::BlobPulled => "pull",
        EventKind::BlobMounted => "mount",
        EventKind::ManifestDeleted | EventKind::BlobDeleted | EventKind::TagDeleted => "delete",
        EventKind::TagCreated
        | EventKind::TagMoved
        | EventKind::ReferrerAdded
        | EventKind::RepositoryCreated
        | EventKind::Test => return None,
    })
}

/// Whether registry:2's envelope can carry this kind of event.
pub fn distribution_can_say(kind: EventKind) -> bool {
    distribution_action(kind).is_some()
}

/// registry:2's action for a kind (`push`, `pull`, `mount`, `delete`), or "" when it has none.
pub fn distribution_action_of(kind: EventKind) -> &'static str {
    distribution_action(kind).unwrap_or_default()
}

/// One event of registry:2's envelope, field for field as distribution writes it.
fn distribution_event(event: &Event, instance: &Instance) -> Option<Value> {
    let action = distribution_action(event.kind)?;
    let mut target = Map::new();
    let base = instance.base_url(event);
    let repository = event.repository.as_str();
    let is_manifest = matches!(
        event.kind,
        EventKind::ManifestPushed | EventKind::ManifestPulled
    );
    let is_blob = matches!(
        event.kind,
        EventKind::BlobPushed | EventKind::BlobPulled | EventKind::BlobMounted
    );
    if is_manifest || is_blob {
        let media_type = if is_blob {
            BLOB_MEDIA_TYPE
        } else {
            event.media_type.as_deref().unwrap_or_default()
        };
        target.insert("mediaType".into(), media_type.into());
        target.insert("size".into(), event.size.unwrap_or(0).into());
    }
    if let Some(digest) = &event.digest {
        target.insert("digest".into(), digest.as_str().into());
    }
    if is_manifest || is_blob {
        target.insert("length".into(), event.size.unwrap_or(0).into());
    }
    target.insert("repository".into(), repository.into());
    if let Some(from) = &event.from_repository {
        target.insert("fromRepository".into(), from.as_str().into());
    }
    if let (true, Some(digest)) = (is_manifest || is_blob, &event.digest) {
        let kind = if is_manifest { "manifests" } else { "blobs" };
        target.insert(
            "url".into(),
            format!("{base}/v2/{repository}/{kind}/{digest}").into(),
        );
    }
    if let Some(tag) = &event.tag
        && event.kind != EventKind::ManifestDeleted
    {
        target.insert("tag".into(), tag.as_str().into());
    }
    let origin = &event.origin;
    let mut request = Map::new();
    for (key, value) in [
        ("id", &origin.request_id),
        ("addr", &origin.address),
        ("host", &origin.host),
        ("method", &origin.method),
        ("useragent", &origin.user_agent),
    ] {
        if let Some(value) = value {
            request.insert(key.into(), value.as_str().into());
        }
    }
    let mut actor = Map::new();
    if origin.actor != "anonymous" {
        actor.insert("name".into(), origin.actor.as_str().into());
    }
    Some(json!({
        "id": event.id,
        "timestamp": rfc3339(event.at),
        "action": action,
        "target": target,
        "request": request,
        "actor": actor,
        "source": { "addr": instance.addr, "instanceID": instance.id },
    }))
}

/// A CloudEvents 1.0 event in structured JSON mode: `dev.berth.<kind>`, the event's own
/// fields as `data`, the repository (and tag or digest) as `subject`.
fn cloud_event(event: &Event, instance: &Instance) -> Value {
    let subject = match (&event.tag, &event.digest) {
        (Some(tag), _) => format!("{}:{tag}", event.repository),
        (None, Some(digest)) => format!("{}@{digest}", event.repository),
        (None, None) => event.repository.to_string(),
    };
    let mut data = serde_json::to_value(event).expect("events serialize");
    if let Value::Object(fields) = &mut data {
        fields.remove("id");
        fields.remove("at");
        fields.remove("kind");
    }
    json!({
        "specversion": "1.0",
        "type": format!("dev.berth.{}", event.kind.as_str()),
        "source": instance.base_url(event),
        "id": event.id,
        "time": rfc3339(event.at),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    })
}

fn short(digest: &berth_oci::Digest) -> String {
    let hex = digest.hex();
    format!(
        "{}:{}",
        digest.algorithm().as_str(),
        &hex[..hex.len().min(12)]
    )
}

/// One line for people: "alice pushed team/app:v1 (sha256:0123456789ab)".
fn slack_text(event: &Event) -> String {
    let who = &event.origin.actor;
    let repo = event.repository.as_str();
    let digest = event.digest.as_ref().map(short).unwrap_or_default();
    let tag = event.tag.as_ref().map(|t| t.as_str()).unwrap_or_default();
    match event.kind {
        EventKind::ManifestPushed if !tag.is_empty() => {
            format!("{who} pushed {repo}:{tag} ({digest})")
        }
        EventKind::ManifestPushed => format!("{who} pushed {repo}@{digest}"),
        EventKind::ManifestDeleted => format!("{who} deleted {repo}@{digest}"),
        EventKind::ManifestPulled => format!("{who} pulled {repo}@{digest}"),
        EventKind::TagCreated => format!("{who} tagged {repo}:{tag} ({digest})"),
        EventKind::TagMoved => format!(
            "{who} moved {repo}:{tag} to {digest} (was {})",
            event.previous.as_ref().map(short).unwrap_or_default()
        ),
        EventKind::TagDeleted => format!("{who} deleted the tag {repo}:{tag}"),
        EventKind::BlobPushed => format!("{who} pushed a blob to {repo} ({digest})"),
        EventKind::BlobMounted => format!(
            "{who} mounted a blob into {repo} from {} ({digest})",
            event
                .from_repository
                .as_ref()
                .map(|r| r.as_str())
                .unwrap_or_default()
        ),
        EventKind::BlobDeleted => format!("{who} deleted a blob from {repo} ({digest})"),
        EventKind::BlobPulled => format!("{who} pulled a blob from {repo} ({digest})"),
        EventKind::ReferrerAdded => format!(
            "{who} added a {} to {repo}@{}",
            event.artifact_type.as_deref().unwrap_or("referrer"),
            event.subject.as_ref().map(short).unwrap_or_default()
        ),
        EventKind::RepositoryCreated => format!("{who} created the repository {repo}"),
        EventKind::Test => format!("A test event from berth, sent by {who}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_meta::events::Origin;
    use berth_oci::{Algorithm, Digest, RepositoryName, Tag};

    use super::*;

    fn instance() -> Instance {
        Instance {
            id: "instance-1".into(),
            addr: "registry.local:5000".into(),
            public_base: None,
            tls: false,
        }
    }

    fn pushed() -> Event {
        let origin = Arc::new(Origin {
            actor: "alice".into(),
            address: Some("10.0.0.7:40000".into()),
            user_agent: Some("skopeo/1.9".into()),
            request_id: Some("req-1".into()),
            method: Some("PUT".into()),
            host: Some("reg.example:5000".into()),
        });
        Event::new(
            EventKind::ManifestPushed,
            &RepositoryName::parse("team/app").unwrap(),
            &origin,
        )
        .digest(&Digest::of(Algorithm::Sha256, b"m"))
        .tag(&Tag::parse("v1").unwrap())
        .media_type("application/vnd.oci.image.manifest.v1+json")
        .size(345)
    }

    #[test]
    fn distribution_envelope_has_registry2_fields() {
        let event = pushed();
        let payload = render(Format::Distribution, &event, &instance()).unwrap();
        assert_eq!(payload.content_type, DISTRIBUTION_MEDIA_TYPE);
        let body: Value = serde_json::from_str(&payload.body).unwrap();
        let e = &body["events"][0];
        assert_eq!(e["action"], "push");
        assert_eq!(e["id"], event.id);
        let target = &e["target"];
        assert_eq!(
            target["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(target["size"], 345);
        assert_eq!(target["length"], 345);
        assert_eq!(target["repository"], "team/app");
        assert_eq!(target["tag"], "v1");
        let digest = event.digest.as_ref().unwrap();
        assert_eq!(
            target["url"],
            format!("http://reg.example:5000/v2/team/app/manifests/{digest}")
        );
        assert_eq!(e["request"]["addr"], "10.0.0.7:40000");
        assert_eq!(e["request"]["useragent"], "skopeo/1.9");
        assert_eq!(e["actor"]["name"], "alice");
        assert_eq!(e["source"]["instanceID"], "instance-1");
        assert!(
            render(
                Format::Distribution,
                &Event {
                    kind: EventKind::TagMoved,
                    ..event
                },
                &instance()
            )
            .is_none()
        );
    }

    #[test]
    fn cloudevents_carry_type_subject_and_data() {
        let event = pushed();
        let payload = render(Format::CloudEvents, &event, &instance()).unwrap();
        assert_eq!(payload.content_type, CLOUDEVENTS_MEDIA_TYPE);
        let body: Value = serde_json::from_str(&payload.body).unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["type"], "dev.berth.manifest.pushed");
        assert_eq!(body["subject"], "team/app:v1");
        assert_eq!(body["source"], "http://reg.example:5000");
        assert_eq!(body["data"]["repository"], "team/app");
        assert_eq!(body["data"]["origin"]["actor"], "alice");
        assert!(body["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn slack_messages_read_as_sentences() {
        let payload = render(Format::Slack, &pushed(), &instance()).unwrap();
        let body: Value = serde_json::from_str(&payload.body).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("alice pushed team/app:v1 (sha256:"),
            "{text}"
        );
    }
}
