//! htpasswd imports, the audit log, and pruning what has expired.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_meta::{MetaError, now_millis};

use super::validate::valid_name;
use super::{Actor, AdminError, AdminResult, Administration, AuditEntry, Change, HtpasswdImport};
use crate::password::Htpasswd;

impl Administration {
    /// Creates a user for every entry of an htpasswd file (`htpasswd -B`), keeping the bcrypt
    /// hash so that everyone logs in with the password they had. Existing users are skipped,
    /// or get the file's password when `replace_passwords` is set. Nothing is written when the
    /// file itself is malformed.
    pub async fn import_htpasswd(
        &self,
        actor: &Actor,
        text: &str,
        replace_passwords: bool,
    ) -> AdminResult<HtpasswdImport> {
        let operation = if replace_passwords {
            "import htpasswd, replacing passwords"
        } else {
            "import htpasswd"
        };
        self.change(actor, Change::new("htpasswd", operation), async {
            let file = Htpasswd::parse(text).map_err(AdminError::Invalid)?;
            let mut entries: Vec<(&str, &str)> = file.entries().collect();
            entries.sort();
            let mut report = HtpasswdImport::default();
            for (name, hash) in entries {
                if let Err(e) = valid_name("user", name) {
                    report.refused.push(e.to_string());
                    continue;
                }
                match self.store.create_user(name, Some(hash), None, false).await {
                    Ok(()) => report.created.push(name.to_string()),
                    Err(MetaError::Conflict(_)) if replace_passwords => {
                        self.store.set_password(name, hash).await?;
                        report.updated.push(name.to_string());
                    }
                    Err(MetaError::Conflict(_)) => report.skipped.push(name.to_string()),
                    Err(other) => return Err(other.into()),
                }
            }
            Ok(report)
        })
        .await
    }

    /// The newest events first, `limit` of them, older than the event `before` when given.
    pub async fn audit(&self, limit: u32, before: Option<i64>) -> AdminResult<Vec<AuditEntry>> {
        Ok(self
            .store
            .list_audit(limit.clamp(1, 1000), before)
            .await?
            .into_iter()
            .map(|(id, event)| AuditEntry::new(id, event))
            .collect())
    }

    /// Deletes sessions that have expired; returns how many.
    pub async fn prune_sessions(&self, actor: &Actor) -> AdminResult<u64> {
        let change = Change::new("sessions", "delete expired sessions").harmless();
        self.change(actor, change, async {
            Ok(self.store.prune_sessions(now_millis()).await?)
        })
        .await
    }

    /// Deletes audit events older than `retention`; returns how many.
    pub async fn prune_audit(&self, actor: &Actor, retention: Duration) -> AdminResult<u64> {
        let change = Change::new(
            "audit log",
            format!(
                "delete events older than {}",
                humantime::format_duration(retention)
            ),
        )
        .harmless();
        self.change(actor, change, async {
            let cutoff = SystemTime::now()
                .checked_sub(retention)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            Ok(self.store.prune_audit(cutoff).await?)
        })
        .await
    }
}
