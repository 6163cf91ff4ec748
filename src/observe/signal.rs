//! Ctrl-C / SIGTERM / SIGHUP: set a flag that the sampling loop and the writers poll, so that
//! `crosscheck` always gets to its cleanup.

use std::format;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;

use super::error::{ObserveError, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicU32 = AtomicU32::new(0);
static INSTALLED: OnceLock<std::result::Result<(), std::string::String>> = OnceLock::new();

/// Installs the handler (once per process; later calls return the first result).
pub fn install() -> Result<()> {
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                INTERRUPTED.store(true, Ordering::SeqCst);
                let n = SIGNALS.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    std::eprintln!("\ndirtylimit: interrupted, cleaning up");
                } else {
                    std::eprintln!("dirtylimit: still cleaning up (the cleanup restores settings and detaches devices; let it finish)");
                }
            })
            .map_err(|e| format!("{e}"))
        })
        .clone()
        .map_err(|e| ObserveError::Other(format!("cannot install the signal handler: {e}")))
}

/// Whether Ctrl-C / SIGTERM / SIGHUP arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a signal arrived.
pub fn check() -> Result<()> {
    if interrupted() {
        Err(ObserveError::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps `d`, waking every 50 ms to check for a signal.
pub fn sleep(d: std::time::Duration) -> Result<()> {
    let end = std::time::Instant::now() + d;
    loop {
        check()?;
        let now = std::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(std::time::Duration::from_millis(50)));
    }
}
