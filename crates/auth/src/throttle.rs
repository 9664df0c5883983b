//! Backing off failed logins, so that guessing passwords is slow while nobody can lock a
//! user out.
//!
//! Three counts of failures are kept:
//!
//! * per user name *and* client address: the guesser's own attempts at one account. The first
//!   few are free (typos happen); after that each failure locks that pair out for twice as
//!   long as the one before, up to a ceiling. The same user from another address is not
//!   affected.
//! * per client address: many names guessed from one place. More attempts are free, since
//!   many users may share an address (a NAT, an office proxy); then the address is locked
//!   out the same way. A success does not clear it, so that one valid account cannot
//!   launder an address's guesses at others.
//! * per user name, across addresses: guessing from many addresses. This one only slows
//!   logins of the name down (a short, bounded delay before the check), never refuses them,
//!   so that it cannot be used to keep the user out.
//!
//! A success clears the first and the last. Access tokens (256 random bits, not guessable)
//! are only held to the address's count. The state is kept in memory: several instances
//! each throttle on their own, which multiplies an attacker's attempts by the number of
//! instances at most.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FREE_FAILURES_PER_PAIR: u32 = 5;
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
const FREE_FAILURES_PER_USER: u32 = 10;
const FIRST_LOCKOUT: Duration = Duration::from_secs(1);
const LONGEST_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// The slow-down of a user's logins after failures from many addresses: doubling from
/// this...
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// ...up to this, however many failures.
const LONGEST_DELAY: Duration = Duration::from_secs(1);
/// State untouched for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Address(IpAddr),
    User(String),
}

struct Entry {
    failures: u32,
    locked_until: Instant,
    last_failure: Instant,
}

impl Entry {
    /// How far past its free attempts this count is (0: still free).
    fn excess(&self, free: u32) -> u32 {
        self.failures.saturating_sub(free)
    }
}

/// Doubling from `first` for each failure past the free ones, capped at `longest`.
fn backoff(excess: u32, first: Duration, longest: Duration) -> Duration {
    if excess == 0 {
        return Duration::ZERO;
    }
    first.saturating_mul(1 << (excess - 1).min(20)).min(longest)
}

#[derive(Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    /// Before checking a password of `user` from `address`: `Ok(delay)` to wait that long
    /// first (zero, unless the name is being guessed from many addresses), or `Err(wait)`
    /// when this address may not try (this user, or at all) for `wait` more.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<Duration, Duration> {
        self.check_at(user, address, Instant::now())
    }

    fn check_at(
        &self,
        user: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<Duration, Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let locked = lockout_keys(user, address)
            .filter_map(|key| entries.get(&key))
            .map(|entry| entry.locked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if !locked.is_zero() {
            return Err(locked);
        }
        let delay = entries
            .get(&Key::User(user.to_string()))
            .map_or(Duration::ZERO, |entry| {
                backoff(
                    entry.excess(FREE_FAILURES_PER_USER),
                    FIRST_DELAY,
                    LONGEST_DELAY,
                )
            });
        Ok(delay)
    }

    /// Before checking an access token from `address`: `Err(wait)` when the address is
    /// locked out. (A token cannot be guessed; only the address's count applies.)
    pub fn check_address(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        let Some(address) = address else {
            return Ok(());
        };
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let wait = entries
            .get(&Key::Address(address))
            .map(|entry| entry.locked_until.saturating_duration_since(Instant::now()))
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
        let user_key = (!user.is_empty()).then(|| Key::User(user.to_string()));
        for key in lockout_keys(user, address).chain(user_key) {
            let free = match key {
                Key::Pair(..) => FREE_FAILURES_PER_PAIR,
                Key::Address(_) => FREE_FAILURES_PER_ADDRESS,
                Key::User(_) => FREE_FAILURES_PER_USER,
            };
            let locks = !matches!(key, Key::User(_));
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                locked_until: now,
                last_failure: now,
            });
            if now.duration_since(entry.last_failure) >= FORGET_AFTER {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last_failure = now;
            if locks {
                entry.locked_until =
                    now + backoff(entry.excess(free), FIRST_LOCKOUT, LONGEST_LOCKOUT);
            }
        }
    }

    /// A successful login: the pair's and the name's failures are forgotten (not the
    /// address's: see the module's documentation).
    pub fn record_success(&self, user: &str, address: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&Key::User(user.to_string()));
        if let Some(address) = address {
            entries.remove(&Key::Pair(user.to_string(), address));
        }
    }
}

/// The counts that can lock a login attempt out: the pair and the address.
fn lockout_keys(user: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    let pair = address
        .filter(|_| !user.is_empty())
        .map(|address| Key::Pair(user.to_string(), address));
    pair.into_iter().chain(address.map(Key::Address))
}

/// How many unanswered ceremonies one address may begin per [`START_WINDOW`].
const STARTS_PER_WINDOW: u32 = 30;
const START_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked before the stale ones are dropped.
const TRACKED_ADDRESSES: usize = 10_000;

