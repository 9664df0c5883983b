//! Process settings made at startup.

/// Makes allocations of 16 MiB or more come from (and go back to) the operating system
/// directly. glibc otherwise raises this threshold (up to 32 MiB) after the first such
/// buffer is freed and keeps later ones in per-thread arenas: a burst of password checks
/// (argon2 needs 19 MiB each, on whichever blocking thread runs it) left hundreds of MB
/// resident for good. Below 16 MiB nothing changes: upload blocks (1 MiB) and S3 parts
/// (10 MiB by default) keep being reused from the heap.
pub fn return_large_allocations_to_the_os() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        }
    }
}
