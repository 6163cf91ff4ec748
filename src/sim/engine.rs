//! The discrete-time simulator: devices, writers, the flusher and a model of
//! `balance_dirty_pages()`, around the core's [`Domain`] (called unchanged).
//!
//! One [`Sim::step`] advances time by `step_ms`:
//!
//! 1. events due at `t` are applied (through the core's setters);
//! 2. the core's period clock is ticked ([`Domain::tick`]);
//! 3. every bdi's `wb_thresh`/`wb_bg_thresh` is queried ([`Domain::wb_limits`]),
//!    with the global dirty count (dirty + writeback) at `t`;
//! 4. every running writer dirties pages through the step on its own clock,
//!    calling `balance_dirty_pages()` ([`throttle`](super::throttle)) every
//!    `nr_dirtied_pause` pages and sleeping the pauses it returns;
//! 5. each bdi completes writeback at its bandwidth and reports the
//!    completions to the core ([`Domain::writeout_inc`]), then its flusher
//!    moves its oldest dirty pages under writeback while background writeback
//!    runs on it (a chunk of [`writeback_chunk_size`] pages at a time, the
//!    background threshold checked between chunks), a writer of it was
//!    throttled, or kupdate found expired pages;
//! 6. the writers' pages become dirty; every 200 ms the bandwidth estimates,
//!    `dirty_ratelimit` and the domain's `dirty_limit` are updated; every 5 s
//!    kupdate marks the pages dirtied more than 30 s ago.
//!
//! Nothing is allocated per step: all state and the recording are sized up front.

use core::num::NonZeroU64;
use std::collections::VecDeque;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use crate::bdi::{Bdi, BdiId};
use crate::domain::Domain;
use crate::global_limits::{hard_dirty_limit, DirtyLimits};
use crate::policy::Policy;

use super::record::{DevSample, GlobalSample, Recording, WriterSample};
use super::scenario::{Action, Scenario};
use super::throttle::{
    dirty_poll_interval, div_mostly_small, update_dirty_limit, BwEstimate, Divisor, Dtc, MaxPause,
    MinPauseTarget, PosControl, RateLimit, BANDWIDTH_INTERVAL_MS, DIRTY_EXCEEDED_POLL,
    DIRTY_POLL_THRESH, HZ, JIFFY_US, RATELIMIT_CALC_SHIFT, WB_STAT_ERROR,
};
use super::warp::Warp;

/// A run could not go on: the core rejected a setting of the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    /// What failed, with the scenario line.
    pub message: String,
}

impl core::fmt::Display for SimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SimError {}

/// A device's state.
#[derive(Clone, Debug, Default)]
struct Device {
    id: u32,
    /// Bandwidth now, pages/s.
    bw: u64,
    /// Writeback queue depth (pages).
    inflight: u64,
    /// Dirty (reclaimable) pages.
    dirty: u64,
    /// Pages under writeback.
    writeback: u64,
    /// Completed writeback, in total.
    written: u64,
    /// Pages dirtied on this device, in total.
    dirtied: u64,
    /// Pages granted to its writers in the current step, not yet dirty.
    pend: u64,
    /// Unspent writeback capacity, in 1/1000 pages.
    carry: u64,
    /// Whole pages the device completes per step (`bw · step_ms / 1000`)...
    step_pages: u64,
    /// ...and the rest, in 1/1000 pages.
    step_frac: u64,
    est: BwEstimate,
    wb_thresh: u64,
    wb_bg_thresh: u64,
    strict: bool,
    /// `ctl` is set for the current step (by its first running writer).
    ctl_ready: bool,
    /// A writer on this device was throttled in the current step.
    throttled: bool,
    /// A writer on this device dirtied pages in the current step or was in
    /// `balance_dirty_pages()` (throttled, or asleep in a pause).
    writing: bool,
    /// `dirty_ratelimit` and its estimator.
    ratelimit: RateLimit,
    /// The position control of the current step (thresholds, limits and
    /// bandwidth are fixed through phase 4); set by the step's first
    /// running writer on the device.
    // INVARIANT: `ctl` is `PosControl::new` of the `Dtc` with the run's
    // `thresh` and `bg_thresh` and the inputs `ctl_key` (from `Sim::new`
    // on); it is rebuilt only when the fixed inputs of the step differ from
    // `ctl_key`, so that steps with unchanged limits reuse it.
    ctl: PosControl,
    /// The inputs `ctl` was made from.
    ctl_key: CtlKey,
    /// `wb_max_pause()` at the bandwidth estimate.
    // INVARIANT: `MaxPause::new(est.avg)`; `est` only moves in the bandwidth
    // update (`Sim::update_estimates`), which renews it.
    max_pause: MaxPause,
    /// `wb_min_pause()`'s first half for the last `max_pause` seen.
    // INVARIANT: made from the current `est.avg` and
    // `ratelimit.dirty_ratelimit`, which only move in the bandwidth update
    // (`Sim::update_estimates`), which makes it stale; `bdp` checks `max_pause`.
    pause_target: MinPauseTarget,
    /// `pos_ratio` of the last throttled `balance_dirty_pages()` on this
    /// device since the last bandwidth update, if `throttled_since`.
    last_pos_ratio: u64,
    /// A writer was throttled on this device since the last bandwidth
    /// update (a flag beside the other flags rather than an `Option`, whose
    /// tag would take a word of its own).
    throttled_since: bool,
    /// `wb->dirty_exceeded`: writers poll every [`DIRTY_EXCEEDED_POLL`] pages.
    dirty_exceeded: bool,
    /// `dirtied` at the end of each second that ended since kupdate last
    /// looked, with the second's end (ms), oldest first. The flusher takes the oldest
    /// dirty pages, so the first `dirtied - dirty` pages ever dirtied are
    /// the ones submitted: the pages of a second's end that are still dirty
    /// are its count less that, and kupdate needs no list of the dirty pages
    /// by age that every submission would walk.
    // INVARIANT: `dirty == dirtied - (pages submitted)`: `dirty` only grows
    // in the settling of the pages granted, which adds them to `dirtied`
    // too, and only shrinks in `submit`.
    dirtied_by_sec: VecDeque<(u64, u64)>,
    /// `dirtied` at the end of the last second kupdate found expired.
    expired_dirtied: u64,
    /// Pages kupdate found expired at its last wakeup, not yet submitted.
    expired: u64,
    /// Background writeback is running on the wb (`WB_writeback_running`
    /// with a `for_background` work): started by a writer's
    /// `balance_dirty_pages()` or by the flusher's periodic wakeup, it goes
    /// on while `wb_over_bg_thresh()` holds.
    bg_running: bool,
    /// Pages the running background writeback still writes before it checks
    /// `wb_over_bg_thresh()` again (0: at a check).
    chunk_left: u64,
    peak_pinned: u64,
}

impl Device {
    /// Moves `n` of the oldest dirty pages under writeback (`n ≤ dirty`).
    fn submit(&mut self, n: u64) {
        self.dirty -= n;
        self.writeback += n;
        self.expired = self.expired.saturating_sub(n);
    }

    /// Whether background writeback runs on at a check between chunks.
    /// `wb_over_bg_thresh()` (the global count over `bg_thresh`, or the wb's
    /// dirty pages over its `wb_bg_thresh`) keeps it going; what starts it
    /// is a writer's `balance_dirty_pages()` (the global count over, or with
    /// strictlimit the wb's own; a throttled writer always) or the flusher's
    /// periodic wakeup. Expired pages are kupdate's.
    fn background_runs(&self, over_bg_global: bool, wakeup: bool) -> bool {
        let over_bg = over_bg_global || self.dirty > self.wb_bg_thresh;
        // With `over_bg`, a writer's own count is over when the global one
        // is not: it starts the work when either is over exactly with
        // `over_bg_global || strict`.
        let start = self.throttled || wakeup || (self.writing && (over_bg_global || self.strict));
        over_bg && (self.bg_running || start)
    }

    /// The pages granted in the step become dirty.
    fn settle(&mut self) {
        self.dirty += self.pend;
        self.dirtied += self.pend;
        self.pend = 0;
    }

