//! The upkeep jobs `serve` runs under the job runner (see `berth-jobs`): each wraps one
//! domain operation and says what it did.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_auth::admin::{Actor, Administration};
use berth_jobs::{Job, JobContext, JobError, JobSummary};
use berth_registry::Registry;

/// Removes upload sessions and upload files abandoned for longer than `age`.
pub struct UploadPurge {
    pub registry: Arc<Registry>,
    pub age: Duration,
    pub dry_run: bool,
}

#[async_trait]
impl Job for UploadPurge {
    fn name(&self) -> &'static str {
        "upload-purge"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let report = self
            .registry
            .purge_uploads(self.age, self.dry_run)
            .await
            .map_err(JobError::new)?;
        if report.sessions + report.orphans == 0 {
            return Ok(String::new());
        }
        let verb = if self.dry_run {
            "would purge"
        } else {
            "purged"
        };
        Ok(format!(
            "{verb} abandoned uploads: {} sessions, {} orphaned upload files",
            report.sessions, report.orphans
        ))
    }
}

/// Deletes audit events older than the retention (zero keeps them) and expired sessions.
/// Several instances doing it at once is harmless.
pub struct IdentityPrune {
    pub admin: Administration,
    pub audit_retention: Duration,
}

#[async_trait]
impl Job for IdentityPrune {
    fn name(&self) -> &'static str {
        "identity-prune"
    }

    async fn run(&self, _context: &JobContext) -> Result<JobSummary, JobError> {
        let audit = if self.audit_retention.is_zero() {
            0
        } else {
            self.admin
                .prune_audit(&Actor::System, self.audit_retention)
                .await
                .map_err(|e| JobError::new(format!("pruning the audit log: {e}")))?
        };
        let sessions = self
            .admin
            .prune_sessions(&Actor::System)
            .await
            .map_err(|e| JobError::new(format!("pruning expired sessions: {e}")))?;
        if audit + sessions == 0 {
            return Ok(String::new());
        }
        Ok(format!(
            "deleted {audit} audit events past their retention and {sessions} expired sessions"
        ))
    }
}
