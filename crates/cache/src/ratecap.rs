//! berth's cap on the requests a remote sends its upstream (`ratelimit`, a second's worth of
//! burst): a request over the cap waits for its turn if that comes within a second, and is
//! refused otherwise, so that a burst of pulls cannot spend an upstream's own rate limit
//! (Docker Hub's pulls per hour) and clients are told when to come back.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest a request waits for its turn before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct RateCap {
    per_second: u32,
    /// Turns available now (negative: promised to waiting requests), and when counted.
    state: Mutex<(f64, Instant)>,
}

impl RateCap {
    pub(crate) fn new(per_second: u32) -> RateCap {
        let per_second = per_second.max(1);
        RateCap {
            per_second,
            state: Mutex::new((f64::from(per_second), Instant::now())),
        }
    }

    pub(crate) fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Waits for the request's turn; `Err` with the seconds to wait (for `Retry-After`)
    /// when that is more than [`MAX_WAIT`] away.
    pub(crate) async fn admit(&self) -> Result<(), u64> {
        let wait = self.reserve()?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Takes a turn, now or at a time within [`MAX_WAIT`] (how long from now).
    fn reserve(&self) -> Result<Duration, u64> {
        let rate = f64::from(self.per_second);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (turns, counted) = *state;
        let turns = (turns + now.duration_since(counted).as_secs_f64() * rate).min(rate) - 1.0;
        if turns >= 0.0 {
            *state = (turns, now);
            return Ok(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64(-turns / rate);
        if wait <= MAX_WAIT {
            *state = (turns, now);
            Ok(wait)
        } else {
            *state = (turns + 1.0, now);
            Err(wait.as_secs_f64().ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_gets_a_seconds_worth_then_waits_then_is_refused() {
        let cap = RateCap::new(2);
        assert_eq!(cap.reserve(), Ok(Duration::ZERO));
        assert_eq!(cap.reserve(), Ok(Duration::ZERO));
        assert_eq!(cap.reserve(), Ok(Duration::from_millis(500)));
        assert_eq!(cap.reserve(), Ok(Duration::from_secs(1)));
        assert_eq!(
            cap.reserve(),
            Err(2),
            "1.5 s away: refused, retry after 2 s"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            cap.reserve(),
            Ok(Duration::ZERO),
            "the promised turns are spent, the next is free"
        );
    }
}