    /// The second that ends at `end` (ms) has ended: keeps `dirtied` of
    /// then for kupdate.
    fn end_second(&mut self, end: u64) {
        self.dirtied_by_sec.push_back((end, self.dirtied));
    }

    /// kupdate's look at the device at `before` (ms, the expiry time ago):
    /// the pages dirtied in the seconds that ended by then and still dirty
    /// are expired. `open_end` is the end of the second of the last step
    /// settled, which has not ended (it can have by `before` when a step is
    /// longer than the expiry time).
    fn mark_expired(&mut self, before: u64, open_end: u64) {
        while let Some(&(end, dirtied)) = self.dirtied_by_sec.front() {
            if end > before {
                break;
            }
            self.expired_dirtied = dirtied;
            self.dirtied_by_sec.pop_front();
        }
        if open_end <= before {
            self.expired_dirtied = self.dirtied;
        }
        // Of those, the first `dirtied - dirty` pages ever dirtied were
        // submitted.
        self.expired = self
            .expired_dirtied
            .saturating_sub(self.dirtied - self.dirty);
    }

    /// Rebuilds `ctl` from the domain's part `domain_ctl` and the device's
    /// inputs `key` (made from the device and `g`, with the dirty counts of
    /// `g` not read), when they differ from `ctl_key`. Out of line: most
    /// steps keep the control, and the rebuild's many inputs would otherwise
    /// be loaded for every step.
    #[cold]
    #[inline(never)]
    fn renew_ctl(&mut self, domain_ctl: &PosControl, g: &GlobalView, key: CtlKey) {
        self.ctl = domain_ctl.with_wb(&dtc(self, g), &self.ctl);
        self.ctl_key = key;
    }

    fn set_bw(&mut self, bw: u64, step_ms: u64) {
        self.bw = bw;
        let per_step = bw.saturating_mul(step_ms);
        self.step_pages = per_step / 1000;
        self.step_frac = per_step % 1000;
    }
}

/// `dirty_expire_centisecs` (30 s): kupdate writes back pages older than this.
pub const DIRTY_EXPIRE_MS: u64 = 30_000;
/// `dirty_writeback_centisecs` (5 s): how often kupdate wakes up.
pub const DIRTY_WRITEBACK_MS: u64 = 5_000;
/// Something done every `MS` ms of simulated time: the ends of the steps
/// that are multiples of `MS`, found without a division per step.
#[derive(Clone, Copy, Debug)]
struct Every<const MS: u64> {
    /// The first multiple of `MS` after the end of the last step: no step
    /// ends on one before it.
    next: u64,
}

impl<const MS: u64> Every<MS> {
    const fn new() -> Self {
        Every { next: MS }
    }

    /// Whether the step that ends at `t_end` (after the last) ends on a
    /// multiple of `MS`.
    fn due(&mut self, t_end: u64) -> bool {
        if t_end < self.next {
            return false;
        }
        self.next = (t_end / MS + 1) * MS;
        t_end % MS == 0
    }
}

/// The flusher's periodic wakeup, every [`DIRTY_WRITEBACK_MS`].
type Wakeup = Every<DIRTY_WRITEBACK_MS>;

/// `DIRTY_SCOPE`: a writeback chunk is at most `dirty_limit / DIRTY_SCOPE`.
const DIRTY_SCOPE: u64 = 8;
/// `MIN_WRITEBACK_PAGES` (4 MiB, the default `s_min_writeback_pages`): a
/// writeback chunk is a multiple of it, and at least one.
const MIN_WRITEBACK_PAGES: u64 = 4096 >> (crate::consts::PAGE_SHIFT - 10);

/// `writeback_chunk_size()` for background writeback (fs/fs-writeback.c):
/// what the flusher writes of an inode before `wb_writeback()` looks at
/// `wb_over_bg_thresh()` again, half a second of the device's estimated
/// bandwidth but at most `dirty_limit / DIRTY_SCOPE`, rounded down to
/// [`MIN_WRITEBACK_PAGES`] after adding one. Once started, background
/// writeback therefore takes the count a chunk below the background
/// threshold, not just under it.
fn writeback_chunk_size(avg_write_bandwidth: u64, dirty_limit: u64) -> u64 {
    let pages = (avg_write_bandwidth / 2).min(dirty_limit / DIRTY_SCOPE);
    (pages + MIN_WRITEBACK_PAGES) / MIN_WRITEBACK_PAGES * MIN_WRITEBACK_PAGES
}

/// What a device's position control is made from besides `thresh` and
/// `bg_thresh`, which are fixed through a run: everything else
/// [`PosControl::new`] reads of a [`Dtc`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct CtlKey {
    /// `hard_dirty_limit()`.
    limit: u64,
    wb_thresh: u64,
    wb_bg_thresh: u64,
    write_bw: u64,
    strict: bool,
}

/// A writer's state: a task that dirties pages at its wanted rate and calls
/// `balance_dirty_pages()` every `nr_dirtied_pause` pages.
#[derive(Clone, Copy, Debug, Default)]
struct Writer {
    dev: usize,
    /// Wanted rate, pages/s.
    rate: u64,
    /// `rate` as a divisor (1 when `rate` is 0, which never divides).
    rate_div: Divisor,
    start: u64,
    stop: u64,
    /// Unspent dirtying credit, in 1/1000000 pages.
    carry: u64,
    dirtied: u64,
    /// Throttled (not free-running) at some call in the current step.
    throttled: bool,
    /// `current->nr_dirtied`: pages since the last call.
    nr_dirtied: u64,
    /// `current->nr_dirtied_pause`: pages between two calls.
    nr_dirtied_pause: u64,
    /// `current->dirty_paused_when` (jiffies), [`NOT_PAUSED`] before the
    /// first pause.
    dirty_paused_when: u64,
    /// Asleep in `balance_dirty_pages()` until this time (µs).
    wake_us: u64,
    /// What the last `balance_dirty_pages()` call left the task to do.
    mode: Mode,
}

/// What a writer does after its last `balance_dirty_pages()` call, beyond
/// dirtying its next `nr_dirtied_pause` pages (one value: the cases exclude
/// each other, and the writer loop tells them apart with one comparison in
/// the common case).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// Dirty, and call again after `nr_dirtied_pause` pages.
    #[default]
    Throttled,
    /// After a pause with `task_ratelimit` 0 the task calls again at once.
    Recheck,
    /// The pipe balance_dirty_pages() leaves open for a wb with almost
    /// nothing dirty: the task may dirty up to `wb_stat_error()`.
    Pipe,
    /// The last call found the task below its freerun ceiling.
    Free,
}

/// [`Writer::dirty_paused_when`] of a task that has not paused yet (no
/// jiffy of a run is this late).
const NOT_PAUSED: u64 = u64::MAX;

/// What every writer of a step sees of the global state.
struct GlobalView {
    thresh: u64,
    bg_thresh: u64,
    hard_limit: u64,
    /// Global dirty + writeback, with the pages granted so far in the step.
    dirty: u64,
}

/// What one `balance_dirty_pages()` call decided.
enum Balance {
    /// Below the freerun ceiling: poll again after this many pages.
    FreeRun,
    /// Throttled, but the pause is shorter than the minimum: go on.
    Continue,
    /// Sleep until this time (µs), always later than the call.
    Sleep(u64),
}

/// The `dirty_throttle_control` of a task on device `d` now.
fn dtc(d: &Device, g: &GlobalView) -> Dtc {
    Dtc {
        thresh: g.thresh,
        bg_thresh: g.bg_thresh,
        dirty_limit: g.hard_limit,
        dirty: g.dirty,
        wb_thresh: d.wb_thresh,
        wb_bg_thresh: d.wb_bg_thresh,
        wb_dirty: d.dirty + d.writeback + d.pend,
        write_bw: d.est.avg,
        strict_limit: d.strict,
    }
}

/// The inputs of device `d`'s position control at the hard limit `limit`.
fn ctl_key(d: &Device, limit: u64) -> CtlKey {
    CtlKey {
        limit,
        wb_thresh: d.wb_thresh,
        wb_bg_thresh: d.wb_bg_thresh,
        write_bw: d.est.avg,
        strict: d.strict,
    }
}

