//! Backing off failed logins, per user name and per client address.
//!
//! The first few failures are free (typos happen); after that each failure locks the name
//! (or the address) out for twice as long as the one before, up to a ceiling. A success
//! clears both. Addresses get more free attempts than names, since many users may share one
//! (a NAT, an office proxy). The state is kept in memory: several instances each throttle
//! on their own, which multiplies an attacker's attempts by the number of instances at most.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES_PER_USER: u32 = 5;
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
const FIRST_LOCKOUT: Duration = Duration::from_secs(1);
const LONGEST_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// State untouched for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

struct Entry {
    failures: u32,
    locked_until: Instant,
    last_failure: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    /// `Err(wait)` when the user or the address is locked out for `wait` more.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(user, address, Instant::now())
    }

    fn check_at(&self, user: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let wait = keys(user, address)
            .filter_map(|key| entries.get(&key))
            .map(|entry| entry.locked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn record_failure(&self, user: &str, address: Option<IpAddr>) {
        self.record_failure_at(user, address, Instant::now());
    }

    fn record_failure_at(&self, user: &str, address: Option<IpAddr>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, e| now.duration_since(e.last_failure) < FORGET_AFTER);
        }
        for key in keys(user, address) {
            let free = match key {
                Key::User(_) => FREE_FAILURES_PER_USER,
                Key::Address(_) => FREE_FAILURES_PER_ADDRESS,
            };
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                locked_until: now,
                last_failure: now,
            });
            entry.failures += 1;
            entry.last_failure = now;
            if entry.failures > free {
                let doublings = (entry.failures - free - 1).min(20);
                let lockout = FIRST_LOCKOUT
                    .saturating_mul(1 << doublings)
                    .min(LONGEST_LOCKOUT);
                entry.locked_until = now + lockout;
            }
        }
    }

    pub fn record_success(&self, user: &str, address: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(user, address) {
            entries.remove(&key);
        }
    }
}

fn keys(user: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    let user = (!user.is_empty()).then(|| Key::User(user.to_string()));
    user.into_iter().chain(address.map(Key::Address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_and_resets_on_success() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES_PER_USER {
            assert!(throttle.check_at("alice", Some(ip), start).is_ok());
            throttle.record_failure_at("alice", Some(ip), start);
        }
        assert!(
            throttle.check_at("alice", Some(ip), start).is_ok(),
            "the free attempts are free"
        );
        throttle.record_failure_at("alice", Some(ip), start);
        assert_eq!(
            throttle.check_at("alice", Some(ip), start),
            Err(Duration::from_secs(1))
        );
        throttle.record_failure_at("alice", Some(ip), start);
        assert_eq!(
            throttle.check_at("alice", Some(ip), start),
            Err(Duration::from_secs(2))
        );
        throttle.record_failure_at("alice", Some(ip), start);
        assert_eq!(
            throttle.check_at("alice", None, start),
            Err(Duration::from_secs(4))
        );
        assert!(
            throttle
                .check_at("alice", Some(ip), start + Duration::from_secs(5))
                .is_ok(),
            "it expires"
        );
        assert!(
            throttle.check_at("bob", Some(ip), start).is_ok(),
            "the address is not locked yet"
        );

        throttle.record_success("alice", Some(ip));
        assert!(throttle.check_at("alice", Some(ip), start).is_ok());
    }

    #[test]
    fn an_address_guessing_many_names_is_locked_out() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        for i in 0..=FREE_FAILURES_PER_ADDRESS {
            throttle.record_failure_at(&format!("user{i}"), Some(ip), now);
        }
        assert!(throttle.check_at("someone-new", Some(ip), now).is_err());
        assert!(throttle.check_at("someone-new", None, now).is_ok());
    }

    #[test]
    fn lockouts_are_capped() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..100 {
            throttle.record_failure_at("target", None, now);
        }
        assert_eq!(throttle.check_at("target", None, now), Err(LONGEST_LOCKOUT));
    }
}
