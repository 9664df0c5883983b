//! The access service's short-lived caches, and how a change anywhere empties them.
//!
//! Every entry carries the *epoch* in which the value was read from the store. Emptying the
//! caches moves to the next epoch, so an entry whose read began before a change can never be
//! served after it, however the read and the change interleave (a request that read the old
//! row and stores it a moment later stores it under the old epoch: dead on arrival).
//!
//! Changes are noticed two ways: `Administration` empties this instance's caches at once,
//! and [`follow_changes`] polls the database's identity change counter (bumped by triggers in
//! the same transaction as any change to users, teams, memberships, service accounts, token
//! revocations and rules: migration 0600) every [`CHANGE_POLL`], so that a change made by the
//! CLI or another instance reaches this one within that interval.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use berth_meta::identity::IdentityStore;

use crate::policy::{Principal, Rule};

use super::authenticate::VerifiedToken;

/// How often each instance reads the identity change counter. With the read itself, this is
/// the bound on how long a change made elsewhere takes to reach this instance (README:
/// "within two seconds").
pub const CHANGE_POLL: Duration = Duration::from_secs(1);
/// How long a successful password check is remembered (argon2 is slow on purpose).
const PASSWORD_CACHE: Duration = Duration::from_secs(60);
/// How long policy rules and identities are remembered when nothing changes: a backstop,
/// since changes empty the caches anyway.
const IDENTITY_CACHE: Duration = Duration::from_secs(5);
/// Entries kept in each cache before it is cleared.
const CACHE_LIMIT: usize = 10_000;

struct Entry<V> {
    value: V,
    at: Instant,
    epoch: u64,
}

/// One bounded map whose entries expire after `lifetime` or at the next epoch.
pub(super) struct Cache<K, V> {
    map: Mutex<HashMap<K, Entry<V>>>,
    lifetime: Duration,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new(lifetime: Duration) -> Self {
        Cache {
            map: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    /// The value stored under `key` in `epoch`, if still fresh.
    pub(super) fn get(&self, key: &K, epoch: u64) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|entry| entry.epoch == epoch && entry.at.elapsed() < self.lifetime)
            .map(|entry| entry.value.clone())
    }

    /// Stores a value read from the store in `epoch` (taken before the read began).
    pub(super) fn insert(&self, key: K, value: V, epoch: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                at: Instant::now(),
                epoch,
            },
        );
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

pub(super) struct Caches {
    epoch: AtomicU64,
    /// Successful password checks, by hash of (user, password).
    pub passwords: Cache<[u8; 32], ()>,
    /// Verified registry tokens, by hash of the token (also bounded by the token's expiry).
    pub registry_tokens: Cache<[u8; 32], VerifiedToken>,
    pub rules: Cache<(), Arc<Vec<Rule>>>,
    /// Users by name (`None`: gone or disabled), with when the user was created.
    pub principals: Cache<String, Option<(Principal, i64)>>,
}

impl Caches {
    pub(super) fn new() -> Caches {
        Caches {
            epoch: AtomicU64::new(0),
            passwords: Cache::new(PASSWORD_CACHE),
            registry_tokens: Cache::new(Duration::MAX),
            rules: Cache::new(IDENTITY_CACHE),
            principals: Cache::new(IDENTITY_CACHE),
        }
    }

    /// The current epoch: take it before reading what is to be cached.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Forgets everything: nothing read before this call is served after it.
    pub(super) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.passwords.clear();
        self.registry_tokens.clear();
        self.rules.clear();
        self.principals.clear();
    }
}

/// Empties `caches` whenever the database's identity change counter moves, until the caches
/// are dropped. When the counter cannot be read, the caches are emptied too (changes could
/// be going unnoticed), so that berth fails closed rather than trusting stale grants.
pub(super) async fn follow_changes(caches: Weak<Caches>, store: Arc<dyn IdentityStore>) {
    let mut seen: Option<i64> = None;
    let mut failing = false;
    let mut ticks = tokio::time::interval(CHANGE_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(caches) = caches.upgrade() else {
            return;
        };
        match store.identity_generation().await {
            Ok(generation) => {
                if failing {
                    tracing::info!("the identity change counter is readable again");
                    failing = false;
                }
                if seen != Some(generation) {
                    // The first reading too: a change may have come between start and now.
                    caches.invalidate();
                    seen = Some(generation);
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the identity change counter; access caches stay empty until it can be read");
                    failing = true;
                }
                caches.invalidate();
                seen = None;
            }
        }
    }
}
