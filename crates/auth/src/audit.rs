//! Writing the audit log without slowing requests down.
//!
//! Events go into a bounded channel; a background task writes them in batches, one
//! transaction each, at most every quarter second. Identical events in a batch (the same
//! actor pulling the same repository from the same address, say, for every layer of an
//! image) become one row with a count. If the database falls behind so far that the
//! channel fills up, further events are counted and reported in the log rather than
//! blocking requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_meta::identity::{AuditEvent, IdentityStore};
use tokio::sync::{mpsc, oneshot};

const CHANNEL: usize = 65_536;
const BATCH: usize = 2_000;
const INTERVAL: Duration = Duration::from_millis(250);

enum Message {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

pub struct AuditSink {
    sender: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the writer on the current tokio runtime.
    pub fn start(store: Arc<dyn IdentityStore>) -> AuditSink {
        let (sender, receiver) = mpsc::channel(CHANNEL);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(store, receiver, Arc::clone(&dropped)));
        AuditSink { sender, dropped }
    }

    pub fn record(&self, event: AuditEvent) {
        if self.sender.try_send(Message::Event(event)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns once every event recorded so far is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batches(
    store: Arc<dyn IdentityStore>,
    mut receiver: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
) {
    let mut pending: Vec<AuditEvent> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let message = if pending.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(INTERVAL, receiver.recv()).await {
                Ok(message) => message,
                Err(_) => None.or(Some(Message::Flush(oneshot::channel().0))),
            }
        };
        let closed = message.is_none();
        match message {
            Some(Message::Event(event)) => {
                pending.push(event);
                if pending.len() < BATCH {
                    continue;
                }
            }
            Some(Message::Flush(done)) => waiting.push(done),
            None => {}
        }
        let batch = compact(std::mem::take(&mut pending));
        if let Err(e) = store.record_audit(&batch).await {
            tracing::warn!(error = %e, events = batch.len(), "writing the audit log failed");
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(
                events = lost,
                "audit events dropped: the database could not keep up"
            );
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

/// Merges identical events, keeping the first time and adding up the counts.
fn compact(events: Vec<AuditEvent>) -> Vec<AuditEvent> {
    let mut index: HashMap<(String, String, String, String, String, String), usize> =
        HashMap::new();
    let mut out: Vec<AuditEvent> = Vec::new();
    for event in events {
        let key = (
            event.actor.clone(),
            event.action.clone(),
            event.target.clone(),
            event.client.clone(),
            event.outcome.clone(),
            event.detail.clone(),
        );
        match index.get(&key) {
            Some(&i) => out[i].count += event.count,
            None => {
                index.insert(key, out.len());
                out.push(event);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str, target: &str, at: i64) -> AuditEvent {
        AuditEvent {
            at,
            actor: actor.into(),
            action: "pull".into(),
            target: target.into(),
            client: "10.0.0.1".into(),
            outcome: "allowed".into(),
            detail: String::new(),
            count: 1,
        }
    }

    #[test]
    fn identical_events_are_counted() {
        let compacted = compact(vec![
            event("a", "x", 1),
            event("a", "x", 2),
            event("b", "x", 3),
            event("a", "x", 4),
        ]);
        assert_eq!(compacted.len(), 2);
        assert_eq!((compacted[0].at, compacted[0].count), (1, 3));
        assert_eq!((compacted[1].actor.as_str(), compacted[1].count), ("b", 1));
    }
}
