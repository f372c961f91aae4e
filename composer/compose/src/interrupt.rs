//! Signals. One thread takes SIGINT, SIGTERM and SIGHUP for the whole process.
//!
//! While a build runs (a [`Catch`] lives), the first one asks it to stop where it can stop
//! cleanly: its running sandboxes are killed, no step starts, every build directory is removed,
//! and the store keeps only what was finished and verified. Any other signal (the first outside
//! a build, a second during one, for a step that will not stop) ends the process at once, after
//! removing every temp file and directory it staged beside a user's paths (a bundle, a layout,
//! a lock, a wheel index: [`composer_store::staging`]); what it staged in the store is `gc`'s.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);
static COOPERATIVE: AtomicBool = AtomicBool::new(false);
static ENDING: AtomicBool = AtomicBool::new(false);

/// Starts the thread that takes the signals. Until it has registered them, or if it cannot,
/// they act as on any program: that leaves nothing half-written, only temp files.
pub fn install() {
    let _ = std::thread::Builder::new().name("signals".into()).spawn(|| {
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        for signal in signals.forever() {
            if COOPERATIVE.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
                SIGNAL.store(signal as usize, Ordering::SeqCst);
                continue;
            }
            end(signal);
        }
    });
}

fn end(signal: i32) -> ! {
    // Before anything is removed: an error that the removal causes in another thread is not
    // the run's outcome (see exit_status).
    ENDING.store(true, Ordering::SeqCst);
    SIGNAL.store(signal as usize, Ordering::SeqCst);
    // Held until the process is gone: no other thread makes or publishes a staged path after
    // they were removed.
    let _abandoned = composer_store::staging::abandon_all();
    std::process::exit(128 + signal)
}

/// What the library watches ([`composer_planner::Context::interrupted`]); only set while a
/// [`Catch`] lives.
pub fn flag() -> &'static AtomicBool {
    &STOP
}

/// While it lives, the first signal asks the build to stop instead of ending the process.
pub struct Catch(());

impl Catch {
    pub fn signals() -> Catch {
        COOPERATIVE.store(true, Ordering::SeqCst);
        Catch(())
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        COOPERATIVE.store(false, Ordering::SeqCst);
    }
}

/// The exit status of a run a signal stopped: 128 plus the signal's number, as a shell reports
/// a process that signal killed. When the signal thread is ending the process itself, this
/// waits for it to.
pub fn exit_status() -> Option<u8> {
    if ENDING.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(u8::try_from(128 + signal).unwrap_or(u8::MAX)),
    }
}
