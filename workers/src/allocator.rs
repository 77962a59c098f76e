//! The allocator's settings, applied by both binaries before anything is allocated.
//! The workspace's only `unsafe`: a call into the C library behind the global allocator,
//! made from a constructor that runs before `main`.
#![allow(unsafe_code)]

// Links mimalloc's library (and the symbols below) into every binary using this crate.
extern crate mimalloc as _;

/// mimalloc's `mi_option_arena_eager_commit` (its position in `mi_option_e`, mimalloc.h).
const ARENA_EAGER_COMMIT: i32 = 4;

unsafe extern "C" {
    // Part of the mimalloc library the global allocator links; the Rust bindings expose
    // it only with a feature that needs another crate.
    fn mi_option_set(option: i32, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: i32) -> std::ffi::c_long;
}

/// Commits arena memory as it is used rather than up front, so memory freed after a
/// burst (a first sync's batches, a page of analyses) goes back to the system: on Linux
/// mimalloc's default commits its arenas eagerly, and the API then kept its peak (see
/// BENCHMARKS.md, sync). It must run before the first allocation, which reserves the
/// first arena with the setting of that moment; the standard library allocates before
/// `main`, so the binaries call it from a constructor ([`crate::tune_allocator!`]). Set
/// this way, it takes precedence over `MIMALLOC_ARENA_EAGER_COMMIT` in the environment.
///
/// # Safety
/// Only while the process has a single thread (mimalloc's option setter is not
/// thread-safe): public only for [`crate::tune_allocator!`]'s constructor.
#[doc(hidden)]
pub unsafe extern "C" fn tune() {
    // SAFETY: sets an integer option of the allocator; the caller runs it single-threaded.
    unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

/// Registers [`tune`] to run before `main` (and before the standard library's first
/// allocation). Expanded in each binary, whose objects the linker always keeps.
#[macro_export]
macro_rules! tune_allocator {
    () => {
        #[cfg(target_os = "linux")]
        #[used]
        #[allow(unsafe_code)]
        #[unsafe(link_section = ".init_array")]
        static TUNE_ALLOCATOR: unsafe extern "C" fn() = $crate::allocator::tune;
    };
}

#[cfg(test)]
mod tests {
    crate::tune_allocator!();

    #[test]
    #[cfg(target_os = "linux")]
    fn the_constructor_set_mimallocs_eager_arena_commit_off() {
        // mimalloc's default for this option is 2 ("where the system overcommits"); the
        // constructor ran before the test harness, and a wrong option index would read
        // another option's value, none of which the constructor touched.
        // SAFETY: reads an integer option.
        let value = unsafe { super::mi_option_get(super::ARENA_EAGER_COMMIT) };
        assert_eq!(value, 0);
    }
}
