//! What happened in the registry, as typed events.
//!
//! Every committed change (a manifest pushed, a tag created, moved or deleted, a blob pushed,
//! mounted or deleted, a referrer added, a repository created) is described by an [`Event`]
//! that the metadata store returns from the write that made it, and, for the webhook
//! endpoints an [`OutboxRouter`] names, records in the outbox *in the same transaction*: a
//! change that committed always has its deliveries owed, whatever happens to the process
//! afterwards. Reads (manifest and blob pulls) are events too, but are never part of a
//! transaction.
//!
//! Events of one repository are committed in order (its writes lock the repository's row), so
//! their outbox ids, and thus their delivery order per endpoint, follow commit order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use berth_oci::{Digest, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

use crate::now_millis;

/// Who caused an event and from where, as registry:2's notification envelope reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The user, `service-account:<name>`, `anonymous`, or a job (`system:gc`).
    pub actor: String,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The `Host` the request was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Origin {
    /// berth itself, doing `what` (`import`, `gc`, `retention`).
    pub fn system(what: &str) -> Origin {
        Origin {
            actor: format!("system:{what}"),
            ..Origin::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    ManifestPushed,
    ManifestDeleted,
    ManifestPulled,
    TagCreated,
    TagMoved,
    TagDeleted,
    BlobPushed,
    BlobMounted,
    BlobDeleted,
    BlobPulled,
    ReferrerAdded,
    RepositoryCreated,
    /// A webhook's "send test event": never routed, sent on request only.
    Test,
}

impl EventKind {
    /// Every kind the registry emits (not [`EventKind::Test`]).
    pub const ALL: [EventKind; 12] = [
        EventKind::ManifestPushed,
        EventKind::ManifestDeleted,
        EventKind::ManifestPulled,
        EventKind::TagCreated,
        EventKind::TagMoved,
        EventKind::TagDeleted,
        EventKind::BlobPushed,
        EventKind::BlobMounted,
        EventKind::BlobDeleted,
        EventKind::BlobPulled,
        EventKind::ReferrerAdded,
        EventKind::RepositoryCreated,
    ];

    /// The event's name in webhooks, the API and logs: `manifest.pushed`, `tag.moved`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ManifestPushed => "manifest.pushed",
            EventKind::ManifestDeleted => "manifest.deleted",
            EventKind::ManifestPulled => "manifest.pulled",
            EventKind::TagCreated => "tag.created",
            EventKind::TagMoved => "tag.moved",
            EventKind::TagDeleted => "tag.deleted",
            EventKind::BlobPushed => "blob.pushed",
            EventKind::BlobMounted => "blob.mounted",
            EventKind::BlobDeleted => "blob.deleted",
            EventKind::BlobPulled => "blob.pulled",
            EventKind::ReferrerAdded => "referrer.added",
            EventKind::RepositoryCreated => "repository.created",
            EventKind::Test => "webhook.test",
        }
    }

    /// Parses a kind's name; `webhook.test` too, though it is not among [`EventKind::ALL`].
    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .chain([EventKind::Test])
            .find(|k| k.as_str() == text)
    }

    /// Reads: many, never in a transaction, opt-in for webhooks.
    pub fn is_pull(self) -> bool {
        matches!(self, EventKind::ManifestPulled | EventKind::BlobPulled)
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventKind::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event kind {text:?}")))
    }
}

/// One thing that happened. Fields that do not apply to the kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique and stable: a redelivered event keeps its id (receivers deduplicate on it).
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: EventKind,
    pub repository: RepositoryName,
    /// The manifest or blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// What a moved tag pointed at before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A referrer's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// A mount's source repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_repository: Option<RepositoryName>,
    /// Tags a deleted manifest took with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub origin: Arc<Origin>,
}

impl Event {
    /// A new event of `kind` in `repository`, now, with a fresh id; set the fields that apply.
    pub fn new(kind: EventKind, repository: &RepositoryName, origin: &Arc<Origin>) -> Event {
        Event {
            id: next_event_id(),
            at: now_millis(),
            kind,
            repository: repository.clone(),
            digest: None,
            tag: None,
            previous: None,
            media_type: None,
            size: None,
            subject: None,
            artifact_type: None,
            from_repository: None,
            tags: Vec::new(),
            origin: Arc::clone(origin),
        }
    }

    pub fn digest(mut self, digest: &Digest) -> Event {
        self.digest = Some(digest.clone());
        self
    }

    pub fn tag(mut self, tag: &Tag) -> Event {
        self.tag = Some(tag.clone());
        self
    }

    pub fn media_type(mut self, media_type: &str) -> Event {
        self.media_type = Some(media_type.to_string());
        self
    }

    pub fn size(mut self, size: u64) -> Event {
        self.size = Some(size);
        self
    }
}

/// Ids unique across instances without a syscall per event: a random per-process prefix and
/// a counter, 32 hex digits like a UUID without dashes.
fn next_event_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the OS provides randomness");
        u64::from_le_bytes(bytes)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}{n:016x}")
}

/// Names the webhook endpoints that must be told of a committed change. Asked inside the
/// change's transaction, so it must answer from memory (no I/O).
pub trait OutboxRouter: Send + Sync {
    fn endpoints_for(&self, event: &Event) -> Vec<String>;
}

/// A delivery owed to an endpoint, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Delivery order for the endpoint.
    pub id: i64,
    pub endpoint: String,
    pub event: Event,
    pub attempts: u32,
    /// Unix milliseconds: when it was written (the event's commit).
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("manifest.eaten"), None);
    }

    #[test]
    fn events_round_trip_as_json_and_ids_are_unique() {
        let origin = Arc::new(Origin {
            actor: "alice".into(),
            address: Some("10.0.0.1".into()),
            ..Origin::default()
        });
        let name = RepositoryName::parse("team/app").unwrap();
        let event = Event::new(EventKind::TagMoved, &name, &origin)
            .tag(&Tag::parse("v1").unwrap())
            .size(7);
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains("\"kind\":\"tag.moved\""), "{json}");
        assert!(
            !json.contains("digest"),
            "absent fields are left out: {json}"
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
        let other = Event::new(EventKind::TagMoved, &name, &origin);
        assert_ne!(other.id, event.id);
        assert_eq!(event.id.len(), 32);
    }
}
