//! Process limits set at startup: open files, the connection cap that follows from them, and
//! how the allocator gives large buffers back.

/// Descriptors kept for what is not a client connection: the database pool, blob files being
/// read and written, uploads, the log.
const RESERVED_FILES: u64 = 256;
/// The connection cap when the open-file limit allows more: enough for a busy instance, and
/// a bound on the memory idle connections can take.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// Raises the soft limit on open files to the hard limit (the usual default of 1024 is far
/// below what a registry with many clients needs, and only the hard limit is a decision of
/// the operator). Returns the limit now in force, if it can be read.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "raised the open files limit"
            );
            return Some(raised.rlim_cur);
        }
        tracing::warn!(
            soft = limit.rlim_cur,
            hard = limit.rlim_max,
            "could not raise the open files limit to its hard limit"
        );
    }
    Some(limit.rlim_cur)
}

/// The connection cap when none is configured: what the open-file limit leaves after
/// [`RESERVED_FILES`], at most [`DEFAULT_MAX_CONNECTIONS`], at least 16.
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let from_files = open_files.map_or(DEFAULT_MAX_CONNECTIONS, |files| {
        files.saturating_sub(RESERVED_FILES)
    });
    from_files.clamp(16, DEFAULT_MAX_CONNECTIONS) as usize
}

/// Makes allocations of 16 MiB or more come from (and go back to) the operating system
/// directly. glibc otherwise raises this threshold (up to 32 MiB) after the first such
/// buffer is freed and keeps later ones in per-thread arenas: a burst of password checks
/// (argon2 needs 19 MiB each, on whichever blocking thread runs it) left hundreds of MB
/// resident for good.
///
/// Below 16 MiB, buffers (network reads, upload blocks, S3 parts) are to be reused from the
/// heap. Fixing the mmap threshold also fixes glibc's trim threshold at its default, 128 KiB:
/// every free that left more than that at the top of a heap handed it back to the system
/// (`madvise`), and the next buffer faulted it in again page by page, about a quarter of
/// berth's CPU during a cold pull through the cache. So up to 16 MiB free at the top of each
/// heap is kept, as much as one buffer from the heap can be.
pub fn return_large_allocations_to_the_os() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only sets allocator parameters; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_open_files_limit() {
        assert_eq!(default_max_connections(Some(1024)), 768);
        assert_eq!(default_max_connections(Some(100)), 16);
        assert_eq!(default_max_connections(Some(1 << 20)), 10_000);
        assert_eq!(default_max_connections(None), 10_000);
    }
}
