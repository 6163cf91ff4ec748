//! `dirtylimit observe` / `crosscheck`: the model against the running kernel. std only.
//!
//! * [`parse`]: the kernel's text formats (`/proc/vmstat`, debugfs bdi `stats`/`wb_stats`,
//!   the `/sys/class/bdi/*/` knobs).
//! * [`sysfs`]: reading them from a root directory (`/` or a captured tree).
//! * [`model`]: feeding observed completions into the core (`Linux` model and the
//!   `Redistribute` counterfactual) and predicting `BdiDirtyThresh`.
//! * [`run`]: `dirtylimit observe` (sampling loop, live table, CSV).
//! * [`crosscheck`]: `dirtylimit crosscheck` (loop devices, FUSE, writers in phases, scoring),
//!   with [`lab`] (resources and their cleanup), [`fusefs`] (the FUSE test server) and
//!   [`signal`] (Ctrl-C/SIGTERM).
//! * [`replay`]: a `crosscheck` recording re-run in the simulator, side by side.
//! * [`trace`]: the kernel's period boundaries from the `timer:timer_expire_entry` tracepoint.

pub mod crosscheck;
pub mod error;
pub mod fusefs;
pub mod lab;
pub mod model;
pub mod parse;
pub mod replay;
pub mod run;
pub mod signal;
pub mod sysfs;
pub mod trace;

pub use crosscheck::{run_crosscheck, CrosscheckOptions};
pub use error::{ObserveError, Result};
pub use run::{run_observe, ObserveOptions};