/// `domain_poll_intv()`: a free runner's next `nr_dirtied_pause`.
fn free_poll_interval(d: &Device, g: &GlobalView) -> u64 {
    if d.strict {
        dirty_poll_interval(d.dirty + d.writeback + d.pend, d.wb_thresh)
    } else {
        dirty_poll_interval(g.dirty, g.thresh)
    }
}

impl Writer {
    /// Whether the writer runs at `t`.
    fn running(&self, t: u64) -> bool {
        self.start <= t && t < self.stop
    }

    /// A task that starts (again) has no throttling history.
    fn reset(&mut self) {
        self.carry = 0;
        self.nr_dirtied = 0;
        self.nr_dirtied_pause = DIRTY_POLL_THRESH;
        self.dirty_paused_when = NOT_PAUSED;
        self.wake_us = 0;
        self.mode = Mode::Throttled;
    }

    /// The writer's part of the step `[t0, t1)` (µs) on device `d`: dirty at
    /// the wanted rate, call `balance_dirty_pages()` every
    /// `nr_dirtied_pause` pages, sleep its pauses. Returns the pages dirtied.
    fn run(&mut self, d: &mut Device, g: &mut GlobalView, t0: u64, t1: u64) -> u64 {
        let mut now = t0.max(self.wake_us);
        // The pages dirtied in the step are what `dirtied` gains: counted
        // once at the end, not pass by pass.
        let dirtied0 = self.dirtied;
        while now < t1 {
            if self.mode == Mode::Recheck {
                self.mode = Mode::Throttled;
                now = self.balance(d, g, now, self.nr_dirtied, t1);
                continue;
            }
            if self.rate == 0 {
                break;
            }
            if self.mode == Mode::Free {
                now = self.free_run(d, g, now, t1);
                if now >= t1 {
                    break;
                }
                if self.mode == Mode::Recheck {
                    continue;
                }
            }
            let poll = if d.dirty_exceeded {
                self.nr_dirtied_pause.min(DIRTY_EXCEEDED_POLL)
            } else {
                self.nr_dirtied_pause
            };
            let wb_dirty = d.dirty + d.writeback + d.pend;
            // The step stops where pos_ratio reaches 0 (the hard limit, or
            // wb_thresh with strictlimit): the kernel polls often enough
            // there (dirty_exceeded) not to dirty past it.
            let room = if self.mode == Mode::Pipe {
                WB_STAT_ERROR.saturating_sub(wb_dirty)
            } else if d.strict {
                // wb_position_ratio()'s strictlimit branch lets a wb with
                // fewer than 8 pages go whatever its threshold.
                d.wb_thresh.max(8).saturating_sub(wb_dirty)
            } else {
                g.hard_limit.saturating_sub(g.dirty)
            };
            let target = poll.saturating_sub(self.nr_dirtied).max(1);
            let want = target.min(room);
            if want == 0 {
                // At the limit: the call throttles (or, where nothing can
                // be dirtied at all, the step is over for this task).
                let next = self.balance(d, g, now, self.nr_dirtied, t1);
                if next == now {
                    break;
                }
                now = next;
                continue;
            }
            let budget = self.carry + self.rate * (t1 - now);
            let pages = if budget < want * 1_000_000 {
                // The step ends before the next call.
                self.carry = budget % 1_000_000;
                now = t1;
                budget / 1_000_000
            } else {
                let need = (want * 1_000_000).saturating_sub(self.carry);
                let dt = self.rate_div.divide_ceil(need);
                self.carry = self.carry + self.rate * dt - want * 1_000_000;
                now += dt;
                want
            };
            self.dirtied += pages;
            self.nr_dirtied += pages;
            d.pend += pages;
            g.dirty += pages;
            if now >= t1 {
                break;
            }
            if want < target {
                // Stopped at the limit: no credit is saved up meanwhile.
                self.carry = 0;
            }
            now = self.balance(d, g, now, self.nr_dirtied, t1);
        }
        self.dirtied - dirtied0
    }

    /// A free runner's polls in one go, from `now0` (µs): while every call
    /// finds the task below its freerun ceiling, the only thing a call
    /// decides is the next `nr_dirtied_pause`, so the polls are summed and
    /// the clock and credit advanced once (the same arithmetic as poll by
    /// poll: the credit absorbs each poll's rounding). Stops before a poll
    /// that would not end inside the step or would pass the limit, and makes
    /// the real call when a poll ends above the ceiling. Returns the time.
    fn free_run(&mut self, d: &mut Device, g: &mut GlobalView, now0: u64, t1: u64) -> u64 {
        // Pages whose polls all end strictly before t1.
        let limit = self.carry + self.rate * (t1 - now0 - 1);
        let (mut total, mut last_free, mut throttled_call) = (0u64, None, false);
        // Whether `same_polls` may find polls: after a free poll, and after
        // polls in one go whose last may have changed the interval (else the
        // room, the ceiling or the credit stopped them, and still does).
        let mut batch = false;
        loop {
            let poll = if d.dirty_exceeded {
                self.nr_dirtied_pause.min(DIRTY_EXCEEDED_POLL)
            } else {
                self.nr_dirtied_pause
            };
            let target = poll.saturating_sub(self.nr_dirtied).max(1);
            if batch {
                // Every poll from here that adds `target`, passes, stays free
                // and leaves the next interval at `target`, in one go.
                let n;
                (n, batch) = self.same_polls(d, g, target, limit / 1_000_000 - total);
                if n > 0 {
                    let pages = n * target;
                    total += pages;
                    self.dirtied += pages;
                    d.pend += pages;
                    g.dirty += pages;
                    self.nr_dirtied_pause = free_poll_interval(d, g);
                    last_free = Some(total);
                    continue;
                }
            }
            let wb_dirty = d.dirty + d.writeback + d.pend;
            let room = if d.strict {
                d.wb_thresh.max(8).saturating_sub(wb_dirty)
            } else {
                g.hard_limit.saturating_sub(g.dirty)
            };
            if target > room || (total + target) * 1_000_000 > limit {
                break;
            }
            total += target;
            self.dirtied += target;
            self.nr_dirtied += target;
            d.pend += target;
            g.dirty += target;
            if !d.ctl.freerun(g.dirty, d.dirty + d.writeback + d.pend) {
                throttled_call = true;
                break;
            }
            self.nr_dirtied = 0;
            self.nr_dirtied_pause = free_poll_interval(d, g);
            last_free = Some(total);
            batch = true;
        }
        if total == 0 {
            return now0;
        }
        let carry0 = self.carry;
        let at = |pages: u64| {
            now0 + self
                .rate_div
                .divide_ceil((pages * 1_000_000).saturating_sub(carry0))
        };
        let now = at(total);
        self.carry = carry0 + self.rate * (now - now0) - total * 1_000_000;
        if let Some(pages) = last_free {
            self.dirty_paused_when = at(pages) / JIFFY_US;
        }
        if throttled_call {
            return self.balance(d, g, now, self.nr_dirtied, t1);
        }
        now
    }

    /// How many polls of `target` pages in a row, with `credit` pages left
    /// in the step, the loop of [`Writer::free_run`] would make without
    /// stopping or changing its interval: each must fit below the limit
    /// (the room check) and in the credit, end at or below the freerun
    /// ceiling, and leave `dirty_poll_interval()` where it is for the next
    /// (it is `2^k` while `thresh - dirty >= 4^k`). All of them but the
    /// last leave the interval unchanged; the last may change it. Also
    /// returns whether the interval stopped them: if not, the room, the
    /// ceiling or the credit did, and the next call finds no poll.
    fn same_polls(&self, d: &Device, g: &GlobalView, target: u64, credit: u64) -> (u64, bool) {
        let wb_dirty = d.dirty + d.writeback + d.pend;
        // The count the room, the interval and the ceiling are taken on.
        let (count, cap, top) = if d.strict {
            (wb_dirty, d.wb_thresh.max(8), d.wb_thresh)
        } else {
            (g.dirty, g.hard_limit, g.thresh)
        };
        if top <= count || self.nr_dirtied != 0 {
            return (0, false);
        }
        let k = (top - count).ilog2() >> 1;
        if self.nr_dirtied_pause != 1 << k {
            return (0, false);
        }
        let same_interval = (top - count - (1 << (2 * k))) / target + 1;
        let room = cap.saturating_sub(count) / target;
        let free = d.ctl.freerun_ceiling().saturating_sub(count) / target;
        let n = same_interval.min(room).min(free).min(credit / target);
        (n, n == same_interval)
    }

