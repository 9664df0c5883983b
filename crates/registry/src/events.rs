//! The registry's event stream.
//!
//! Every operation that commits a change publishes the [`Event`]s the metadata store returned
//! for it, after the commit, to each [`EventSink`] the registry was built with; pulls publish
//! an event when the content is about to be sent. Metrics, pull statistics, the activity
//! feed and the webhook dispatcher's wake-up are such sinks. Durable delivery does not
//! depend on them: webhook deliveries are written to the outbox inside the change's
//! transaction (see `berth_meta::events`).

use std::sync::Arc;

pub use berth_meta::events::{Event, EventKind, Origin, OutboxEntry, OutboxRouter};

/// Hears every event after the fact. `publish` runs on the request's task: it must not
/// block or wait (count, or queue for a batch).
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, event: &Event);
}

#[derive(Default, Clone)]
pub(crate) struct Listeners(Vec<Arc<dyn EventSink>>);

impl Listeners {
    pub(crate) fn add(&mut self, sink: Arc<dyn EventSink>) {
        self.0.push(sink);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn publish(&self, events: &[Event]) {
        for event in events {
            for sink in &self.0 {
                sink.publish(event);
            }
        }
    }
}
