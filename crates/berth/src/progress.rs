//! Progress of long operations (fsck, scrub, backup, restore) on standard error, a line every few
//! seconds, so that a person watching sees that it moves and how far it has to go.

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    what: &'static str,
    total_items: u64,
    total_bytes: u64,
    items: u64,
    bytes: u64,
    started: Instant,
    last: Instant,
    quiet: bool,
}

impl Progress {
    /// `quiet` progress prints nothing (machine-readable output was asked for).
    pub fn new(what: &'static str, total_items: u64, total_bytes: u64, quiet: bool) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            total_items,
            total_bytes,
            items: 0,
            bytes: 0,
            started: now,
            last: now,
            quiet,
        }
    }

    /// Counts one item of `bytes` done, printing a line when the last is old enough.
    pub fn advance(&mut self, bytes: u64) {
        self.update(self.items + 1, self.bytes + bytes);
    }

    /// Sets how many items and bytes are done, printing a line when the last is old enough.
    pub fn update(&mut self, items: u64, bytes: u64) {
        self.items = items;
        self.bytes = bytes;
        if !self.quiet && self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    fn line(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{}: {}/{} ({} of {}, {}/s)",
            self.what,
            self.items,
            self.total_items,
            human_bytes(self.bytes),
            human_bytes(self.total_bytes),
            human_bytes((self.bytes as f64 / elapsed) as u64),
        )
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A scrub's progress on standard error, for the command line.
pub struct Printed {
    what: &'static str,
    quiet: bool,
    progress: std::sync::Mutex<Option<Progress>>,
}

impl Printed {
    pub fn new(what: &'static str, quiet: bool) -> Printed {
        Printed {
            what,
            quiet,
            progress: std::sync::Mutex::new(None),
        }
    }
}

impl crate::scrub::Watch for Printed {
    fn progress(&self, done: &crate::scrub::Summary, due: usize, due_bytes: u64) {
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let progress = progress
            .get_or_insert_with(|| Progress::new(self.what, due as u64, due_bytes, self.quiet));
        let items = done.verified + (done.quarantined.len() + done.missing.len()) as u64;
        progress.update(items, done.bytes);
    }
}

/// `1.5 GiB`, `12 KiB`, `512 B`: the unit quotas are written in.
pub use berth_registry::gc::human_bytes;

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