    /// One `balance_dirty_pages()` call at `now` (µs) after `pages_dirtied`
    /// pages; returns when the task goes on.
    fn balance(
        &mut self,
        d: &mut Device,
        g: &GlobalView,
        now: u64,
        pages_dirtied: u64,
        t1: u64,
    ) -> u64 {
        match self.bdp(d, g, now, pages_dirtied) {
            Balance::FreeRun | Balance::Continue => now,
            Balance::Sleep(until) => {
                // INVARIANT: `until > now`: a pause wakes on a later jiffy,
                // and at least a microsecond on.
                self.wake_us = until;
                until.min(t1)
            }
        }
    }

    fn bdp(&mut self, d: &mut Device, g: &GlobalView, now_us: u64, pages_dirtied: u64) -> Balance {
        // The kernel's clock: jiffies.
        let now = now_us / JIFFY_US;
        let wb_dirty = d.dirty + d.writeback + d.pend;
        // INVARIANT: the task is not at a recheck here (the loop takes it
        // first), so the call decides the whole mode.
        if d.ctl.freerun(g.dirty, wb_dirty) {
            self.mode = Mode::Free;
            self.dirty_paused_when = now;
            self.nr_dirtied = 0;
            self.nr_dirtied_pause = free_poll_interval(d, g);
            return Balance::FreeRun;
        }
        self.mode = Mode::Throttled;
        self.throttled = true;
        d.throttled = true;
        let pos_ratio = d.ctl.position_ratio(g.dirty, wb_dirty);
        d.last_pos_ratio = pos_ratio;
        d.throttled_since = true;
        d.dirty_exceeded = wb_dirty > d.wb_thresh && (g.dirty > g.thresh || d.strict);
        let dirty_ratelimit = d.ratelimit.dirty_ratelimit;
        let task_ratelimit =
            ((u128::from(dirty_ratelimit) * u128::from(pos_ratio)) >> RATELIMIT_CALC_SHIFT) as u64;
        let max_pause = d.max_pause.at(wb_dirty);
        if d.pause_target.max_pause != max_pause {
            d.pause_target = MinPauseTarget::new(d.est.avg, dirty_ratelimit, max_pause);
        }
        let (min_pause, nr_dirtied_pause) = d.pause_target.min_pause(task_ratelimit);
        // period = HZ · pages_dirtied / task_ratelimit; task_ratelimit 0:
        // sleep max_pause and look again.
        let (pause, mut virtual_now) = match div_mostly_small(HZ * pages_dirtied, task_ratelimit) {
            None => (max_pause, now),
            Some(period) => {
                // A task that never paused has no time to catch up on.
                let when = if self.dirty_paused_when == NOT_PAUSED {
                    now
                } else {
                    self.dirty_paused_when
                };
                let pause = period as i64 - (now as i64 - when as i64);
                if pause < min_pause as i64 {
                    if pause < -(HZ as i64) {
                        self.dirty_paused_when = now;
                        self.nr_dirtied = 0;
                    } else if period > 0 {
                        self.dirty_paused_when = when + period;
                        self.nr_dirtied = 0;
                    } else if self.nr_dirtied_pause <= pages_dirtied {
                        self.nr_dirtied_pause += pages_dirtied;
                    }
                    return Balance::Continue;
                }
                let mut pause = pause as u64;
                let mut at = now;
                if pause > max_pause {
                    // For an occasionally dropped task_ratelimit.
                    at += (pause - max_pause).min(max_pause);
                    pause = max_pause;
                }
                (pause, at)
            }
        };
        virtual_now += pause;
        self.dirty_paused_when = virtual_now;
        self.nr_dirtied = 0;
        self.nr_dirtied_pause = nr_dirtied_pause;
        if task_ratelimit == 0 {
            self.mode = if wb_dirty <= WB_STAT_ERROR {
                Mode::Pipe
            } else {
                Mode::Recheck
            };
        }
        // io_schedule_timeout() wakes on a jiffy, after `now_us`: a pause is
        // at least one jiffy (`max_pause` and `min_pause` are, see
        // `pauses_are_at_least_a_jiffy`).
        Balance::Sleep((now + pause) * JIFFY_US)
    }
}

/// Conservation counters of a run at one instant, in pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pages dirtied since the start.
    pub dirtied: u64,
    /// Dirty (not yet under writeback).
    pub dirty: u64,
    /// Under writeback.
    pub writeback: u64,
    /// Written back.
    pub written: u64,
}

/// One simulation of one scenario under one policy.
pub struct Sim<'s, 'a> {
    sc: &'s Scenario,
    policy: Policy,
    dom: Domain<'a>,
    /// The domain's clock on recorded period boundaries
    /// ([`Scenario::period_boundaries_s`]); `None`: simulated time.
    warp: Option<Warp>,
    /// Periods the domain has declared ([`Domain::tick`]).
    periods: u64,
    lim: DirtyLimits,
    dirty_limit: u64,
    /// `hard_dirty_limit()`.
    // INVARIANT: `hard_dirty_limit(dirty_limit, lim.thresh)`; `dirty_limit`
    // only moves in the bandwidth update (`Sim::update_estimates`), which
    // renews it.
    hard_limit: u64,
    /// The domain-wide part of the devices' position controls
    /// ([`PosControl::domain`]).
    // INVARIANT: made from `lim` (fixed through the run) and the hard limit
    // `domain_ctl.limit()`; renewed at the start of phase 4 when the hard
    // limit has moved.
    domain_ctl: PosControl,
    now: u64,
    steps_done: u64,
    /// The run's length in steps ([`Scenario::steps`], kept: no division per step).
    steps: u64,
    /// Steps until the next recording (every `sample_ms / step_ms` steps).
    until_sample: u64,
    next_event: usize,
    /// When the next event is due (ms; `u64::MAX`: no event left).
    // INVARIANT: `sc.events[next_event].at_ms`, or `u64::MAX` past the last.
    next_event_ms: u64,
    devices: Vec<Device>,
    writers: Vec<Writer>,
    nr_dirty: u64,
    nr_writeback: u64,
    last_step_dirtied: u64,
    max_step_dirtied: u64,
    /// The end (ms) of the second of the last step settled; a step at or
    /// after it ends the second.
    second_end: u64,
    wakeup: Wakeup,
    /// The bandwidth update, every [`BANDWIDTH_INTERVAL_MS`].
    bandwidth: Every<BANDWIDTH_INTERVAL_MS>,
    peak_dirty: u64,
    peak_over_limit: i64,
    /// Σ over throttled steps of T − Σ wb_thresh, in pages (T and the step
    /// length dt are constant in a run, so the share is this · dt /
    /// (T · throttled_ms)).
    unused_acc: u128,
    /// Steps in which some writer was throttled (`throttled_ms` / dt).
    throttled_steps: u64,
    rec: Recording,
}

impl<'s, 'a> Sim<'s, 'a> {
    /// The slots a domain for this scenario needs.
    pub fn slots(sc: &Scenario) -> Vec<Bdi> {
        vec![Bdi::EMPTY; sc.devices.len()]
    }

