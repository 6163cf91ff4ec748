//! `dirtylimit observe` / `crosscheck`: the model against the running kernel (issue 6). std only.
//!
//! * [`parse`]: the kernel's text formats (`/proc/vmstat`, debugfs bdi `stats`/`wb_stats`,
//!   the `/sys/class/bdi/*/` knobs).
//! * [`sysfs`]: reading them from a root directory (`/` or a captured tree).

pub mod error;
pub mod parse;
pub mod sysfs;

pub use error::{ObserveError, Result};
