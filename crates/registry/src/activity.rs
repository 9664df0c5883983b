//! Client requests being answered now, counted by the HTTP layer, so that background work in
//! the same process (the collector) can leave them the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct ClientActivity {
    serving: AtomicUsize,
}

impl ClientActivity {
    /// Counts a request until the returned guard drops (when its response body has gone out).
    pub fn begin(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Ordering::Relaxed);
        Serving(Arc::clone(self))
    }

    /// Whether any request is being answered.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed) > 0
    }
}

/// One request being answered.
#[derive(Debug)]
pub struct Serving(Arc<ClientActivity>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_until_its_guard_drops() {
        let activity = Arc::new(ClientActivity::default());
        assert!(!activity.serving());
        let first = activity.begin();
        let second = activity.begin();
        drop(first);
        assert!(activity.serving());
        drop(second);
        assert!(!activity.serving());
    }
}