    /// Sets up the machine at time 0: adds every device to a fresh domain in
    /// `slots` and applies its settings.
    pub fn new(sc: &'s Scenario, policy: Policy, slots: &'a mut [Bdi]) -> Result<Self, SimError> {
        let lim = sc.limits();
        let mut dom = Domain::new(slots, sc.domain_config(policy));
        dom.update_dirty_limit(lim.thresh);
        let mut devices = Vec::with_capacity(sc.devices.len());
        for d in &sc.devices {
            let id = dom.add_bdi().map_err(|e| SimError {
                message: format!("{}: device {:?}: {e}", sc.origin, d.name),
            })?;
            for &a in &d.settings {
                a.apply(&mut dom, id, &lim).map_err(|e| SimError {
                    message: format!("{}:{}: device {:?}: {a}: {e}", sc.origin, d.line, d.name),
                })?;
            }
            let mut dev = Device {
                id: id.0,
                inflight: d.inflight,
                strict: d.settings.iter().rev().find_map(|a| match a {
                    Action::StrictLimit(on) => Some(*on),
                    _ => None,
                }) == Some(true),
                // At most one entry per second of the run: no reallocation.
                dirtied_by_sec: VecDeque::with_capacity((sc.duration_ms / 1000 + 2) as usize),
                ..Device::default()
            };
            dev.set_bw(d.bandwidth, sc.step_ms);
            devices.push(dev);
        }
        let writers = sc
            .writers
            .iter()
            .map(|w| {
                let rate = w.rate.unwrap_or(sc.max_rate);
                Writer {
                    dev: w.device,
                    rate,
                    rate_div: Divisor::new(NonZeroU64::new(rate).unwrap_or(NonZeroU64::MIN)),
                    start: w.start_ms,
                    stop: w.stop_ms.unwrap_or(u64::MAX),
                    nr_dirtied_pause: DIRTY_POLL_THRESH,
                    dirty_paused_when: NOT_PAUSED,
                    ..Writer::default()
                }
            })
            .collect();
        let warp = (!sc.period_boundaries_s.is_empty()).then(|| {
            let mut w = Warp::new(sc.period_ms);
            w.push(&sc.period_boundaries_s);
            w
        });
        let mut sim = Sim {
            sc,
            policy,
            dom,
            warp,
            periods: 0,
            lim,
            dirty_limit: lim.thresh,
            hard_limit: hard_dirty_limit(lim.thresh, lim.thresh),
            domain_ctl: PosControl::domain(
                lim.thresh,
                lim.bg_thresh,
                lim.thresh,
                &PosControl::default(),
            ),
            now: 0,
            steps_done: 0,
            steps: sc.steps(),
            until_sample: 0,
            next_event: 0,
            next_event_ms: sc.events.first().map_or(u64::MAX, |e| e.at_ms),
            devices,
            writers,
            nr_dirty: 0,
            nr_writeback: 0,
            last_step_dirtied: 0,
            max_step_dirtied: 0,
            second_end: 1000,
            wakeup: Wakeup::new(),
            bandwidth: Every::new(),
            peak_dirty: 0,
            peak_over_limit: i64::MIN,
            unused_acc: 0,
            throttled_steps: 0,
            rec: Recording::new(sc),
        };
        let g = GlobalView {
            thresh: lim.thresh,
            bg_thresh: lim.bg_thresh,
            hard_limit: sim.hard_limit,
            dirty: 0,
        };
        for d in sim.devices.iter_mut() {
            d.ctl_key = ctl_key(d, g.hard_limit);
            d.ctl = sim.domain_ctl.with_wb(&dtc(d, &g), &d.ctl);
        }
        if sim.warp.is_some() {
            // The first recorded boundary ends the first period.
            sim.arm_period_clock(0);
        }
        Ok(sim)
    }

    /// The time the domain is given for simulated time `t` (ms): `t`, or on recorded
    /// boundaries the [`Warp`]'s model time. A domain clock that aging stopped is armed
    /// again at the latest boundary, so that its periods stay on the recorded grid.
    #[inline(always)]
    fn domain_time(&mut self, t: u64) -> u64 {
        if self.warp.is_none() {
            return t;
        }
        self.warped_time(t)
    }

    /// [`Sim::domain_time`] on recorded boundaries.
    #[inline(never)]
    fn warped_time(&mut self, t: u64) -> u64 {
        let Some(w) = self.warp.as_mut() else {
            return t;
        };
        let base = w.base();
        let m = w.model_time(t);
        let new_base = w.base();
        if new_base != base && self.dom.period_deadline().is_none() {
            self.arm_period_clock(new_base);
        }
        m
    }

    /// Arms the domain's period clock at domain time `at` (a completion of no page).
    fn arm_period_clock(&mut self, at: u64) {
        if let Some(d) = self.devices.first() {
            self.dom.writeout_inc(BdiId(d.id), 0, at);
        }
    }

    /// Simulated time (ms).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Whether the run has reached its duration.
    pub fn done(&self) -> bool {
        self.steps_done >= self.steps
    }

    /// The global limits.
    pub fn limits(&self) -> DirtyLimits {
        self.lim
    }

    /// The hard limit now: `max(thresh, dirty_limit)`.
    pub fn hard_limit(&self) -> u64 {
        self.hard_limit
    }

    /// Global dirty pages (dirty + writeback).
    pub fn global_dirty(&self) -> u64 {
        self.nr_dirty + self.nr_writeback
    }

    /// Pages the writers dirtied in the last step.
    pub fn last_step_dirtied(&self) -> u64 {
        self.last_step_dirtied
    }

    /// Conservation counters of device `i`.
    pub fn device_counts(&self, i: usize) -> Counts {
        let d = &self.devices[i];
        Counts {
            dirtied: d.dirtied,
            dirty: d.dirty,
            writeback: d.writeback,
            written: d.written,
        }
    }

    /// Periods the domain has declared so far (the counts halved once per period).
    pub fn periods(&self) -> u64 {
        self.periods
    }

    /// Number of devices.
    pub fn n_devices(&self) -> usize {
        self.devices.len()
    }

    /// Whether device `i` has `strict_limit` now.
    pub fn device_strict(&self, i: usize) -> bool {
        self.devices[i].strict
    }

    /// Conservation counters summed over devices, and the writers' total.
    pub fn counts(&self) -> (Counts, u64) {
        let mut c = Counts::default();
        for d in &self.devices {
            c.dirtied += d.dirtied;
            c.dirty += d.dirty;
            c.writeback += d.writeback;
            c.written += d.written;
        }
        let by_writers = self.writers.iter().map(|w| w.dirtied).sum();
        (c, by_writers)
    }

    /// Runs to the end and returns the recording.
    pub fn run(mut self) -> Result<Recording, SimError> {
        while !self.done() {
            self.step()?;
        }
        Ok(self.finish())
    }

    /// The recording so far, with the run's totals.
    pub fn finish(mut self) -> Recording {
        self.rec.policy = Some(self.policy);
        self.rec.peak_dirty = self.peak_dirty;
        self.rec.peak_over_limit = self.peak_over_limit;
        self.rec.max_step_dirtied = self.max_step_dirtied;
        let dt = self.sc.step_ms;
        let throttled_ms = self.throttled_steps * dt;
        let unused_acc = self.unused_acc * u128::from(dt);
        let denom = u128::from(self.lim.thresh) * u128::from(throttled_ms);
        self.rec.unused_share = (denom > 0).then(|| unused_acc as f64 / denom as f64);
        self.rec.throttled_ms = throttled_ms;
        self.rec.elapsed_ms = self.now;
        self.rec.peak_pinned = self.devices.iter().map(|d| d.peak_pinned).collect();
        self.rec.writer_dirtied = self.writers.iter().map(|w| w.dirtied).collect();
        self.rec
    }