/// A cap on what anyone may begin without credentials (a passwordless sign-in stores its
/// challenge for five minutes): per client address, a fixed number per minute, so that one
/// client cannot fill the database while a shared address (a NAT) keeps ample room. In
/// memory, per instance, like [`LoginThrottle`].
#[derive(Default)]
pub struct StartLimit {
    windows: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl StartLimit {
    /// Counts a start from `address`: `Err(wait)` when the address has begun its share of
    /// this window, until the next one.
    pub fn begin(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        self.begin_at(address, Instant::now())
    }

    fn begin_at(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= TRACKED_ADDRESSES {
            windows.retain(|_, (began, _)| now.duration_since(*began) < START_WINDOW);
        }
        let (began, count) = windows.entry(address).or_insert((now, 0));
        if now.duration_since(*began) >= START_WINDOW {
            *began = now;
            *count = 0;
        }
        if *count >= STARTS_PER_WINDOW {
            return Err(START_WINDOW - now.duration_since(*began));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_backs_off_exponentially_and_resets_on_success() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES_PER_PAIR {
            assert!(throttle.check_at("alice", Some(ip), start).is_ok());
            throttle.record_failure_at("alice", Some(ip), start);
        }
        assert_eq!(
            throttle.check_at("alice", Some(ip), start),
            Ok(Duration::ZERO),
            "the free attempts are free"
        );
        for expected in [1, 2, 4] {
            throttle.record_failure_at("alice", Some(ip), start);
            assert_eq!(
                throttle.check_at("alice", Some(ip), start),
                Err(Duration::from_secs(expected))
            );
        }
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
        assert_eq!(
            throttle.check_at("alice", Some(ip), start),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn guessing_from_one_address_does_not_lock_the_user_out_elsewhere() {
        let throttle = LoginThrottle::default();
        let guesser: IpAddr = "192.0.2.66".parse().unwrap();
        let owner: IpAddr = "198.51.100.7".parse().unwrap();
        let now = Instant::now();
        for _ in 0..100 {
            throttle.record_failure_at("alice", Some(guesser), now);
        }
        assert!(throttle.check_at("alice", Some(guesser), now).is_err());
        // From elsewhere: slowed down by at most a second, never refused.
        assert_eq!(
            throttle.check_at("alice", Some(owner), now),
            Ok(LONGEST_DELAY)
        );
        assert!(throttle.check_at("alice", None, now).is_ok());
        throttle.record_success("alice", Some(owner));
        assert_eq!(
            throttle.check_at("alice", Some(owner), now),
            Ok(Duration::ZERO)
        );
        assert!(
            throttle.check_at("alice", Some(guesser), now).is_err(),
            "the guesser stays locked out"
        );
    }

    #[test]
    fn guessing_from_many_addresses_slows_the_name_down_a_little() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_FAILURES_PER_USER {
            let ip: IpAddr = format!("10.1.0.{i}").parse().unwrap();
            throttle.record_failure_at("alice", Some(ip), now);
        }
        let elsewhere: IpAddr = "10.2.0.1".parse().unwrap();
        assert_eq!(
            throttle.check_at("alice", Some(elsewhere), now),
            Ok(Duration::ZERO)
        );
        throttle.record_failure_at("alice", Some("10.1.1.1".parse().unwrap()), now);
        assert_eq!(
            throttle.check_at("alice", Some(elsewhere), now),
            Ok(FIRST_DELAY)
        );
        throttle.record_failure_at("alice", Some("10.1.1.2".parse().unwrap()), now);
        assert_eq!(
            throttle.check_at("alice", Some(elsewhere), now),
            Ok(FIRST_DELAY * 2)
        );
    }

    #[test]
    fn an_address_guessing_many_names_is_locked_out_and_a_success_does_not_clear_it() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        for i in 0..=FREE_FAILURES_PER_ADDRESS {
            throttle.record_failure_at(&format!("user{i}"), Some(ip), now);
        }
        assert!(throttle.check_at("someone-new", Some(ip), now).is_err());
        assert!(throttle.check_address(Some(ip)).is_err());
        assert!(throttle.check_at("someone-new", None, now).is_ok());
        throttle.record_success("mallory", Some(ip));
        assert!(throttle.check_at("someone-new", Some(ip), now).is_err());
    }

    #[test]
    fn lockouts_are_capped() {
        let throttle = LoginThrottle::default();
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        let now = Instant::now();
        for _ in 0..100 {
            throttle.record_failure_at("target", Some(ip), now);
        }
        assert_eq!(
            throttle.check_at("target", Some(ip), now),
            Err(LONGEST_LOCKOUT)
        );
    }

    #[test]
    fn starts_are_capped_per_address_and_window() {
        let limit = StartLimit::default();
        let t0 = Instant::now();
        let one = Some(IpAddr::from([10, 0, 0, 1]));
        let other = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..STARTS_PER_WINDOW {
            assert!(limit.begin_at(one, t0).is_ok());
        }
        let wait = limit
            .begin_at(one, t0 + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        assert!(
            limit.begin_at(other, t0).is_ok(),
            "other addresses are not held"
        );
        assert!(
            limit.begin_at(one, t0 + START_WINDOW).is_ok(),
            "a new window"
        );
    }
}
