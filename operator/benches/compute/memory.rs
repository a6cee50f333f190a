//! How much memory a phase takes: a counting allocator (bytes the process holds through the
//! allocator, and their high-water mark since the last reset), and the kernel's resident-set
//! figures (`VmRSS`, and `VmHWM` reset through `/proc/self/clear_refs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes held and their peak.
pub(crate) struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// The bench allocates from one thread, so plain loads and stores keep the counts exact; locked
// read-modify-write instructions would add a tenth to the time of the load they measure.
fn grew(bytes: usize) {
    let held = HELD.load(Ordering::Relaxed) + bytes;
    HELD.store(held, Ordering::Relaxed);
    if held > PEAK.load(Ordering::Relaxed) {
        PEAK.store(held, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    HELD.store(HELD.load(Ordering::Relaxed).saturating_sub(bytes), Ordering::Relaxed);
}

// SAFETY: every call is passed to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        moved
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Bytes held through the allocator now, in MiB.
pub(crate) fn held_mib() -> f64 {
    HELD.load(Ordering::Relaxed) as f64 / MIB
}

/// The most held since the last [`reset_peaks`], in MiB.
pub(crate) fn peak_mib() -> f64 {
    PEAK.load(Ordering::Relaxed) as f64 / MIB
}

/// Starts both high-water marks (the allocator's and the kernel's `VmHWM`) from what is held now.
pub(crate) fn reset_peaks() {
    PEAK.store(HELD.load(Ordering::Relaxed), Ordering::Relaxed);
    // "5" resets the peak resident set size to the current one (Linux 4.0 and later).
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset VmHWM ({error}); the RSS peak counts from the process's start");
    }
}

/// A field of `/proc/self/status` in MiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