    /// Advances one step, phase by phase as the [module docs](crate::sim::engine) list them.
    pub fn step(&mut self) -> Result<(), SimError> {
        let t = self.now;
        let dt = self.sc.step_ms;
        self.apply_events(t)?;
        let t_dom = self.domain_time(t);
        self.periods += u64::from(self.dom.tick(t_dom));
        let sum_wb_thresh = self.query_limits();
        let (step_dirtied, any_throttled) = self.balance_dirty_pages(t);
        if any_throttled {
            let unused = self.lim.thresh.saturating_sub(sum_wb_thresh);
            self.unused_acc += u128::from(unused);
            self.throttled_steps += 1;
        }
        // Recording of the state at t (limits of t, counts of t), when
        // t % sample_ms == 0.
        if self.until_sample == 0 {
            self.record(t, sum_wb_thresh, any_throttled);
            self.until_sample = (self.sc.sample_ms / dt).max(1);
        }
        self.until_sample -= 1;
        let t_end = t + dt;
        let wakeup = self.complete_and_flush(t_end);
        self.settle_dirtied(t, step_dirtied);
        if self.bandwidth.due(t_end) {
            self.update_estimates(t_end);
        }
        if wakeup {
            self.kupdate(t_end);
        }
        let g = self.global_dirty();
        self.peak_dirty = self.peak_dirty.max(g);
        self.peak_over_limit = self
            .peak_over_limit
            .max(g as i64 - self.hard_limit() as i64);

        self.now = t_end;
        self.steps_done += 1;
        if self.done() && self.now % self.sc.sample_ms == 0 {
            // The final state, so that the recording covers [0, duration].
            self.record_final();
        }
        Ok(())
    }

    /// Phase 1: the events due at `t`, through the core's setters.
    fn apply_events(&mut self, t: u64) -> Result<(), SimError> {
        if self.next_event_ms > t {
            return Ok(());
        }
        while let Some(e) = self.sc.events.get(self.next_event) {
            if e.at_ms > t {
                self.next_event_ms = e.at_ms;
                return Ok(());
            }
            let d = &mut self.devices[e.device];
            match e.action {
                Action::Bandwidth(bw) => d.set_bw(bw, self.sc.step_ms),
                a => {
                    if let Action::StrictLimit(on) = a {
                        d.strict = on;
                    }
                    a.apply(&mut self.dom, BdiId(d.id), &self.lim)
                        .map_err(|err| SimError {
                            message: format!(
                                "{}:{}: event at {} s on {:?}: {a}: {err}",
                                self.sc.origin,
                                e.line,
                                e.at_ms as f64 / 1000.0,
                                self.sc.devices[e.device].name
                            ),
                        })?;
                }
            }
            self.next_event += 1;
        }
        self.next_event_ms = u64::MAX;
        Ok(())
    }

    /// Phase 3: every bdi's `wb_thresh`/`wb_bg_thresh` from the core at the
    /// global dirty count of now; returns `Σ wb_thresh`.
    fn query_limits(&mut self) -> u64 {
        let gdirty = self.global_dirty();
        let mut sum_wb_thresh: u64 = 0;
        for d in self.devices.iter_mut() {
            let l = self.dom.wb_limits(BdiId(d.id), &self.lim, gdirty);
            d.wb_thresh = l.wb_thresh;
            d.wb_bg_thresh = l.wb_bg_thresh;
            sum_wb_thresh = sum_wb_thresh.saturating_add(l.wb_thresh);
            d.ctl_ready = false;
            d.throttled = false;
            d.writing = false;
        }
        sum_wb_thresh
    }

    /// Phase 4: every running writer dirties pages through the step,
    /// throttled by `balance_dirty_pages()`. Writers go one after the other
    /// and see the pages granted before them in this step. Returns the pages
    /// granted and whether any writer was throttled.
    fn balance_dirty_pages(&mut self, t: u64) -> (u64, bool) {
        let mut global = GlobalView {
            thresh: self.lim.thresh,
            bg_thresh: self.lim.bg_thresh,
            hard_limit: self.hard_limit(),
            dirty: self.global_dirty(),
        };
        if self.domain_ctl.limit() != global.hard_limit {
            self.domain_ctl = PosControl::domain(
                global.thresh,
                global.bg_thresh,
                global.hard_limit,
                &self.domain_ctl,
            );
        }
        let (t0, t1) = (t * 1000, (t + self.sc.step_ms) * 1000);
        let mut any_throttled = false;
        let mut step_dirtied = 0u64;
        for w in self.writers.iter_mut() {
            w.throttled = false;
            if !w.running(t) {
                w.reset();
                continue;
            }
            let d = &mut self.devices[w.dev];
            // A writer asleep through the step (`Writer::run` starts at
            // `max(t0, wake_us) ≥ t1`) makes no call and needs no control.
            if !d.ctl_ready && w.wake_us < t1 {
                // What the control reads (limits, thresholds, bandwidth
                // estimate) is fixed through this phase; the dirty counts
                // granted by the writers before are not read.
                let key = ctl_key(d, global.hard_limit);
                if d.ctl_key != key {
                    d.renew_ctl(&self.domain_ctl, &global, key);
                }
                d.ctl_ready = true;
            }
            let pages = w.run(d, &mut global, t0, t1);
            // A pause that ends after t0 was slept (at least partly) in
            // this step.
            d.writing |= pages > 0 || w.throttled || w.wake_us > t0;
            step_dirtied += pages;
            any_throttled |= w.throttled;
        }
        // Activity for the Lend policy: a writer dirtying or in
        // balance_dirty_pages(); and the pages each device holds (dirty,
        // under writeback, or granted in this step), which a lender keeps.
        // (The core ignores both reports under the other policies.)
        // A count the core has already been given is not given again: the
        // core keeps it per bdi and a lender's report moves the pool only
        // by the difference, so that report would change nothing.
        if self.policy == Policy::Lend {
            for d in &self.devices {
                if d.writing {
                    self.dom.note_active(BdiId(d.id));
                }
                let held = d.dirty + d.writeback + d.pend;
                if self.dom.bdi(BdiId(d.id)).map(Bdi::held) != Some(held) {
                    self.dom.note_held(BdiId(d.id), held);
                }
            }
        }
        (step_dirtied, any_throttled)
    }

    /// Phase 5: each device completes writeback at its bandwidth and reports
    /// it to the core; then its flusher moves dirty pages under writeback
    /// while background writeback runs (started by a writer's
    /// `balance_dirty_pages()` or the periodic wakeup, kept going by
    /// `wb_over_bg_thresh()`), a writer of it was throttled, or kupdate found
    /// expired pages. Returns whether the step ends on the flusher's
    /// periodic wakeup (every [`DIRTY_WRITEBACK_MS`], also kupdate's).
    fn complete_and_flush(&mut self, t_end: u64) -> bool {
        let over_bg_global = self.nr_dirty > self.lim.bg_thresh;
        let wakeup = self.wakeup.due(t_end);
        let dirty_limit = self.dirty_limit;
        let t_dom = self.domain_time(t_end);
        for d in self.devices.iter_mut() {
            // Capacity of the step: bw·dt/1000 pages, the fraction carried
            // in 1/1000 pages (precomputed: no division per step).
            let mut frac = d.carry + d.step_frac;
            let mut cap = d.step_pages;
            if frac >= 1000 {
                frac -= 1000;
                cap += 1;
            }
            let done = cap.min(d.writeback);
            d.carry = if done < d.writeback { frac } else { 0 };
            if done > 0 {
                d.writeback -= done;
                d.written += done;
                self.dom.writeout_inc(BdiId(d.id), done, t_dom);
            }
            // wb_writeback(): the work looks at wb_over_bg_thresh() before
            // each chunk, not while it writes one.
            if d.chunk_left == 0 {
                d.bg_running = d.background_runs(over_bg_global, wakeup);
                if d.bg_running {
                    d.chunk_left = writeback_chunk_size(d.est.avg, dirty_limit);
                }
            }
            if d.bg_running || d.throttled || d.expired > 0 {
                let room = d.dirty.min(d.inflight.saturating_sub(d.writeback));
                // Background writeback alone stops at the chunk's end.
                let submit = if d.throttled || d.expired > 0 {
                    room
                } else {
                    room.min(d.chunk_left)
                };
                d.submit(submit);
                // A chunk ends early when the wb has nothing dirty left.
                d.chunk_left = if d.dirty == 0 {
                    0
                } else {
                    d.chunk_left.saturating_sub(submit)
                };
            }
        }
        wakeup
    }

