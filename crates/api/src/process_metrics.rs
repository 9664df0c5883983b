//! The process's own metrics (CPU, memory, open files, threads), sampled at each scrape.

use std::sync::OnceLock;

use metrics_process::Collector;

pub(crate) fn collect() {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR
        .get_or_init(|| {
            let collector = Collector::default();
            collector.describe();
            collector
        })
        .collect();
}
