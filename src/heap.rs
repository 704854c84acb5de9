//! Giving freed heap memory back to the system after a burst.
//!
//! This is the crate's one exception to "no `unsafe`": a single call into
//! glibc. `tests/unsafe_audit.rs` fails if `unsafe` appears anywhere else.
//!
//! Why it is needed: glibc's malloc keeps freed memory in its arenas (one per
//! thread that allocated, up to 8 per core). It gives pages back on its own
//! only from the top of a heap, so after a burst (e.g. 64 web connections of
//! about 30 kB each) the freed buffers in the middle of the arenas stay
//! resident: measured, RssAnon went from 0.76 MB idle to 2.2 MB after a load
//! and stayed there. `malloc_trim(0)` walks every arena and releases every
//! whole free page (`MADV_DONTNEED`), which the automatic trimming never does.
//! `MALLOC_ARENA_MAX` and the trim and mmap thresholds do not help; a second
//! allocator would not fit the size budget.

/// Ask the allocator to give every whole free page back to the system;
/// `true` when it released something.
///
/// It locks each arena while it walks it, so an allocation on another thread
/// waits for that long (about a millisecond for a few MB of heap): call it at
/// a quiet moment, after a burst, never in a loop. A no-op returning `false`
/// where the C library is not glibc (musl keeps little, other systems differ).
#[allow(unsafe_code)]
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim (glibc >= 2.8) takes a plain integer (the pad
        // to leave at the top of the heap), touches no memory of ours and
        // has no preconditions: it takes the arena locks itself, so it is
        // safe to call from any thread at any time. Only free chunks are
        // released; live allocations are never moved or unmapped.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_after_freeing_returns_and_leaves_live_memory_intact() {
        // Many live blocks with freed ones between them: the case trimming
        // is for. The live ones must keep their contents.
        let mut blocks: Vec<Vec<u8>> = (0..512u32).map(|i| vec![i as u8; 16 * 1024]).collect();
        for (i, b) in blocks.iter_mut().enumerate() {
            if i % 2 == 1 {
                *b = Vec::new();
            }
        }
        let released = super::trim();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(released, "freed 4 MB in the middle of the heap");
        }
        for (i, b) in blocks.iter().enumerate().step_by(2) {
            assert!(b.iter().all(|&x| x == i as u8), "block {i} changed");
        }
    }
}