    /// Phase 6a: the pages granted in this step become dirty; the global
    /// counts and the peaks per device follow.
    fn settle_dirtied(&mut self, t: u64, step_dirtied: u64) {
        if t >= self.second_end {
            self.end_second(t);
        }
        let mut nr_dirty = 0;
        let mut nr_writeback = 0;
        for d in self.devices.iter_mut() {
            // Nothing granted, nothing to settle; and the pages a device
            // holds only grow here (completions take from them, submissions
            // move them from dirty to writeback), so the peak stays.
            if d.pend > 0 {
                d.settle();
                d.peak_pinned = d.peak_pinned.max(d.dirty + d.writeback);
            }
            nr_dirty += d.dirty;
            nr_writeback += d.writeback;
        }
        self.nr_dirty = nr_dirty;
        self.nr_writeback = nr_writeback;
        self.last_step_dirtied = step_dirtied;
        self.max_step_dirtied = self.max_step_dirtied.max(step_dirtied);
    }

    /// The second that ends at `second_end` has ended (the step at `t` is
    /// in a later one): every device keeps its `dirtied` count of then for
    /// kupdate.
    #[inline(never)]
    fn end_second(&mut self, t: u64) {
        for d in self.devices.iter_mut() {
            d.end_second(self.second_end);
        }
        self.second_end = (t / 1000 + 1) * 1000;
    }

    /// Phase 6c, every `dirty_writeback_centisecs`: kupdate
    /// (`wb_check_old_data_flush()`) marks the pages dirtied more than
    /// `dirty_expire_centisecs` ago for writeback, whatever the thresholds:
    /// the pages dirtied in the seconds that ended by then that are still
    /// dirty ([`Device::mark_expired`]). Out of line: it runs once in 5 s,
    /// not every step.
    #[inline(never)]
    fn kupdate(&mut self, t_end: u64) {
        let Some(before) = t_end.checked_sub(DIRTY_EXPIRE_MS) else {
            return;
        };
        for d in self.devices.iter_mut() {
            d.mark_expired(before, self.second_end);
        }
    }

    /// Phase 6b, every `BANDWIDTH_INTERVAL`: `update_dirty_limit()` and each
    /// device's write bandwidth estimate. Out of line: it runs once in 200 ms,
    /// not every step, and its registers and stack are not the step's.
    #[inline(never)]
    fn update_estimates(&mut self, t_end: u64) {
        let g = self.global_dirty();
        self.dirty_limit = update_dirty_limit(self.dirty_limit, self.lim.thresh, g);
        self.hard_limit = hard_dirty_limit(self.dirty_limit, self.lim.thresh);
        let (thresh, bg_thresh, hard_limit) =
            (self.lim.thresh, self.lim.bg_thresh, self.hard_limit());
        for d in self.devices.iter_mut() {
            // A throttled task updates dirty_ratelimit with the bandwidth
            // (__wb_update_bandwidth(gdtc, true)); every update restamps.
            if core::mem::take(&mut d.throttled_since) {
                let pos_ratio = d.last_pos_ratio;
                let dtc = Dtc {
                    thresh,
                    bg_thresh,
                    dirty_limit: hard_limit,
                    dirty: g,
                    wb_thresh: d.wb_thresh,
                    wb_bg_thresh: d.wb_bg_thresh,
                    wb_dirty: d.dirty + d.writeback,
                    write_bw: d.est.avg,
                    strict_limit: d.strict,
                };
                let elapsed = t_end.saturating_sub(d.est.time_stamp);
                d.ratelimit.update(&dtc, pos_ratio, d.dirtied, elapsed);
            }
            d.ratelimit.dirtied_stamp = d.dirtied;
            // wb_bandwidth_estimate_start() looks at inodes under writeback
            // (`writeback_inodes`), not dirty ones: a wb whose pages only wait
            // for the flusher is idle. The update after its writeback ended
            // (`wb_inode_writeback_end()`'s delayed one) still counts what
            // completed since the last.
            let busy = d.writeback > 0 || d.written != d.est.written_stamp;
            d.est.update(t_end, d.written, busy);
            d.max_pause = MaxPause::new(d.est.avg);
            // write_bw and dirty_ratelimit may have moved.
            d.pause_target = MinPauseTarget::STALE;
        }
    }

    fn record(&mut self, t: u64, sum_wb_thresh: u64, throttled: bool) {
        self.rec.global.push(GlobalSample {
            t_ms: t,
            thresh: self.lim.thresh,
            bg_thresh: self.lim.bg_thresh,
            hard_limit: self.hard_limit(),
            dirty: self.nr_dirty,
            writeback: self.nr_writeback,
            sum_wb_thresh,
            throttled,
        });
        for d in &self.devices {
            self.rec.devs.push(DevSample {
                wb_thresh: d.wb_thresh,
                wb_bg_thresh: d.wb_bg_thresh,
                dirty: d.dirty,
                writeback: d.writeback,
                written: d.written,
                bw_est: d.est.avg,
                bw: d.bw,
            });
        }
        for w in &self.writers {
            self.rec.writers.push(WriterSample {
                dirtied: w.dirtied,
                throttled: w.throttled,
            });
        }
    }

    fn record_final(&mut self) {
        let t = self.now;
        let gdirty = self.global_dirty();
        let mut sum = 0u64;
        let lim = self.lim;
        for d in self.devices.iter_mut() {
            let l = self.dom.wb_limits(BdiId(d.id), &lim, gdirty);
            d.wb_thresh = l.wb_thresh;
            d.wb_bg_thresh = l.wb_bg_thresh;
            sum = sum.saturating_add(l.wb_thresh);
        }
        let throttled = self.writers.iter().any(|w| w.throttled);
        self.record(t, sum, throttled);
    }
}

/// Runs `sc` under `policy` from start to end.
pub fn run(sc: &Scenario, policy: Policy) -> Result<Recording, SimError> {
    let mut slots = Sim::slots(sc);
    let sim = Sim::new(sc, policy, &mut slots)?;
    sim.run()
}

#[cfg(test)]
mod tests {
    use super::super::throttle::xorshift64;
    use super::*;
    use proptest::prelude::*;

    /// The dirty pages by the second they were dirtied in, oldest first, with
    /// the flusher taking the oldest and kupdate summing those of the seconds
    /// that ended before the expiry time: the list that `Device` does without.
    #[derive(Default)]
    struct PagesByAge {
        ages: VecDeque<(u64, u64)>,
        expired: u64,
    }

    impl PagesByAge {
        fn submit(&mut self, n: u64) {
            self.expired = self.expired.saturating_sub(n);
            let mut left = n;
            while left > 0 {
                let front = self.ages.front_mut().expect("no more than the dirty pages");
                let take = front.1.min(left);
                front.1 -= take;
                left -= take;
                if front.1 == 0 {
                    self.ages.pop_front();
                }
            }
        }

        fn dirtied(&mut self, sec: u64, pages: u64) {
            match self.ages.back_mut() {
                Some(back) if back.0 == sec => back.1 += pages,
                _ if pages > 0 => self.ages.push_back((sec, pages)),
                _ => {}
            }
        }

        fn kupdate(&mut self, before: u64) {
            self.expired = self
                .ages
                .iter()
                .take_while(|(sec, _)| (sec + 1) * 1000 <= before)
                .map(|(_, pages)| pages)
                .sum();
        }
    }

    #[test]
    fn background_writeback_starts_and_stops_like_the_kernel() {
        for bits in 0u32..128 {
            let on = |k: u32| bits & (1 << k) != 0;
            let (over_bg_global, wakeup) = (on(0), on(1));
            let d = Device {
                bg_running: on(2),
                throttled: on(3),
                writing: on(4),
                strict: on(5),
                dirty: if on(6) { 11 } else { 10 },
                wb_bg_thresh: 10,
                ..Device::default()
            };
            // wb_over_bg_thresh() keeps it going; a throttled writer, a
            // writer over the global or (strictlimit) its own background
            // threshold, or the periodic wakeup over either, starts it.
            let over_bg = over_bg_global || d.dirty > d.wb_bg_thresh;
            let start = d.throttled
                || (d.writing && (over_bg_global || (d.strict && d.dirty > d.wb_bg_thresh)))
                || (wakeup && over_bg);
            assert_eq!(
                d.background_runs(over_bg_global, wakeup),
                (d.bg_running || start) && over_bg,
                "{bits:07b}"
            );
        }
    }

