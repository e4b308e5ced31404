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

/// The global allocator: the system's, with large blocks backed by huge pages where the system
/// offers them on request (Linux's default "madvise" mode). A large export fills hundreds of
/// megabytes of fresh tables and buffers: with 4 KiB pages the kernel took a page fault for
/// each (122,000 for a million log entries and measures, a fifth of the export's time); with
/// 2 MiB pages, about 10,000.
pub struct Allocator;

/// Blocks of at least this size are advised; smaller ones are not worth a system call.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ADVISED_BYTES: usize = 4 << 20;

// SAFETY: every call is passed on to the system allocator unchanged; `madvise(MADV_HUGEPAGE)`
// changes only how the kernel backs the pages of the block, never their contents or validity.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { std::alloc::System.alloc(layout) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { std::alloc::System.alloc_zeroed(layout) };
        advise_huge_pages(block, layout.size());
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(block, layout) }
    }

    unsafe fn realloc(
        &self,
        block: *mut u8,
        layout: std::alloc::Layout,
        new_size: usize,
    ) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { std::alloc::System.realloc(block, layout, new_size) };
        advise_huge_pages(block, new_size);
        block
    }
}

/// Asks for huge pages for the whole 2 MiB pages inside a large block.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu")),
    allow(unused_variables)
)]
fn advise_huge_pages(block: *mut u8, size: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !block.is_null() && size >= ADVISED_BYTES {
        const HUGE_PAGE: usize = 2 << 20;
        let start = (block as usize).next_multiple_of(HUGE_PAGE);
        let end = (block as usize + size) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: the range lies within a block the allocator just handed out; the advice
            // is a hint (an error, e.g. where huge pages are off, changes nothing).
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}
