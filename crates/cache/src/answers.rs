//! What a remote's upstream last answered about a tag or a digest: a tag checked (served
//! without asking again within `revalidate_after`) or a 404 (not asked again within the
//! negative cache's time). Recorded in the metadata store, so that every instance of a
//! PostgreSQL deployment sees the others' answers and a restart forgets nothing; remembered
//! in memory too, so that a warm pull of a fresh tag costs no query.
//!
//! An answer's time is the wall clock's (instances compare it): a clock set back makes a
//! remote ask its upstream a little sooner, never serve past its window by more than the
//! clocks differ.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_meta::{CacheStore, UpstreamAnswer, now_millis};
use berth_oci::RepositoryName;

/// Entries kept in memory before the expired ones are dropped.
const MEMORY_BOUND: usize = 10_000;

pub(crate) struct Answers {
    store: Arc<dyn CacheStore>,
    /// The remote's name, for logs.
    remote: String,
    /// `repository@reference` (`:tag` kept as the reference) to the last answer seen.
    memory: Mutex<HashMap<(RepositoryName, String), UpstreamAnswer>>,
}

impl Answers {
    pub fn new(store: Arc<dyn CacheStore>, remote: &str) -> Answers {
        Answers {
            store,
            remote: remote.to_string(),
            memory: Mutex::default(),
        }
    }

    /// Whether the upstream answered `found` about `reference` within `window`: from
    /// memory when it holds such an answer, else from the store (another instance's, or
    /// this one's before a restart).
    pub async fn within(
        &self,
        repository: &RepositoryName,
        reference: &str,
        found: bool,
        window: Duration,
    ) -> bool {
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let recent = |answer: &UpstreamAnswer| {
            answer.found == found && now_millis().saturating_sub(answer.at) < window
        };
        let key = (repository.clone(), reference.to_string());
        if self.lock().get(&key).is_some_and(recent) {
            return true;
        }
        match self.store.upstream_answer(repository, reference).await {
            Ok(Some(answer)) => {
                self.remember(key, answer);
                recent(&answer)
            }
            Ok(None) => false,
            Err(e) => {
                // Asking the upstream once more is the safe side of a failed read.
                tracing::warn!(remote = %self.remote, %repository, reference, error = %e,
                    "reading the upstream's last answer failed");
                false
            }
        }
    }

    /// Records that the upstream answered `found` about `reference` now.
    pub async fn record(&self, repository: &RepositoryName, reference: &str, found: bool) {
        let answer = UpstreamAnswer {
            found,
            at: now_millis(),
        };
        self.remember((repository.clone(), reference.to_string()), answer);
        if let Err(e) = self
            .store
            .record_upstream_answer(repository, reference, answer)
            .await
        {
            // Only the sharing is lost: this instance remembers it.
            tracing::warn!(remote = %self.remote, %repository, reference, error = %e,
                "recording the upstream's answer failed");
        }
    }

    fn remember(&self, key: (RepositoryName, String), answer: UpstreamAnswer) {
        let mut memory = self.lock();
        if memory.len() >= MEMORY_BOUND {
            // The oldest half goes: those are the least likely to be within a window.
            let mut ages: Vec<i64> = memory.values().map(|a| a.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            memory.retain(|_, a| a.at > cut);
        }
        memory.insert(key, answer);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(RepositoryName, String), UpstreamAnswer>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}
