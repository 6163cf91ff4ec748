//! Mixed-writer simulator (std only).
//!
//! A deterministic discrete-time model of a machine whose writers dirty pages
//! on several backing devices, throttled by a model of `balance_dirty_pages()`
//! and limited per device by the core's [`Domain`](crate::domain::Domain),
//! which the simulator calls unchanged: [`Domain::wb_limits`] for `wb_thresh`
//! and `wb_bg_thresh`, [`Domain::writeout_inc`] for every completion,
//! [`Domain::tick`] for the period clock, [`Domain::note_active`] for a
//! bdi whose writer dirtied pages, was throttled or slept in a pause in the
//! step, and [`Domain::note_held`] with every bdi's dirty and writeback
//! pages (the `Lend` policy's inputs; docs/lending.md says why these). Each
//! scenario runs under all four
//! [`Policy`](crate::policy::Policy) values from the same inputs.
//!
//! [`Domain::wb_limits`]: crate::domain::Domain::wb_limits
//! [`Domain::writeout_inc`]: crate::domain::Domain::writeout_inc
//! [`Domain::tick`]: crate::domain::Domain::tick
//! [`Domain::note_active`]: crate::domain::Domain::note_active
//! [`Domain::note_held`]: crate::domain::Domain::note_held
//!
//! # Scenario files
//!
//! TOML; sizes in MiB (of 4 KiB pages), rates in MiB/s, times in seconds.
//! Unknown fields are errors.
//!
//! ```toml
//! name = "usb-beside-ssd"          # required: letters, digits, - _ .
//! title = "A slow USB stick ..."   # optional, plot titles
//! description = "..."              # optional
//! duration_s = 60                  # required
//! step_ms = 10                     # optional, simulation step (default 10)
//! sample_ms = 100                  # optional, recording interval (default 100, multiple of step_ms)
//! period_ms = 3000                 # optional, proportion period (default 3000)
//! period_boundaries_s = [2.6, 5.7]  # optional, where periods end (a recorded kernel's; `replay`)
//! max_rate_mib_s = 2048            # optional, speed of "as fast as allowed" writers
//!
//! [memory]                         # required: either
//! dirtyable_mib = 4096             #   dirtyable memory directly, or
//! # free_mib, reserve_mib, file_lru_mib  (dirtyable = free - reserve + file LRU)
//!
//! [vm]                             # optional, the vm.dirty_* sysctls
//! dirty_ratio = 20                 # or dirty_bytes
//! dirty_background_ratio = 10      # or dirty_background_bytes
//!
//! [[device]]                       # one or more
//! name = "usb"
//! bandwidth_mib_s = 10             # writeback speed (0 = never completes)
//! count = 1                        # optional: n devices usb-0 .. usb-(n-1), drawn as one group
//! inflight_ms = 100                # optional: writeback queue depth, in ms of the peak bandwidth
//! min_ratio = 0                    # optional, percent; or min_ratio_fine (ppm) or min_bytes
//! max_ratio = 100                  # optional, percent; or max_ratio_fine (ppm) or max_bytes
//! strict_limit = false             # optional
//!
//! [[writer]]                       # zero or more
//! name = "cp-usb"
//! device = "usb"                   # a device; a group gives one writer per member
//! rate_mib_s = 50                  # optional: omitted = as fast as allowed
//! start_s = 0                      # optional
//! stop_s = 30                      # optional (exclusive)
//!
//! [[event]]                        # zero or more
//! at_s = 20
//! device = "usb"                   # a device or a group
//! bandwidth_mib_s = 0              # any of: bandwidth_mib_s, min_ratio, max_ratio,
//! label = "usb stalls"             #   min/max_ratio_fine, min/max_bytes, strict_limit
//! ```
//!
//! Settings go through the core's setters, so they are validated as the
//! kernel validates them (a `min_ratio` sum reaching 100% is rejected, with
//! the line of the setting).
//!
//! # Simplifications
//!
//! Compared with mm/page-writeback.c (and fs/fs-writeback.c):
//!
//! - **Time.** The machine moves in steps of `step_ms` (10 ms): limits are
//!   queried, devices complete writeback and flushers submit once per step.
//!   Inside a step each writer runs on its own clock (µs, the kernel's
//!   jiffies at [`HZ`](throttle::HZ) = 250 for everything
//!   `balance_dirty_pages()` computes): it dirties at its wanted rate, calls
//!   `balance_dirty_pages()` every `nr_dirtied_pause` pages (8 while its wb
//!   is `dirty_exceeded`), and sleeps the pauses that call returns. Writers
//!   are evaluated one after the other within a step and see the pages
//!   granted before them. A task does not dirty past the point where its
//!   `pos_ratio` is 0 (the hard limit, or `wb_thresh` with strictlimit, which
//!   lets a wb with fewer than 8 pages go), as the kernel's frequent polling
//!   there would stop it; so global dirty passes the hard limit by at most
//!   one step's dirtying, except through strictlimit bdis below their own
//!   freerun ceiling, which the kernel does not throttle whatever the global
//!   count.
//! - **Rate limit.** As mm/page-writeback.c: a free-running task polls again
//!   after `dirty_poll_interval()` pages; a throttled one goes at
//!   `task_ratelimit = dirty_ratelimit × pos_ratio` with the kernel's pause
//!   arithmetic (`period`, `dirty_paused_when` with its catch-up and reset
//!   rules, `wb_min_pause()`, `wb_max_pause()`, `MAX_PAUSE`, a recheck after
//!   a pause with `task_ratelimit` 0, the `wb_stat_error()` pipe).
//!   `dirty_ratelimit` starts at `INIT_BW` and follows
//!   `wb_update_dirty_ratelimit()` (balanced rate, step limits) every 200 ms
//!   in which a task on the wb was throttled, with the `pos_ratio` of the last
//!   throttled call; the kernel runs it from that call itself. The write
//!   bandwidth estimate follows `wb_update_write_bandwidth()` (200 ms
//!   updates, 4096 ms smoothing, the second `avg` filter, `INIT_BW` =
//!   100 MiB/s) from the simulated completions; a bdi without dirty or
//!   writeback pages only moves its stamps, as
//!   `wb_bandwidth_estimate_start()` does after 1 s idle. Per-CPU
//!   `ratelimit_pages` and `dirty_throttle_leaks` are not modelled (no task
//!   exits mid-run, one CPU's worth of writers).
//! - **Position control** is `wb_position_ratio()` as in mainline since 6.13:
//!   the global cubic `pos_ratio_polynom()` around `setpoint = (freerun +
//!   limit)/2`, the per-wb linear control line with its 1/4 floor and the
//!   wb reserve area, or the strictlimit branch (`wb_dirty < 8`, `wb_dirty >=
//!   wb_thresh`, `min(pos_ratio, wb_pos_ratio)`). The idle-device floor of
//!   `wb_thresh` is the core's (it moved into `__wb_calc_thresh()` in 6.13);
//!   the same throttling model is used under all four policies, so only the
//!   allocation differs (2.6.24's own throttling loop is not modelled).
//! - **Freerun and hard limit.** `domain_dirty_freerun()` exactly
//!   (`(thresh + bg_thresh)/2`, or the wb's own ceiling with strictlimit);
//!   `hard_dirty_limit()` with `dirty_limit` following `update_dirty_limit()`
//!   every 200 ms. When `pos_ratio` is 0 a task dirties nothing, except on a
//!   wb with at most `wb_stat_error()` (32 pages with 2 CPUs) dirty, the
//!   "pipe" balance_dirty_pages() leaves open. No `PF_LOCAL_THROTTLE`, no
//!   memcg domains, no `dirty_exceeded` polling changes, no laptop mode.
//! - **Flusher.** Background writeback of a bdi starts as the kernel starts
//!   it: from `balance_dirty_pages()` of a writer on it when the global
//!   dirty count (without writeback) is above `bg_thresh` (with strictlimit
//!   also when the bdi's dirty pages are above its `wb_bg_thresh`), from a
//!   throttled writer always, or at the flusher's periodic wakeup (every
//!   5 s, `dirty_writeback_centisecs`, aligned for all bdis where the kernel
//!   rearms it per wb) when `wb_over_bg_thresh()` holds. Once started it
//!   goes on while `wb_over_bg_thresh()` holds (global dirty above
//!   `bg_thresh`, or the bdi's dirty pages above its `wb_bg_thresh`; that is
//!   the core's, the bdi's `wb_thresh` share of `bg_thresh`, where the
//!   kernel recomputes `__wb_calc_thresh(bg_thresh)`; checked for every bdi
//!   as the kernel does). So a bdi over its own `wb_bg_thresh` alone waits
//!   for the wakeup, as in the kernel, where that clause only keeps a
//!   running writeback going. The flusher keeps
//!   up to a queue depth (`inflight_ms` of the peak bandwidth, at least 1 MiB)
//!   under writeback, oldest pages first, and the device completes at its
//!   bandwidth. kupdate wakes every 5 s (`dirty_writeback_centisecs`) and has
//!   every page dirtied more than 30 s ago (`dirty_expire_centisecs`) written
//!   back, by page age in whole seconds where the kernel goes by inode
//!   (`dirtied_when`).
//! - **Accounting.** The global dirty count is dirty + writeback of all
//!   bdis (`NR_FILE_DIRTY + NR_WRITEBACK`); FUSE's old `NR_WRITEBACK_TEMP`
//!   is not separate. Dirtyable memory is constant during a run (dirty pages
//!   are page cache, already in the file LRU). Per-CPU counter drift is
//!   ignored except for the pipe above. Completions reach the core once per
//!   step per bdi (`writeout_inc(id, n)`), not page by page; the capped add of
//!   the Linux policy saturates exactly, so batching changes nothing there.
//!
//! # Metrics
//!
//! See [`record::metrics`]: convergence of every `wb_thresh` to within 5% (at
//! least 0.1% of `T`) of its steady value (the mean over the last 20% of the
//! interval to the next change); the unused share `(T − Σ wb_thresh)/T`
//! averaged over the steps in which some writer is throttled; writer
//! throughput; peak pinned pages per device; peak global dirty vs the hard
//! limit.

pub mod builtin;
#[cfg(feature = "cli")]
pub mod cli;
pub mod engine;
#[cfg(feature = "cli")]
pub mod plot;
pub mod record;
pub mod report;
pub mod scenario;
pub mod scenario_file;
pub mod throttle;
pub mod warp;

pub use builtin::{all_builtin, builtin, BUILTIN};
pub use engine::{run, Counts, Sim, SimError};
pub use record::{metrics, Metrics, Recording};
pub use scenario::Scenario;
pub use scenario_file::ScenarioError;
pub use warp::Warp;
