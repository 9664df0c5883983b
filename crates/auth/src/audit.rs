//! Writing the audit log without slowing requests down.
//!
//! Events go into a bounded channel; a background task writes them in batches, one
//! transaction each, at most every quarter second. Identical events in a batch (the same
//! actor pulling the same repository from the same address, say, for every layer of an
//! image) become one row with a count. If the database falls behind so far that the
//! channel fills up, further events are counted and reported in the log rather than
//! blocking requests.
//!
//! Allowed pulls are the bulk of all decisions (every HEAD of a poller such as Watchtower,
//! every layer of every pull), so they are summarized over five minutes instead: one row per
//! actor, repository and address with the count and the first time. A registry polled once a
//! second for a thousand images writes a thousand rows per five minutes, not per second.
//! Everything else (denials, pushes, deletes, logins, management) is written within a
//! quarter of a second.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_meta::identity::{AuditEvent, IdentityStore};
use tokio::sync::{mpsc, oneshot};

const CHANNEL: usize = 65_536;
const BATCH: usize = 2_000;
const INTERVAL: Duration = Duration::from_millis(250);
/// How long allowed pulls are summed up before they are written.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(300);
/// Distinct summarized entries held before they are written early.
const SUMMARY_LIMIT: usize = 10_000;

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
        metrics::counter!(
            "berth_auth_decisions_total",
            "action" => event.action.clone(),
            "outcome" => event.outcome.clone()
        )
        .increment(1);
        if self.sender.try_send(Message::Event(event)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("berth_audit_events_dropped_total").increment(1);
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

/// Whether an event is summarized over [`SUMMARY_INTERVAL`] rather than written at once.
fn summarized(event: &AuditEvent) -> bool {
    event.action == "pull" && event.outcome == "allowed"
}

async fn write_batches(
    store: Arc<dyn IdentityStore>,
    mut receiver: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
) {
    let mut pending: Vec<AuditEvent> = Vec::new();
    let mut summary = Summary::default();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let wait = if !pending.is_empty() {
            Some(INTERVAL)
        } else {
            summary.due_in()
        };
        let message = match wait {
            None => receiver.recv().await,
            Some(wait) => match tokio::time::timeout(wait, receiver.recv()).await {
                Ok(message) => message,
                // Time to write what is pending (a flush nobody waits for).
                Err(_) => Some(Message::Flush(oneshot::channel().0)),
            },
        };
        let closed = message.is_none();
        let mut flush_all = closed;
        match message {
            Some(Message::Event(event)) if summarized(&event) => {
                summary.add(event);
                if summary.len() < SUMMARY_LIMIT {
                    continue;
                }
            }
            Some(Message::Event(event)) => {
                pending.push(event);
                if pending.len() < BATCH {
                    continue;
                }
            }
            Some(Message::Flush(done)) => {
                // An explicit flush (shutdown, tests) writes the summary too.
                flush_all |= !done.is_closed();
                waiting.push(done);
            }
            None => {}
        }
        let mut batch = compact(std::mem::take(&mut pending));
        if flush_all || summary.is_due() || summary.len() >= SUMMARY_LIMIT {
            batch.extend(summary.take());
        }
        if !batch.is_empty()
            && let Err(e) = store.record_audit(&batch).await
        {
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

/// Allowed pulls being summed up: one entry per distinct event, with its count.
#[derive(Default)]
struct Summary {
    entries: Vec<AuditEvent>,
    index: HashMap<(String, String, String, String), usize>,
    started: Option<tokio::time::Instant>,
}

impl Summary {
    fn add(&mut self, event: AuditEvent) {
        let key = (
            event.actor.clone(),
            event.target.clone(),
            event.client.clone(),
            event.detail.clone(),
        );
        match self.index.get(&key) {
            Some(&i) => self.entries[i].count += event.count,
            None => {
                self.started.get_or_insert_with(tokio::time::Instant::now);
                self.index.insert(key, self.entries.len());
                self.entries.push(event);
            }
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// How long until the summary must be written; `None` when it is empty.
    fn due_in(&self) -> Option<Duration> {
        self.started
            .map(|at| SUMMARY_INTERVAL.saturating_sub(at.elapsed()))
    }

    fn is_due(&self) -> bool {
        self.due_in().is_some_and(|d| d.is_zero())
    }

    fn take(&mut self) -> Vec<AuditEvent> {
        self.index.clear();
        self.started = None;
        std::mem::take(&mut self.entries)
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
