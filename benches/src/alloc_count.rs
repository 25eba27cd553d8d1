//! A global allocator that counts the allocations of the current thread, to
//! show that a walk allocates nothing. Install it in a test or bench binary:
//!
//! ```ignore
//! #[global_allocator]
//! static A: bpfmem_benches::alloc_count::Counting = bpfmem_benches::alloc_count::Counting;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// [`System`], counting `alloc`, `alloc_zeroed` and `realloc` calls per thread.
pub struct Counting;

fn bump() {
    // `try_with`: a thread being torn down has no counter left; nothing to count.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so
// `System`'s guarantees hold; the counter is a thread-local `Cell` that never
// allocates (const-initialised).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: as for `alloc`; `ptr` came from this allocator, i.e. `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations made by this thread so far (0 when [`Counting`] is not the
/// global allocator).
pub fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Allocations `f` made on this thread, and its result.
pub fn count<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = allocations();
    let r = f();
    (allocations() - before, r)
}
