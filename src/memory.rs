//! How the process uses the C allocator (glibc on Linux; elsewhere these do nothing).
//!
//! Blocks are decoded on worker threads and their events consumed on another. With glibc's
//! default of one arena per thread, memory freed across threads fragments the arenas and
//! peak RSS grew with every stream (793 MB instead of about 360 MB for a cold 11M-span
//! export, at the same speed): one arena serves all threads.

/// Call first thing in `main`, before any other thread exists.
pub fn single_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: only changes a tuning parameter of the allocator; no thread is running yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns the pages freed by a finished stage (building partitions) to the system, so the
/// next stage's peak does not stack on top of them.
pub fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
