//! Whether a process other than this one is writing to the same SQLite database, or waiting
//! to.
//!
//! SQLite's busy handler polls: a writer that finds the write lock taken sleeps (1 ms at
//! first, up to 100 ms between tries) and holds nothing meanwhile, so the holder of the lock
//! cannot see it waiting, and a collector that takes the lock again at once starves it. So
//! every berth process holds a shared `flock` on `<database>-writers` while its writer
//! connection is in use (from the pool handing it out until it comes back, which includes
//! the busy handler's waiting), and the garbage collector asks whether any other process
//! holds one ([`WriterPresence::others`]). A process's own lock never counts: `flock` locks
//! belong to the open file, and asking converts this process's lock.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Mutex;

use rustix::fs::{FlockOperation, flock};

pub(crate) struct WriterPresence {
    /// `None` where the file could not be opened: then nobody is ever seen.
    file: Option<File>,
    /// Whether this process's writer connection is out of the pool (it has one connection,
    /// so the pool's hooks alternate), guarding the lock operations on `file`.
    in_use: Mutex<bool>,
}

impl WriterPresence {
    /// The presence file of the database at `database`.
    pub(crate) fn open(database: &Path) -> WriterPresence {
        let mut name = database.as_os_str().to_owned();
        name.push("-writers");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .inspect_err(|e| {
                tracing::warn!(error = %e, file = ?name, "cannot open the SQLite writers' presence file; the garbage collector will not see waiting writers of other processes");
            })
            .ok();
        WriterPresence {
            file,
            in_use: Mutex::new(false),
        }
    }

    /// This process's writer connection is out of the pool (writing, or waiting to).
    pub(crate) fn enter(&self) {
        self.set(true);
    }

    /// It is back.
    pub(crate) fn leave(&self) {
        self.set(false);
    }

    fn set(&self, in_use: bool) {
        let Some(file) = &self.file else { return };
        let mut current = self.in_use.lock().expect("not poisoned");
        if *current != in_use {
            *current = in_use;
            let operation = if in_use {
                FlockOperation::LockShared
            } else {
                FlockOperation::Unlock
            };
            // Only ever waits for another process's probe, which holds the lock for two
            // system calls.
            if let Err(e) = flock(file, operation) {
                tracing::debug!(error = %e, "flock on the SQLite writers' presence file");
            }
        }
    }

    /// Whether another process's writer connection is in use now.
    pub(crate) fn others(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let in_use = self.in_use.lock().expect("not poisoned");
        // Converting this process's own lock (if any) to an exclusive one: possible exactly
        // when no other open file holds one. A conversion that fails has dropped the old
        // lock (flock(2)); both ways it is put back as it was.
        let others = flock(file, FlockOperation::NonBlockingLockExclusive).is_err();
        let restore = if *in_use {
            FlockOperation::LockShared
        } else {
            FlockOperation::Unlock
        };
        if let Err(e) = flock(file, restore) {
            tracing::debug!(error = %e, "flock on the SQLite writers' presence file");
        }
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_is_seen_by_other_processes_but_not_by_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("berth.db");
        // Two opens of the file stand for two processes: flock locks belong to the open file.
        let server = WriterPresence::open(&database);
        let collector = WriterPresence::open(&database);
        assert!(!collector.others() && !server.others());

        server.enter();
        assert!(collector.others(), "the server's writer is in use");
        assert!(!server.others(), "a process does not see itself");
        // Asking did not take the server's lock away.
        assert!(collector.others());

        collector.enter();
        assert!(collector.others() && server.others());
        server.leave();
        assert!(!collector.others());
        assert!(server.others());
        collector.leave();
        assert!(!server.others() && !collector.others());
    }
}
