//! When a job runs: every interval (the first time after a delay), optionally only inside a
//! daily time window (UTC), or only when asked.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_SECONDS: u64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// `None`: only when asked (`run_once`).
    interval: Option<Duration>,
    first_after: Duration,
    retry_after: Option<Duration>,
    window: Option<Window>,
}

impl Schedule {
    /// Every `interval`, the first time one interval after start.
    pub fn every(interval: Duration) -> Schedule {
        Schedule {
            interval: Some(interval),
            first_after: interval,
            retry_after: None,
            window: None,
        }
    }

    /// Never on its own; only `run_once`.
    pub fn on_demand() -> Schedule {
        Schedule {
            interval: None,
            first_after: Duration::ZERO,
            retry_after: None,
            window: None,
        }
    }

    /// The first run this long after start.
    pub fn first_after(mut self, delay: Duration) -> Schedule {
        self.first_after = delay;
        self
    }

    /// After a failed pass, the next one this long after instead of a whole interval.
    pub fn retry_after(mut self, delay: Duration) -> Schedule {
        self.retry_after = Some(delay);
        self
    }

    /// Only start passes inside this daily window.
    pub fn within(mut self, window: Option<Window>) -> Schedule {
        self.window = window;
        self
    }

    pub(crate) fn is_scheduled(&self) -> bool {
        self.interval.is_some()
    }

    pub(crate) fn first_delay(&self) -> Duration {
        self.first_after
    }

    pub(crate) fn next_delay(&self, succeeded: bool) -> Duration {
        let interval = self.interval.unwrap_or(Duration::MAX);
        match self.retry_after {
            Some(retry) if !succeeded => retry.min(interval),
            _ => interval,
        }
    }

    /// `delay`, pushed to the next opening of the window if it would end outside it.
    pub(crate) fn adjust_for_window(&self, delay: Duration, now: SystemTime) -> Duration {
        match &self.window {
            None => delay,
            Some(window) => {
                let at = now + delay;
                delay + window.wait_from(at)
            }
        }
    }
}

/// A daily window in UTC, `HH:MM-HH:MM`; it may wrap past midnight (`22:00-04:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

impl Window {
    /// Seconds since midnight UTC of `at`.
    fn second_of_day(at: SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % DAY_SECONDS
    }

    pub fn contains(&self, at: SystemTime) -> bool {
        let second = Self::second_of_day(at) as u32;
        if self.start < self.end {
            (self.start..self.end).contains(&second)
        } else {
            second >= self.start || second < self.end
        }
    }

    /// How long from `at` until the window is open (zero if it is).
    pub fn wait_from(&self, at: SystemTime) -> Duration {
        if self.contains(at) {
            return Duration::ZERO;
        }
        let second = Self::second_of_day(at);
        let start = u64::from(self.start);
        let wait = if start > second {
            start - second
        } else {
            DAY_SECONDS - second + start
        };
        Duration::from_secs(wait)
    }
}

fn parse_time(text: &str) -> Option<u32> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some((hours * 60 + minutes) * 60)
}

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Window, String> {
        let invalid = || format!("{text:?} is not a time window like \"01:00-06:00\" (UTC)");
        let (start, end) = text.split_once('-').ok_or_else(invalid)?;
        let start = parse_time(start).ok_or_else(invalid)?;
        let end = parse_time(end).ok_or_else(invalid)?;
        if start == end {
            return Err(format!("{text:?} is an empty time window"));
        }
        Ok(Window { start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| (s / 3600, s / 60 % 60);
        let (sh, sm) = hm(self.start);
        let (eh, em) = hm(self.end);
        write!(f, "{sh:02}:{sm:02}-{eh:02}:{em:02}")
    }
}
