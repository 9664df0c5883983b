//! The sweep: deleting the bytes of marked blobs, and the collector's turns with other
//! writers and with the clients this process answers.

use std::time::{Duration, Instant};

use berth_meta::gc::DeletionKind;
use berth_oci::Digest;
use berth_storage::StoredBlob;

use super::{
    CLIENT_REST, DELETE_BATCH, GcSettings, IDLE_TURN, IDLE_TURN_EVERY, PRESENT_POLL, PRESENT_WAIT,
    Run, WRITER_TURN, WRITERS_BUSY_FOR,
};
use crate::errors::{from_meta, from_storage};
use crate::{Registry, Result};

impl Registry {
    /// Deletes the bytes of marked blobs (after the fence) and of those an interrupted run
    /// left being deleted.
    pub(super) async fn sweep(&self, run: &mut Run<'_>, settings: &GcSettings) -> Result<()> {
        run.phase("sweep").await;
        let id = run.report.run.expect("a recorded run");
        // Pushes that raced the mark get this long to cancel it (marks of earlier runs are
        // older than that already).
        let fence = if run.report.marked > 0 {
            settings.fence
        } else {
            Duration::ZERO
        };
        let mut waited = Duration::ZERO;
        while waited < fence && !run.observer.stopping() {
            let step = (fence - waited).min(Duration::from_millis(200));
            tokio::time::sleep(step).await;
            waited += step;
        }
        let fence_ms = settings.fence.as_millis() as i64;
        loop {
            if run.tick().await? {
                return Ok(());
            }
            let began = Instant::now();
            let claimed = self
                .meta
                .claim_blob_deletions(id, berth_meta::now_millis() - fence_ms, DELETE_BATCH)
                .await
                .map_err(from_meta)?;
            self.give_others_a_turn(run, began.elapsed(), false).await;
            if claimed.is_empty() {
                return Ok(());
            }
            let blobs: Vec<StoredBlob> = claimed
                .iter()
                .map(|c| StoredBlob {
                    digest: c.digest.clone(),
                    size: c.size,
                    cid: c.cid.clone(),
                })
                .collect();
            // On failure the whole batch stays "deleting": the next run deletes it again
            // (harmless for what is already gone), and a push of one of those digests waits
            // for that or is told to retry.
            self.blobs
                .delete_blobs(&blobs)
                .await
                .map_err(from_storage)?;
            let digests: Vec<Digest> = claimed.iter().map(|c| c.digest.clone()).collect();
            let began = Instant::now();
            self.meta
                .finish_blob_deletions(id, &digests)
                .await
                .map_err(from_meta)?;
            self.give_others_a_turn(run, began.elapsed(), false).await;
            for claim in &claimed {
                run.report.blobs += 1;
                run.report.bytes += claim.size;
                if claim.kind == DeletionKind::Orphan {
                    run.report.orphans += 1;
                }
            }
        }
    }

    /// After a write transaction of the collector: a pause for writers waiting for what it
    /// locks (see [`Registry::writers_pause`]) and for the clients this process answers,
    /// whichever is longer. While any client request is being answered, the collector works
    /// at most a quarter of the time: it rests three times as long as it worked since its
    /// last rest (at most [`CLIENT_REST`]), so that a collection inside the server leaves the
    /// pulls and pushes it serves their CPU (on 2 cores, a collection at full speed took up
    /// to 45% off a pull of a 64 MiB blob, and resting as long as it worked up to 24%;
    /// bench/README.md, "Collections inside the server leave clients the CPU"). Without
    /// clients it runs at full speed.
    pub(super) async fn give_others_a_turn(
        &self,
        run: &mut Run<'_>,
        held: Duration,
        writers_waited: bool,
    ) {
        let writers = self.writers_pause(run, held, writers_waited).await;
        let clients = self
            .client_activity()
            .serving()
            .then(|| (run.last_turn.elapsed() * 3).min(CLIENT_REST));
        let Some(pause) = writers.max(clients) else {
            tokio::task::yield_now().await;
            return;
        };
        tokio::time::sleep(pause).await;
        run.last_turn = Instant::now();
        // (`None` orders below any rest.)
        if clients > writers {
            run.report.client_rest_ms += pause.as_millis() as u64;
        }
    }

    /// How long to pause for writers waiting for what the collector locks: on SQLite, where
    /// all writers take turns on one lock (also across processes), and on PostgreSQL, where
    /// a mark locks the rows of the repositories holding its blobs:
    ///
    /// - while another writer is at work (SQLite: another process's writer writing, or
    ///   waiting in the busy handler, which polls and holds nothing; PostgreSQL: another
    ///   session in a transaction that wrote, or waiting for a lock), the collector waits
    ///   until it is done, up to [`PRESENT_WAIT`], and then pauses as below: a push's next
    ///   transaction follows within milliseconds (without the pause, each of a push's
    ///   transactions on PostgreSQL met a new batch holding its repository);
    /// - while others were at work, committed, or waited for the transaction
    ///   (`writers_waited`) in the last [`WRITERS_BUSY_FOR`], a pause three times as long
    ///   as the lock was held and at least as long as the busy handler's longest sleep
    ///   between retries, so that the next push gets the lock before the next batch;
    /// - otherwise none, but for one of [`IDLE_TURN`] every [`IDLE_TURN_EVERY`], for writers
    ///   that cannot be seen waiting (a program other than berth): one waits at most that
    ///   long, well within its busy timeout (5 s).
    ///
    /// On SQLite, writers in the collector's own process queue for the one writer
    /// connection in order and need no pause; on PostgreSQL they are sessions like any
    /// other.
    async fn writers_pause(
        &self,
        run: &mut Run<'_>,
        held: Duration,
        writers_waited: bool,
    ) -> Option<Duration> {
        let Ok(Some(others)) = self.meta.other_writers().await else {
            return None;
        };
        let committed = others.commits.is_some_and(|commits| {
            run.others_commits
                .replace(commits)
                .is_some_and(|seen| seen != commits)
        });
        if committed || others.present || writers_waited {
            run.others_writing_until = Some(Instant::now() + WRITERS_BUSY_FOR);
        }
        if others.present {
            let waiting = Instant::now();
            while waiting.elapsed() < PRESENT_WAIT {
                tokio::time::sleep(PRESENT_POLL).await;
                match self.meta.other_writers().await {
                    Ok(Some(others)) if others.present => {}
                    _ => break,
                }
            }
        }
        let others_writing = run
            .others_writing_until
            .is_some_and(|until| Instant::now() < until);
        if others_writing {
            Some((held * 3).max(WRITER_TURN))
        } else if run.last_turn.elapsed() >= IDLE_TURN_EVERY {
            Some(IDLE_TURN)
        } else {
            None
        }
    }
}
