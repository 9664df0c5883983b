//! In-process mutual exclusion per key, for stores that only one process uses.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A lock per key, created on first use and forgotten when nobody holds or waits for it, so
/// the map only ever holds keys in use. The map's own mutex is held just long enough to find
/// the key's lock; waiting happens on that lock alone.
pub struct KeyedLocks<K> {
    locks: Arc<Mutex<HashMap<K, Arc<AsyncMutex<()>>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks {
            locks: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

pub struct KeyedGuard<K: Eq + Hash> {
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
    locks: Arc<Mutex<HashMap<K, Arc<AsyncMutex<()>>>>>,
}

impl<K: Eq + Hash + Clone + Send + 'static> KeyedLocks<K> {
    pub async fn lock(&self, key: K) -> KeyedGuard<K> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        let guard = lock.lock_owned().await;
        KeyedGuard {
            key,
            guard: Some(guard),
            locks: Arc::clone(&self.locks),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().unwrap().len()
    }
}

impl<K: Eq + Hash> Drop for KeyedGuard<K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map still refers to the lock: no holder, no waiter.
        if locks
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn excludes_per_key_and_forgets_unused_keys() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("a").await;
        // Another key is independent.
        let other = locks.lock("b").await;
        drop(other);

        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _second = locks.lock("a").await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second holder of 'a' waits");
        drop(first);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 0);
    }
}
