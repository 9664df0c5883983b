//! What a run did (or, dry, would do), for the CLI, the admin API and the dashboard.

use std::collections::BTreeMap;

use berth_meta::gc::BlobCandidate;
use berth_oci::RepositoryName;
use serde::{Deserialize, Serialize};

/// What a repository lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepositoryFreed {
    /// Untagged manifests deleted.
    pub manifests: u64,
    /// Blobs it no longer holds, and their bytes.
    pub blobs: u64,
    pub bytes: u64,
}

/// What a run did (or, dry, would do): its progress while it runs, its summary after.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GcReport {
    /// The run's record; `None` for a dry run.
    pub run: Option<i64>,
    pub dry_run: bool,
    /// `start`, `history`, `untagged`, `mark`, `orphans`, `sweep`, `uploads`, then `done`.
    pub phase: String,
    /// How long each phase took, in the order they ran (the one under way is not yet
    /// among them).
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    pub manifests: u64,
    /// Blobs whose bytes were deleted, and those bytes.
    pub blobs: u64,
    pub bytes: u64,
    /// Of those, bytes found in storage without a record (a crash between the two).
    pub orphans: u64,
    /// Blobs marked so far (a real run deletes them in the sweep).
    pub marked: u64,
    /// Deletions an interrupted run began, finished by this one.
    pub resumed: u64,
    pub upload_sessions: u64,
    pub upload_files: u64,
    /// Runs found interrupted (their instance stopped) when this one started.
    pub interrupted_runs: Vec<i64>,
    /// Per repository, by name.
    pub repositories: BTreeMap<String, RepositoryFreed>,
    pub errors: Vec<String>,
    /// Stopped early by a shutdown; the next run carries on.
    pub stopped: bool,
    pub duration_ms: u64,
    /// Of that, how long the collector rested for the clients this process was answering.
    #[serde(default)]
    pub client_rest_ms: u64,
}

/// How long a phase of a run took.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PhaseTime {
    pub phase: String,
    pub ms: u64,
}

impl GcReport {
    /// `took 12.3 s: history 0.0 s, untagged 1.2 s, mark 9.8 s, ...`, for people.
    pub fn timing(&self) -> String {
        let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|p| format!("{} {}", p.phase, seconds(p.ms)))
            .collect();
        let rested = if self.client_rest_ms > 0 {
            format!(" (resting {} for clients)", seconds(self.client_rest_ms))
        } else {
            String::new()
        };
        format!(
            "took {}{rested}: {}",
            seconds(self.duration_ms),
            phases.join(", ")
        )
    }

    pub(super) fn repository(&mut self, name: &RepositoryName) -> &mut RepositoryFreed {
        self.repositories
            .entry(name.as_str().to_string())
            .or_default()
    }

    pub(super) fn count_blob(&mut self, blob: &BlobCandidate) {
        for repository in &blob.repositories {
            let freed = self.repository(repository);
            freed.blobs += 1;
            freed.bytes += blob.size;
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "would free" } else { "freed" };
        let mut line = format!(
            "{verb} {} in {} blobs; {} untagged manifests; {} abandoned uploads",
            human_bytes(self.bytes),
            self.blobs,
            self.manifests,
            self.upload_sessions + self.upload_files
        );
        if self.resumed > 0 {
            line.push_str(&format!(
                "; {} deletions of an interrupted run finished",
                self.resumed
            ));
        }
        if self.stopped {
            line.push_str(" (stopped early; the next run carries on)");
        }
        line
    }
}

/// `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_shows_how_long_each_phase_took() {
        let report = GcReport {
            duration_ms: 12_345,
            phases: [("history", 40), ("mark", 9_800), ("sweep", 2_500)]
                .into_iter()
                .map(|(phase, ms)| PhaseTime {
                    phase: phase.into(),
                    ms,
                })
                .collect(),
            ..GcReport::default()
        };
        assert_eq!(
            report.timing(),
            "took 12.3 s: history 0.0 s, mark 9.8 s, sweep 2.5 s"
        );
        // Reports recorded before phases were timed still read.
        let old: GcReport = serde_json::from_str(
            &serde_json::to_string(&GcReport::default())
                .unwrap()
                .replace(",\"phases\":[]", ""),
        )
        .unwrap();
        assert!(old.phases.is_empty());
    }
}
