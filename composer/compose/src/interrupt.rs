//! Signals during a build. The first SIGINT, SIGTERM or SIGHUP asks the build to stop where it
//! can stop cleanly: its running sandboxes are killed, no step starts, every build directory is
//! removed, and the store keeps only what was finished and verified. A second one ends the
//! process at once, for a step that will not stop (a long download).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use signal_hook::SigId;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));
static SIGNAL: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// What the library watches ([`composer_planner::Context::interrupted`]); only set while a
/// [`Catch`] lives.
pub fn flag() -> &'static AtomicBool {
    &STOP
}

/// While it lives, the signals ask the build to stop instead of ending the process; after it,
/// they act as they did before.
pub struct Catch(Vec<SigId>);

impl Catch {
    pub fn signals() -> Catch {
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            // In this order: the second signal finds the flag already set and ends the process
            // with the status a shell gives a process that signal killed.
            let code = 128 + signal;
            ids.extend(signal_hook::flag::register_conditional_shutdown(signal, code, Arc::clone(&STOP)).ok());
            ids.extend(signal_hook::flag::register_usize(signal, Arc::clone(&SIGNAL), signal as usize).ok());
            ids.extend(signal_hook::flag::register(signal, Arc::clone(&STOP)).ok());
        }
        Catch(ids)
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        for id in self.0.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The exit status of a run a signal stopped: 128 plus the signal's number, as a shell reports
/// a process that signal killed.
pub fn exit_status() -> Option<u8> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(u8::try_from(128 + signal).unwrap_or(u8::MAX)),
    }
}
