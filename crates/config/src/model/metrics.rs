//! `metrics`: what berth measures and who may read it.

use berth_oci::Pattern;

use crate::schema::section;

section! {
    #[derive(Clone, PartialEq)]
    pub struct MetricsConfig {
        enabled: bool = true, "collect Prometheus metrics and serve them at /metrics";
        /// Labels per repository multiply the series; only the listed ones get them.
        repositories: Vec<Pattern>,
            "repositories (patterns such as team/**) whose metrics carry a repository label; empty: none";
        open: bool,
            "serve /metrics on the main listener without an administrator's credentials";
    }
}