    #[test]
    fn wakeup_is_due_at_the_step_ends_that_are_multiples_of_its_interval() {
        for step_ms in [
            1, 7, 10, 300, 1000, 1700, 2500, 4999, 5000, 7000, 12_500, 45_000,
        ] {
            let mut w = Wakeup::new();
            let mut due = 0;
            for k in 1..=20_000 {
                let t_end = k * step_ms;
                let is_due = w.due(t_end);
                assert_eq!(
                    is_due,
                    t_end % DIRTY_WRITEBACK_MS == 0,
                    "{step_ms} ms steps, at {t_end} ms"
                );
                due += u64::from(is_due);
            }
            assert!(due > 0, "{step_ms} ms steps");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// kupdate finds the same expired pages from the `dirtied` counts at
        /// the seconds' ends as from the list of the dirty pages by age, for
        /// any pages granted and submitted per step, with steps shorter and
        /// longer than a second and than the expiry time.
        #[test]
        fn expired_pages_from_the_counts_are_those_of_the_list(
            step_ms in prop::sample::select(vec![7u64, 100, 300, 1000, 1700, 5000, 45_000]),
            steps in prop::collection::vec((0u64..3000, 0u64..=1000), 1..6000),
        ) {
            let mut d = Device::default();
            let mut list = PagesByAge::default();
            let mut second_end = 1000;
            for (k, &(granted, permille)) in steps.iter().enumerate() {
                let t = k as u64 * step_ms;
                let t_end = t + step_ms;
                // Phase 5: the flusher takes some of the dirty pages...
                let n = d.dirty * permille / 1000;
                d.submit(n);
                list.submit(n);
                prop_assert_eq!(d.expired, list.expired);
                // ...phase 6a: the pages granted become dirty...
                if t >= second_end {
                    d.end_second(second_end);
                    second_end = (t / 1000 + 1) * 1000;
                }
                d.pend = granted;
                d.settle();
                list.dirtied(t / 1000, granted);
                prop_assert_eq!(d.dirty, list.ages.iter().map(|a| a.1).sum::<u64>());
                // ...phase 6c: kupdate.
                if t_end % DIRTY_WRITEBACK_MS == 0 {
                    if let Some(before) = t_end.checked_sub(DIRTY_EXPIRE_MS) {
                        d.mark_expired(before, second_end);
                        list.kupdate(before);
                        prop_assert_eq!(d.expired, list.expired, "at {} ms", t_end);
                    }
                }
            }
        }
    }

    /// A task's control inputs with background thresholds at half the
    /// thresholds and the hard limit `slack` above `thresh` (dirty counts 0).
    fn test_dtc(thresh: u64, slack: u64, wb_thresh: u64, write_bw: u64, strict: bool) -> Dtc {
        Dtc {
            thresh,
            bg_thresh: thresh / 2,
            dirty_limit: thresh + slack,
            wb_thresh,
            wb_bg_thresh: wb_thresh / 2,
            write_bw,
            strict_limit: strict,
            ..Dtc::default()
        }
    }

    /// [`Writer::free_run`] looks for polls in one go again only where the
    /// interval stopped the last ones: if the room, the freerun ceiling or
    /// the credit did, the interval is still the same and the next look
    /// finds none.
    #[test]
    fn polls_in_one_go_not_stopped_by_the_interval_leave_none() {
        let mut rng = xorshift64(0x9e37_79b9_7f4a_7c15);
        let mut next = |below: u64| rng() % below;
        let (mut stopped_by_interval, mut stopped_otherwise) = (0, 0);
        for _ in 0..200_000 {
            let scale = 6 + next(16);
            let thresh = 64 + next(1 << scale);
            let wb_thresh = next(thresh + 1);
            let strict = next(2) == 0;
            let dtc = test_dtc(thresh, next(thresh / 4 + 1), wb_thresh, 0, strict);
            let top = if strict { wb_thresh } else { thresh };
            let mut d = Device {
                dirty: next(top + 1),
                writeback: next(top / 4 + 1),
                pend: next(64),
                wb_thresh,
                wb_bg_thresh: wb_thresh / 2,
                strict,
                dirty_exceeded: next(4) == 0,
                ctl: PosControl::new(&dtc),
                ..Device::default()
            };
            let mut g = GlobalView {
                thresh,
                bg_thresh: dtc.bg_thresh,
                hard_limit: dtc.limit(),
                dirty: d.dirty + d.writeback + d.pend + next(thresh / 2 + 1),
            };
            let mut w = Writer {
                nr_dirtied_pause: free_poll_interval(&d, &g),
                ..Writer::default()
            };
            let target_of = |w: &Writer, d: &Device| {
                let poll = if d.dirty_exceeded {
                    w.nr_dirtied_pause.min(DIRTY_EXCEEDED_POLL)
                } else {
                    w.nr_dirtied_pause
                };
                poll.max(1)
            };
            let target = target_of(&w, &d);
            let scale = next(20);
            let credit = next(1 << scale);
            let (n, by_interval) = w.same_polls(&d, &g, target, credit);
            if n == 0 {
                continue;
            }
            // The polls made, as free_run makes them.
            d.pend += n * target;
            g.dirty += n * target;
            let pause = w.nr_dirtied_pause;
            w.nr_dirtied_pause = free_poll_interval(&d, &g);
            if by_interval {
                stopped_by_interval += 1;
                continue;
            }
            stopped_otherwise += 1;
            assert_eq!(w.nr_dirtied_pause, pause, "{n} polls of {target}");
            let target = target_of(&w, &d);
            assert_eq!(
                w.same_polls(&d, &g, target, credit - n * target),
                (0, false),
                "after {n} polls of {target}"
            );
        }
        assert!(stopped_by_interval > 1000 && stopped_otherwise > 1000);
    }

    /// A throttled call's pause ends after the call (on a later jiffy, and
    /// at least a microsecond on), so [`Writer::balance`] returns a time
    /// past `now` without taking the larger of the two.
    #[test]
    fn a_pause_ends_after_the_call() {
        let mut rng = xorshift64(0x2545_f491_4f6c_dd1d);
        let mut next = |below: u64| rng() % below;
        let mut sleeps = 0;
        for _ in 0..100_000 {
            let thresh = 64 + next(1 << 20);
            let wb_thresh = next(thresh + 1);
            let strict = next(2) == 0;
            let write_bw = next(1 << 18);
            let dtc = test_dtc(thresh, next(thresh / 4 + 1), wb_thresh, write_bw, strict);
            let mut d = Device {
                dirty: next(2 * thresh),
                writeback: next(thresh / 4 + 1),
                pend: next(64),
                wb_thresh,
                wb_bg_thresh: wb_thresh / 2,
                strict,
                ctl: PosControl::new(&dtc),
                max_pause: MaxPause::new(write_bw),
                ..Device::default()
            };
            d.est.avg = write_bw;
            d.ratelimit.dirty_ratelimit = 1 + next(1 << 16);
            let g = GlobalView {
                thresh,
                bg_thresh: dtc.bg_thresh,
                hard_limit: dtc.limit(),
                dirty: d.dirty + d.writeback + d.pend + next(thresh + 1),
            };
            // On a jiffy or between two.
            let now_us = next(1 << 28) * JIFFY_US + next(2) * next(JIFFY_US);
            let mut w = Writer {
                nr_dirtied: next(1 << 12),
                nr_dirtied_pause: 1 + next(1 << 12),
                dirty_paused_when: if next(2) == 0 {
                    NOT_PAUSED
                } else {
                    (now_us / JIFFY_US).saturating_sub(next(1 << 10))
                },
                ..Writer::default()
            };
            if let Balance::Sleep(until) = w.bdp(&mut d, &g, now_us, w.nr_dirtied) {
                assert!(until > now_us, "{until} at {now_us}");
                sleeps += 1;
            }
        }
        assert!(sleeps > 10_000, "{sleeps}");
    }
}
