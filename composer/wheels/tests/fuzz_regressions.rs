//! Inputs the fuzzers (`tests/fuzz`) once failed on, kept so that each stays a quick error: these
//! wheels declare entries of gigabytes in a kilobyte, and once made the installer reserve that
//! much memory before reading a byte. A counting allocator makes that visible: memory the
//! kernel only promises would not fail the test by itself.

// Test code may make temporary directories under TMPDIR and read its environment (clippy.toml
// forbids it to the library).
#![allow(clippy::disallowed_methods)]
#![expect(unsafe_code, reason = "a global allocator that records the largest request")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[test]
fn wheels_that_once_exhausted_memory_are_refused_cheaply() {
    let dir = tempfile::tempdir().unwrap();
    let store = composer_store::Store::open(&dir.path().join("store")).unwrap();
    let scheme = composer_wheels::install::Scheme::venv("/opt/venv", "3.11");
    let mut seen = 0;
    for input in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-regressions")).unwrap() {
        let path = input.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = composer_wheels::install::install(
            &store,
            std::io::Cursor::new(bytes),
            "x-1.0-py3-none-any.whl",
            true,
            &scheme,
        );
        assert!(result.is_err(), "{} was accepted", path.display());
        seen += 1;
    }
    assert!(seen >= 2);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 128 << 20, "a 1 KiB wheel made the installer ask for {largest} bytes at once");
}
