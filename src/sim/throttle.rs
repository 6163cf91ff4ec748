//! A model of `balance_dirty_pages()` (mm/page-writeback.c): how fast a task
//! that dirties pages on one bdi may go, given the dirty counts and limits.
//!
//! The per-bdi limits (`wb_thresh`, `wb_bg_thresh`) come from the core's
//! [`Domain`](crate::domain::Domain); this module only turns them into a
//! rate, with the kernel's integer arithmetic where it matters
//! (`RATELIMIT_CALC_SHIFT = 10` fixed point). What is left out, and why, is
//! listed in the [module docs](super#simplifications).

use core::num::NonZeroU64;

use crate::global_limits::dirty_freerun_ceiling;

/// `RATELIMIT_CALC_SHIFT`: `pos_ratio` is a fixed-point number with 10 fraction bits.
pub const RATELIMIT_CALC_SHIFT: u32 = 10;
/// `pos_ratio` of 1.0.
pub const POS_RATIO_ONE: u64 = 1 << RATELIMIT_CALC_SHIFT;
/// `INIT_BW`: a bdi's write bandwidth estimate before any measurement,
/// 100 MiB/s in pages/s.
pub const INIT_BW: u64 = 100 << (20 - crate::consts::PAGE_SHIFT);
/// `BANDWIDTH_INTERVAL`: bandwidth and `dirty_limit` are updated every 200 ms.
pub const BANDWIDTH_INTERVAL_MS: u64 = 200;
/// `WB_BANDWIDTH_IDLE_JIF`: after 1 s without I/O the bandwidth estimate
/// restarts its measurement window instead of counting the idle time.
pub const WB_BANDWIDTH_IDLE_MS: u64 = 1000;
/// The smoothing period of `wb_update_write_bandwidth()`:
/// `roundup_pow_of_two(3 * HZ)` jiffies, with HZ = 1000 (ms).
pub const BW_PERIOD_MS: u64 = 4096;
/// CPUs of the modelled machine (for `wb_stat_error()`).
pub const NR_CPUS: u64 = 2;
/// `wb_stat_error()`: `WB_STAT_BATCH * nr_cpu_ids` with
/// `WB_STAT_BATCH = 8 * (1 + ilog2(nr_cpu_ids))`: 32 pages for 2 CPUs.
pub const WB_STAT_ERROR: u64 = 8 * (1 + NR_CPUS.ilog2() as u64) * NR_CPUS;

/// `pos_ratio_polynom()`: `1 + ((setpoint - dirty) / (limit - setpoint))^3`,
/// clamped to `[0, 2]`, in `RATELIMIT_CALC_SHIFT` fixed point.
pub fn pos_ratio_polynom(setpoint: u64, dirty: u64, limit: u64) -> u64 {
    polynom_at(setpoint, Divisor::new(polynom_den(setpoint, limit)), dirty)
}

/// The divisor of [`pos_ratio_polynom`]: `(limit - setpoint) | 1`, which
/// does not move with the dirty count (odd, so never 0: the division by it
/// needs no check).
fn polynom_den(setpoint: u64, limit: u64) -> NonZeroU64 {
    // i64::MAX is odd: clamping before or after the `| 1` is the same.
    NonZeroU64::MIN | limit.saturating_sub(setpoint).min(i64::MAX as u64)
}

/// A divisor fixed in advance, with its reciprocal, so that dividing by it
/// is a multiplication where that is exact: with `c = ⌈2^64 / d⌉` for
/// `2 ≤ d < 2^32`, `⌊n · c / 2^64⌋ = ⌊n / d⌋` for every `n < 2^32` (Lemire,
/// Kaser and Kurz, "Faster remainder by direct computation", 2019, with
/// N = 32 and F = 64: `F ≥ N + log2(d)`). Larger numerators, and `d = 1`
/// or `d ≥ 2^32`, are divided.
///
/// # Invariants
///
/// `fast_below` is `2^32` when `c` is `⌈2^64 / d⌉` with `2 ≤ d < 2^32`, and
/// 0 otherwise (then `c` is not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divisor {
    d: NonZeroU64,
    c: u64,
    fast_below: u64,
}

impl Default for Divisor {
    /// Division by 1.
    fn default() -> Self {
        Divisor::new(NonZeroU64::MIN)
    }
}

impl Divisor {
    /// The divisor `d`.
    pub fn new(d: NonZeroU64) -> Divisor {
        if (2..1 << 32).contains(&d.get()) {
            // u64::MAX / d + 1 = ⌈2^64 / d⌉ for every d ≥ 2 (a power of
            // two included: then (2^64 - 1) / d = 2^64 / d - 1).
            Divisor {
                d,
                c: u64::MAX / d.get() + 1,
                fast_below: 1 << 32,
            }
        } else {
            Divisor {
                d,
                c: 0,
                fast_below: 0,
            }
        }
    }

    /// The divisor `d`, this one if it already is `d` (no division to
    /// make the reciprocal again).
    #[inline]
    pub fn or_new(self, d: NonZeroU64) -> Divisor {
        if self.d == d {
            self
        } else {
            Divisor::new(d)
        }
    }

    /// `⌊n / d⌋`.
    #[inline(always)]
    pub fn divide(self, n: u64) -> u64 {
        if n < self.fast_below {
            ((u128::from(self.c) * u128::from(n)) >> 64) as u64
        } else {
            n / self.d
        }
    }

    /// `⌈n / d⌉`.
    #[inline(always)]
    pub fn divide_ceil(self, n: u64) -> u64 {
        let q = self.divide(n);
        // q · d ≤ n: no overflow.
        q + u64::from(q * self.d.get() != n)
    }
}

/// `n / d`, `None` for `d` 0, where the quotient is mostly 0 or 1: a
/// throttled task's `period`, `HZ · pages / task_ratelimit` jiffies for the
/// pages of one poll, is rarely more than a jiffy, so such quotients are
/// found by a comparison or two instead of a hardware division.
#[inline(always)]
pub fn div_mostly_small(n: u64, d: u64) -> Option<u64> {
    if n < d {
        Some(0)
    } else if n - d < d {
        Some(1)
    } else {
        // d = 0 included.
        n.checked_div(d)
    }
}

/// [`pos_ratio_polynom`] at `dirty`, with its divisor `den` from [`polynom_den`].
#[inline(always)]
fn polynom_at(setpoint: u64, den: Divisor, dirty: u64) -> u64 {
    // Page counts are far below 2^52, so the shift cannot overflow; clamp
    // anyway (inputs past 2^52 pages only saturate the result).
    let diff = if (setpoint | dirty) < 1 << 52 {
        setpoint as i64 - dirty as i64
    } else {
        (setpoint.min(1 << 52) as i64) - (dirty.min(1 << 52) as i64)
    };
    // The kernel's signed division, which truncates towards 0: the
    // magnitude's quotient with the sign put back (below 2^62, so exact).
    let q = den.divide(diff.unsigned_abs() << RATELIMIT_CALC_SHIFT);
    // Past ±1.0 the kernel's clamp to [0, 2] decides: 1 + x³ is above 2 for
    // x ≥ 1025/1024 and below 0 for x ≤ -1025/1024 in this fixed point
    // (x is within [-1024, 1024] whenever dirty < limit), so the cube is
    // only taken where it lands in [0, 2] without clamping.
    if q > 1 << RATELIMIT_CALC_SHIFT {
        return if diff < 0 {
            0
        } else {
            2 << RATELIMIT_CALC_SHIFT
        };
    }
    let q = q as i64;
    let x = if diff < 0 { -q } else { q };
    let mut p = x;
    p = (p * x) >> RATELIMIT_CALC_SHIFT;
    p = (p * x) >> RATELIMIT_CALC_SHIFT;
    (p + (1 << RATELIMIT_CALC_SHIFT)) as u64
}

/// `dirty_poll_interval()`: how many pages a free-running task may dirty
/// before it looks at the limits again, about the square root of the room
/// left below `thresh`.
pub fn dirty_poll_interval(dirty: u64, thresh: u64) -> u64 {
    if thresh > dirty {
        1 << ((thresh - dirty).ilog2() >> 1)
    } else {
        1
    }
}

/// The inputs of one `balance_dirty_pages()` evaluation: the fields of
/// `struct dirty_throttle_control` the position control reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dtc {
    /// Global dirty threshold `T` (pages).
    pub thresh: u64,
    /// Global background threshold.
    pub bg_thresh: u64,
    /// The domain's smoothed `dirty_limit` (see [`update_dirty_limit`]).
    pub dirty_limit: u64,
    /// Global dirty pages: `NR_FILE_DIRTY + NR_WRITEBACK`.
    pub dirty: u64,
    /// This bdi's threshold, from the core.
    pub wb_thresh: u64,
    /// This bdi's background threshold, from the core.
    pub wb_bg_thresh: u64,
    /// This bdi's dirty + writeback pages.
    pub wb_dirty: u64,
    /// This bdi's `avg_write_bandwidth` (pages/s).
    pub write_bw: u64,
    /// `BDI_CAP_STRICTLIMIT`.
    pub strict_limit: bool,
}

impl Dtc {
    /// `hard_dirty_limit()`.
    pub fn limit(&self) -> u64 {
        crate::global_limits::hard_dirty_limit(self.dirty_limit, self.thresh)
    }

    /// `domain_dirty_freerun()`: below the freerun ceiling a task is not
    /// throttled at all. With `strict_limit` the bdi's own counts decide.
    pub fn freerun(&self) -> bool {
        PosControl::new(self).freerun(self.dirty, self.wb_dirty)
    }

    /// `wb_position_ratio()` as in mainline since 6.13 (the idle-device floor
    /// of `wb_thresh` moved into `__wb_calc_thresh()`, i.e. into the core).
    /// Returns `pos_ratio` in `RATELIMIT_CALC_SHIFT` fixed point; 0 at or
    /// above the hard limit.
    pub fn position_ratio(&self) -> u64 {
        PosControl::new(self).position_ratio(self.dirty, self.wb_dirty)
    }
}

/// A [`Dtc`] prepared for many `balance_dirty_pages()` evaluations in which
/// only the dirty counts move (the simulator changes thresholds, limits and
/// the bandwidth estimate between steps, not within one): everything
/// `domain_dirty_freerun()` and `wb_position_ratio()` derive from the fixed
/// inputs — ceilings, setpoints, the polynomials' divisors, the control
/// line — is computed once, so that an evaluation costs the divisions that
/// depend on the dirty counts only.
///
/// # Invariants
///
/// [`PosControl::freerun`] and [`PosControl::position_ratio`] at `(dirty,
/// wb_dirty)` equal [`Dtc::freerun`] and [`Dtc::position_ratio`] of the
/// `Dtc` it was made from with those two counts (they are defined through it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosControl {
    /// `hard_dirty_limit()`: `pos_ratio` is 0 at or above it.
    limit: u64,
    /// Global freerun ceiling, `(thresh + bg_thresh) / 2`.
    freerun: u64,
    /// Global setpoint, `(freerun + limit) / 2`, and the cubic's divisor.
    setpoint: u64,
    den: Divisor,
    strict_limit: bool,
    /// `wb_thresh` (strictlimit), or `min(wb_thresh, thresh)` (the control line's).
    wb_thresh: u64,
    /// Strictlimit: the wb's freerun ceiling, which is also its setpoint,
    /// and its cubic's divisor.
    wb_setpoint: u64,
    wb_den: Divisor,
    /// Strictlimit: from which `wb_dirty` on `pos_ratio` is 0: `wb_thresh`,
    /// and 8 when the setpoint is 0 or `wb_thresh` (the kernel then returns
    /// 0), but at least 8 (below it a wb goes whatever its threshold).
    wb_zero_from: u64,
    /// The control line: `x_intercept`, where its 1/4 floor begins
    /// (`x_intercept - span / 4`) and its divisor `(x_intercept - wb_setpoint) | 1`.
    x_intercept: u64,
    line_floor_at: u64,
    line_den: Divisor,
    /// `domain_dirty_freerun()` as two ceilings that both hold: the global
    /// one on `dirty` and `u64::MAX` on `wb_dirty`, or with strictlimit
    /// `u64::MAX` on `dirty` and the wb's own on `wb_dirty`.
    // INVARIANT: `(freerun, u64::MAX)`, or `(u64::MAX, wb_setpoint)` with
    // `strict_limit`.
    free_dirty: u64,
    free_wb_dirty: u64,
}

/// Every count 0 and every divisor 1 (a control nothing was set up for).
impl Default for PosControl {
    fn default() -> Self {
        PosControl {
            limit: 0,
            freerun: 0,
            setpoint: 0,
            den: Divisor::default(),
            strict_limit: false,
            wb_thresh: 0,
            wb_setpoint: 0,
            wb_den: Divisor::default(),
            wb_zero_from: 0,
            x_intercept: 0,
            line_floor_at: 0,
            line_den: Divisor::default(),
            free_dirty: 0,
            free_wb_dirty: u64::MAX,
        }
    }
}

impl PosControl {
    /// The fixed part of `dtc` (its `dirty` and `wb_dirty` are not read).
    pub fn new(dtc: &Dtc) -> PosControl {
        PosControl::renew(dtc, &PosControl::default())
    }

    /// [`PosControl::new`], with the divisors of `prev` kept where they
    /// are the same (they then need no new reciprocal).
    #[inline]
    pub fn renew(dtc: &Dtc, prev: &PosControl) -> PosControl {
        PosControl::domain(dtc.thresh, dtc.bg_thresh, dtc.limit(), prev).with_wb(dtc, prev)
    }

    /// The domain-wide part of a control at `thresh`, `bg_thresh` and the
    /// hard limit `limit` (`hard_dirty_limit()`): the global freerun
    /// ceiling and setpoint and the global cubic's divisor (kept from `prev`
    /// where it is the same); the wb's part is left unset.
    #[inline]
    pub fn domain(thresh: u64, bg_thresh: u64, limit: u64, prev: &PosControl) -> PosControl {
        let freerun = dirty_freerun_ceiling(thresh, bg_thresh);
        let setpoint = (freerun + limit) / 2;
        PosControl {
            limit,
            freerun,
            setpoint,
            den: prev.den.or_new(polynom_den(setpoint, limit)),
            free_dirty: freerun,
            ..PosControl::default()
        }
    }

    /// This control's domain-wide part (from [`PosControl::domain`]) with
    /// the wb's part of `dtc`: its threshold, strictlimit cubic or control
    /// line, from `wb_thresh`, `wb_bg_thresh`, `write_bw`, `strict_limit`
    /// and `thresh`. The divisors of `prev` are kept where they are the same.
    #[inline]
    pub fn with_wb(&self, dtc: &Dtc, prev: &PosControl) -> PosControl {
        let mut c = PosControl {
            strict_limit: dtc.strict_limit,
            ..*self
        };
        if dtc.strict_limit {
            c.wb_thresh = dtc.wb_thresh;
            c.wb_setpoint = dirty_freerun_ceiling(dtc.wb_thresh, dtc.wb_bg_thresh);
            c.wb_den = prev
                .wb_den
                .or_new(polynom_den(c.wb_setpoint, dtc.wb_thresh));
            c.wb_zero_from = if c.wb_setpoint == 0 || c.wb_setpoint == dtc.wb_thresh {
                8
            } else {
                dtc.wb_thresh.max(8)
            };
            c.free_dirty = u64::MAX;
            c.free_wb_dirty = c.wb_setpoint;
            return c;
        }
        // The per-wb linear control line, in the kernel's 64-bit arithmetic
        // (page counts are below 2^32, so nothing here can overflow; the
        // saturating operations only make that explicit).
        let thresh = dtc.thresh.min(u64::from(u32::MAX));
        let wb_thresh = dtc.wb_thresh.min(thresh);
        let x = (wb_thresh << 16) / (thresh | 1);
        let wb_setpoint = c.setpoint.saturating_mul(x) >> 16;
        let span = (thresh - wb_thresh)
            .saturating_add(dtc.write_bw.saturating_mul(8))
            .saturating_mul(x)
            >> 16;
        let x_intercept = wb_setpoint.saturating_add(span);
        c.wb_thresh = wb_thresh;
        c.wb_setpoint = wb_setpoint;
        c.x_intercept = x_intercept;
        c.line_floor_at = x_intercept - span / 4;
        c.line_den = prev
            .line_den
            .or_new(NonZeroU64::MIN | (x_intercept - wb_setpoint));
        c
    }

    /// `hard_dirty_limit()` the control was made with.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The freerun ceiling `domain_dirty_freerun()` compares with: the
    /// wb's own with strictlimit (then against `wb_dirty`), else the global
    /// one (against `dirty`).
    pub fn freerun_ceiling(&self) -> u64 {
        if self.strict_limit {
            self.wb_setpoint
        } else {
            self.freerun
        }
    }

    /// `domain_dirty_freerun()` at global `dirty` and the wb's `wb_dirty`.
    #[inline]
    pub fn freerun(&self, dirty: u64, wb_dirty: u64) -> bool {
        dirty <= self.free_dirty && wb_dirty <= self.free_wb_dirty
    }

    /// `wb_position_ratio()` at global `dirty` and the wb's `wb_dirty`.
    #[inline]
    pub fn position_ratio(&self, dirty: u64, wb_dirty: u64) -> u64 {
        if dirty >= self.limit {
            return 0;
        }
        if self.strict_limit {
            // The strictlimit branch: the bdi's own counters and limits.
            // (The zero cases come first: they do not need the global cubic.)
            if wb_dirty >= self.wb_zero_from {
                return 0;
            }
            if wb_dirty < 8 {
                let pos_ratio = polynom_at(self.setpoint, self.den, dirty);
                return (pos_ratio * 2).min(2 << RATELIMIT_CALC_SHIFT);
            }
            let wb_pos_ratio = polynom_at(self.wb_setpoint, self.wb_den, wb_dirty);
            // A cubic is at least 1.0 at or below its setpoint and at most
            // 1.0 at or above it, so a throttled wb (above its setpoint) in
            // a domain at or below the global setpoint takes its own ratio:
            // the global cubic's division is skipped, not its result.
            if wb_dirty >= self.wb_setpoint && dirty <= self.setpoint {
                return wb_pos_ratio;
            }
            let pos_ratio = polynom_at(self.setpoint, self.den, dirty);
            return pos_ratio.min(wb_pos_ratio);
        }
        let mut pos_ratio = polynom_at(self.setpoint, self.den, dirty);
        if wb_dirty < self.line_floor_at {
            pos_ratio = self
                .line_den
                .divide(pos_ratio.saturating_mul(self.x_intercept - wb_dirty));
        } else {
            // The 1/4 floor of the control line.
            pos_ratio /= 4;
        }
        // The wb reserve area: below half its threshold a bdi is sped up.
        let x_intercept = self.wb_thresh / 2;
        if wb_dirty < x_intercept {
            if wb_dirty > x_intercept / 8 {
                pos_ratio = pos_ratio.saturating_mul(x_intercept) / wb_dirty;
            } else {
                pos_ratio *= 8;
            }
        }
        pos_ratio
    }
}

/// `update_dirty_limit()`: the domain's `dirty_limit` follows `thresh` up at
/// once and down by 1/32 of the gap every [`BANDWIDTH_INTERVAL_MS`], never
/// below the dirty pages.
pub fn update_dirty_limit(limit: u64, thresh: u64, dirty: u64) -> u64 {
    if limit < thresh {
        return thresh;
    }
    let target = thresh.max(dirty);
    if limit > target {
        limit - ((limit - target) >> 5)
    } else {
        limit
    }
}

/// `HZ` of the modelled kernel: pauses are whole jiffies, and their
/// rounding shapes how fast a throttled task really goes. 250 is Debian's
/// (and this project's test machine's) `CONFIG_HZ`.
pub const HZ: u64 = 250;
/// One jiffy in microseconds.
pub const JIFFY_US: u64 = 1_000_000 / HZ;
/// `MAX_PAUSE`: the longest a task sleeps in one `balance_dirty_pages()`
/// call, `max(HZ / 5, 1)` jiffies.
pub const MAX_PAUSE: u64 = if HZ / 5 > 1 { HZ / 5 } else { 1 };
/// `DIRTY_POLL_THRESH`: `128 >> (PAGE_SHIFT - 10)` pages, the polling
/// interval `wb_min_pause()` pushes towards (and a new task's first one).
pub const DIRTY_POLL_THRESH: u64 = 128 >> (crate::consts::PAGE_SHIFT - 10);
/// How often a task polls while its wb is `dirty_exceeded`: `32 >> (PAGE_SHIFT - 10)` pages.
pub const DIRTY_EXCEEDED_POLL: u64 = 32 >> (crate::consts::PAGE_SHIFT - 10);

/// `wb_max_pause()`: at most [`MAX_PAUSE`], less on a small `wb_dirty`
/// so that the device does not run dry while the task sleeps (jiffies).
pub fn wb_max_pause(write_bw: u64, wb_dirty: u64) -> u64 {
    MaxPause::new(write_bw).at(wb_dirty)
}

/// [`wb_max_pause()`] for one `write_bw`, which the simulator moves only in
/// its bandwidth update: the pages written in a jiffy, and from how many
/// dirty pages on the pause is [`MAX_PAUSE`], are kept, so that a call
/// compares `wb_dirty` with them and divides only in between.
///
/// # Invariants
///
/// `per_jiffy` is `1 + write_bw / roundup_pow_of_two(1 + HZ / 8)` and
/// `full_above` is `(MAX_PAUSE − 1) · per_jiffy − 1` (`u64::MAX` when the
/// product does not fit in 64 bits: no `wb_dirty` is above it, and none
/// reaches the product).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPause {
    per_jiffy: NonZeroU64,
    full_above: u64,
}

/// The bounds at [`INIT_BW`], the estimate before any measurement (as
/// [`BwEstimate::default`] has it).
impl Default for MaxPause {
    fn default() -> Self {
        MaxPause::new(INIT_BW)
    }
}

impl MaxPause {
    /// The bounds for a wb writing `write_bw` pages/s.
    pub fn new(write_bw: u64) -> MaxPause {
        // Never 0: the division by it needs no check.
        let per_jiffy = NonZeroU64::MIN.saturating_add(write_bw / (1 + HZ / 8).next_power_of_two());
        MaxPause {
            per_jiffy,
            full_above: per_jiffy
                .get()
                .checked_mul(MAX_PAUSE - 1)
                .map_or(u64::MAX, |m| m.saturating_sub(1)),
        }
    }

    /// `wb_max_pause()` at `wb_dirty` (jiffies).
    #[inline]
    pub fn at(&self, wb_dirty: u64) -> u64 {
        if wb_dirty < self.per_jiffy.get() {
            // The common case on a fast device, without the division.
            return 1;
        }
        // The longest pause without the division either: ⌊a / b⌋ + 1 ≥
        // MAX_PAUSE exactly when a ≥ (MAX_PAUSE − 1) · b.
        if wb_dirty > self.full_above {
            return MAX_PAUSE;
        }
        (wb_dirty / self.per_jiffy + 1).min(MAX_PAUSE)
    }
}

/// `wb_min_pause()`: the shortest pause worth sleeping (jiffies) and the next
/// `nr_dirtied_pause` (pages), from the wb's bandwidth and rate limits.
pub fn wb_min_pause(
    write_bw: u64,
    dirty_ratelimit: u64,
    max_pause: u64,
    task_ratelimit: u64,
) -> (u64, u64) {
    MinPauseTarget::new(write_bw, dirty_ratelimit, max_pause).min_pause(task_ratelimit)
}

/// The first half of `wb_min_pause()`, which does not depend on the task's
/// `task_ratelimit`: the target pause `t` (jiffies) and the pages dirtied in
/// it at `dirty_ratelimit`. The simulator keeps it while `write_bw`,
/// `dirty_ratelimit` and `max_pause` stay the same.
///
/// The second half, [`MinPauseTarget::min_pause`], only asks whether the
/// target's pages at `task_ratelimit` would take longer than `max_pause`:
/// when they do not, its result is the target's own, which is kept
/// (`short`), and the question is one comparison of `task_ratelimit` with a
/// bound kept too (`long_below`).
///
/// # Invariants
///
/// `short` is `min_pause_of(t, pages)` for the target pause `t` that
/// [`MinPauseTarget::new`] computes (the call reads `t` nowhere else: a
/// pause that is too long takes `max_pause`). With `long_below_exact`,
/// `long_below` is `⌊HZ · pages / (max_pause + 1)⌋` with `pages ≥ 0` and
/// both the product and `max_pause + 1` within `i64`; then the pause at
/// `task_ratelimit` is above `max_pause` exactly when `task_ratelimit <
/// long_below` (`long_below_decides_like_the_division` compares both).
/// Otherwise `long_below` is `u64::MAX`, every `task_ratelimit` but
/// `u64::MAX` (past `i64`: not above) is below it, and the comparison is
/// made as the kernel writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinPauseTarget {
    /// `max_pause` it was computed for (jiffies); `u64::MAX` (no
    /// `wb_max_pause()` is that long) for [`MinPauseTarget::STALE`].
    pub max_pause: u64,
    pages: i64,
    short: (u64, u64),
    long_below: u64,
    long_below_exact: bool,
}

/// [`MinPauseTarget::STALE`].
impl Default for MinPauseTarget {
    fn default() -> Self {
        MinPauseTarget::STALE
    }
}

impl MinPauseTarget {
    /// A target no `max_pause` matches: the next call makes a new one.
    pub const STALE: MinPauseTarget = MinPauseTarget {
        max_pause: u64::MAX,
        pages: 0,
        short: (0, 0),
        long_below: u64::MAX,
        long_below_exact: false,
    };

    /// The target pause for a wb with `write_bw` and `dirty_ratelimit`.
    pub fn new(write_bw: u64, dirty_ratelimit: u64, max_pause: u64) -> MinPauseTarget {
        let hi = i64::from(write_bw.max(1).ilog2());
        let lo = i64::from(dirty_ratelimit.max(1).ilog2());
        // Target 10 ms for one task, N · 10 ms for 2^N of them.
        let hz = HZ as i64;
        let mut t: i64 = (hz / 100).max(1);
        if hi > lo {
            t += (hi - lo) * (10 * hz) / 1024;
        }
        let mp = max_pause as i64;
        t = t.min(1 + mp / 2);
        let rate = dirty_ratelimit as i64;
        let mut pages = rate * t / HZ_POW2;
        if pages < DIRTY_POLL_THRESH as i64 {
            t = mp;
            pages = rate * t / HZ_POW2;
            if pages > DIRTY_POLL_THRESH as i64 {
                pages = DIRTY_POLL_THRESH as i64;
                t = hz * DIRTY_POLL_THRESH as i64 / rate.max(1);
            }
        }
        // For a non-negative quotient and divisor, ⌊a / b⌋ > m exactly when
        // a ≥ (m + 1) · b, that is b ≤ ⌊a / (m + 1)⌋: with b = task_ratelimit
        // + 1, task_ratelimit < ⌊a / (m + 1)⌋. (A product past i64 is above
        // any a; a task_ratelimit past i64 takes the kernel's other branch,
        // whose quotient is not positive: not above either.)
        let (long_below, long_below_exact) = match (hz.checked_mul(pages), mp.checked_add(1)) {
            (Some(a), Some(m1)) if pages >= 0 && m1 > 0 => ((a / m1) as u64, true),
            _ => (u64::MAX, false),
        };
        MinPauseTarget {
            max_pause,
            pages,
            short: min_pause_of(t, pages),
            long_below,
            long_below_exact,
        }
    }

    /// The rest of `wb_min_pause()` for a task at `task_ratelimit`:
    /// `(min_pause, nr_dirtied_pause)`.
    #[inline]
    pub fn min_pause(&self, task_ratelimit: u64) -> (u64, u64) {
        if task_ratelimit >= self.long_below
            || !(self.long_below_exact || self.too_long(task_ratelimit))
        {
            return self.short;
        }
        let t = self.max_pause as i64;
        min_pause_of(t, task_ratelimit as i64 * t / HZ_POW2)
    }

    /// Whether `HZ · pages / (task_ratelimit + 1)` is above `max_pause`, as
    /// the kernel computes it (for `task_ratelimit < u64::MAX`).
    #[cold]
    fn too_long(&self, task_ratelimit: u64) -> bool {
        let den = task_ratelimit as i64 + 1;
        let (hz, max_pause) = (HZ as i64, self.max_pause as i64);
        if self.pages >= 0 && den > 0 {
            (max_pause + 1)
                .checked_mul(den)
                .is_some_and(|m| hz * self.pages >= m)
        } else {
            hz * self.pages / den > max_pause
        }
    }
}

/// The end of `wb_min_pause()` for a pause of `t` jiffies over `pages`
/// pages: `(min_pause, nr_dirtied_pause)`, the minimum half the pause
/// (plus one) once the pages reach [`DIRTY_POLL_THRESH`].
fn min_pause_of(t: i64, pages: i64) -> (u64, u64) {
    let pages = pages.max(0) as u64;
    let min_pause = if pages >= DIRTY_POLL_THRESH {
        1 + t / 2
    } else {
        t
    };
    (min_pause.max(0) as u64, pages)
}

/// `roundup_pow_of_two(HZ)`, the divisor of `wb_min_pause()`'s page counts.
const HZ_POW2: i64 = HZ.next_power_of_two() as i64;

/// A wb's dirty rate limit, `wb->dirty_ratelimit`, and the estimator
/// `wb_update_dirty_ratelimit()` that moves it towards the balanced rate
/// `write_bw / N` for N throttled tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// `dirty_ratelimit` (pages/s): the base of every task's rate.
    pub dirty_ratelimit: u64,
    /// `balanced_dirty_ratelimit` (pages/s) of the last update.
    pub balanced: u64,
    /// `dirtied_stamp`: pages dirtied on the wb at the last bandwidth update.
    pub dirtied_stamp: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            dirty_ratelimit: INIT_BW,
            balanced: INIT_BW,
            dirtied_stamp: 0,
        }
    }
}

impl RateLimit {
    /// `wb_update_dirty_ratelimit()`: `dtc` and its `pos_ratio` as the
    /// throttled task saw them, `dirtied` the wb's pages dirtied so far and
    /// `elapsed` (ms) since the last bandwidth update.
    pub fn update(&mut self, dtc: &Dtc, pos_ratio: u64, dirtied: u64, elapsed: u64) {
        let freerun = dirty_freerun_ceiling(dtc.thresh, dtc.bg_thresh);
        let limit = dtc.limit();
        let mut setpoint = (freerun + limit) / 2;
        let mut dirty = dtc.dirty;
        let write_bw = dtc.write_bw;
        let dirty_ratelimit = self.dirty_ratelimit;
        let dirty_rate = dirtied.saturating_sub(self.dirtied_stamp) * 1000 / elapsed.max(1);
        let task_ratelimit = ((u128::from(dirty_ratelimit) * u128::from(pos_ratio))
            >> RATELIMIT_CALC_SHIFT) as u64
            + 1;
        let balanced = ((u128::from(task_ratelimit) * u128::from(write_bw))
            / u128::from(dirty_rate | 1))
        .min(u128::from(write_bw)) as u64;
        if dtc.strict_limit {
            dirty = dtc.wb_dirty;
            setpoint = (dtc.wb_thresh + dtc.wb_bg_thresh) / 2;
        }
        let mut step = 0;
        if dirty < setpoint {
            let x = self.balanced.min(balanced).min(task_ratelimit);
            if dirty_ratelimit < x {
                step = x - dirty_ratelimit;
            }
        } else {
            let x = self.balanced.max(balanced).max(task_ratelimit);
            if dirty_ratelimit > x {
                step = dirty_ratelimit - x;
            }
        }
        // Slow down near the target: step >> (rate / (2·step + 1)), / 8.
        let shift = dirty_ratelimit / (2 * step + 1);
        step = if shift < 64 {
            (step >> shift).div_ceil(8)
        } else {
            0
        };
        let next = if dirty_ratelimit < balanced {
            dirty_ratelimit + step
        } else {
            dirty_ratelimit - step
        };
        self.dirty_ratelimit = next.max(1);
        self.balanced = balanced;
    }
}

/// A bdi's write bandwidth estimate (`wb->write_bandwidth` and
/// `wb->avg_write_bandwidth`), updated like `wb_update_write_bandwidth()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BwEstimate {
    /// `write_bandwidth` (pages/s).
    pub write_bandwidth: u64,
    /// `avg_write_bandwidth` (pages/s): what throttling uses.
    pub avg: u64,
    /// `written_stamp`: completions at the last update.
    pub written_stamp: u64,
    /// `bw_time_stamp` (ms).
    pub time_stamp: u64,
}

impl Default for BwEstimate {
    fn default() -> Self {
        BwEstimate {
            write_bandwidth: INIT_BW,
            avg: INIT_BW,
            written_stamp: 0,
            time_stamp: 0,
        }
    }
}

impl BwEstimate {
    /// One update at `now` (ms) with `written` completions in total so far.
    /// `busy`: the bdi has pages under writeback, or completed some since the
    /// last update; an idle bdi only moves its stamps, as `wb_bandwidth_estimate_start()`
    /// does after [`WB_BANDWIDTH_IDLE_MS`].
    pub fn update(&mut self, now: u64, written: u64, busy: bool) {
        let elapsed = now.saturating_sub(self.time_stamp).max(1);
        if !busy {
            if elapsed > WB_BANDWIDTH_IDLE_MS {
                self.written_stamp = written;
                self.time_stamp = now;
            }
            return;
        }
        // bw = written * HZ / elapsed, blended over the 4096 ms period.
        let mut bw = u128::from(written.saturating_sub(self.written_stamp)) * 1000;
        let mut avg = self.avg;
        let old = self.write_bandwidth;
        if elapsed > BW_PERIOD_MS {
            bw /= u128::from(elapsed);
            avg = bw as u64;
        } else {
            bw += u128::from(old) * u128::from(BW_PERIOD_MS - elapsed);
            bw >>= BW_PERIOD_MS.ilog2();
            let bw = bw as u64;
            // One more level of smoothing against spikes.
            if avg > old && old >= bw {
                avg -= (avg - old) >> 3;
            }
            if avg < old && old <= bw {
                avg += (old - avg) >> 3;
            }
        }
        self.write_bandwidth = bw as u64;
        self.avg = avg.max(1);
        self.written_stamp = written;
        self.time_stamp = now;
    }
}

/// Marsaglia's xorshift64 from `seed` (not 0): a fixed, cheap sequence of
/// test inputs for the simulator's tests that walk many random states.
#[cfg(test)]
pub(super) fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn polynom_hits_its_anchor_points() {
        // f(setpoint) = 1, f(limit) = 0, f(freerun) = 2 (setpoint is midway).
        // limit - setpoint = 1023 is odd, so `| 1` leaves it alone.
        assert_eq!(pos_ratio_polynom(1023, 1023, 2046), POS_RATIO_ONE);
        assert_eq!(pos_ratio_polynom(1023, 2046, 2046), 0);
        assert_eq!(pos_ratio_polynom(1023, 0, 2046), 2 * POS_RATIO_ONE);
        assert_eq!(pos_ratio_polynom(1023, 5000, 2046), 0);
        // Halfway between setpoint and limit: 1 - 1/8.
        assert_eq!(pos_ratio_polynom(1023, 1023 + 511, 2046), 1024 - 128);
        assert_eq!(pos_ratio_polynom(1000, 0, 1000), 2 * POS_RATIO_ONE);
    }

    #[test]
    fn polynom_skips_the_clamps_exactly() {
        // pos_ratio_polynom() with both of the kernel's clamps, x to
        // [-4096, 4096] (the kernel's own x stays within [-1024, 1024]
        // below the limit) and the result to [0, 2].
        fn clamped(setpoint: u64, dirty: u64, limit: u64) -> u64 {
            let den = polynom_den(setpoint, limit).get() as i64;
            let diff = (setpoint.min(1 << 52) as i64) - (dirty.min(1 << 52) as i64);
            let x = ((diff << RATELIMIT_CALC_SHIFT) / den).clamp(-4096, 4096);
            let p = (((x * x) >> RATELIMIT_CALC_SHIFT) * x) >> RATELIMIT_CALC_SHIFT;
            (p + (1 << RATELIMIT_CALC_SHIFT)).clamp(0, 2 << RATELIMIT_CALC_SHIFT) as u64
        }
        for (setpoint, limit) in [
            (1023u64, 2046u64),
            (100, 101),
            (5000, 9000),
            (0, 7),
            (1 << 40, 1 << 41),
        ] {
            let span = limit - setpoint;
            let mut dirties: vec::Vec<u64> = (0..4000).map(|k| k * (limit + span) / 4000).collect();
            dirties.extend([
                0,
                setpoint,
                limit,
                limit + 10 * span,
                u64::MAX,
                1 << 52,
                (1 << 52) + 1,
            ]);
            for k in 0..64 {
                dirties.push(setpoint.saturating_sub(span * k / 32));
                dirties.push(setpoint + span * k / 32);
            }
            for dirty in dirties {
                assert_eq!(
                    pos_ratio_polynom(setpoint, dirty, limit),
                    clamped(setpoint, dirty, limit),
                    "{setpoint} {dirty} {limit}"
                );
            }
        }
        // Inputs past 2^52 pages saturate.
        for (setpoint, dirty, limit) in [
            (u64::MAX, 0, u64::MAX),
            (0, u64::MAX, 1),
            (1 << 53, 1 << 52, 1 << 54),
        ] {
            assert_eq!(
                pos_ratio_polynom(setpoint, dirty, limit),
                clamped(setpoint, dirty, limit)
            );
        }
        assert_eq!(pos_ratio_polynom(u64::MAX, 0, u64::MAX), 2 * POS_RATIO_ONE);
        assert_eq!(pos_ratio_polynom(0, u64::MAX, 1), 0);
    }

    #[test]
    fn hard_limit_stops_and_control_line_has_a_quarter_floor() {
        let mut d = Dtc {
            thresh: 100_000,
            bg_thresh: 50_000,
            dirty_limit: 100_000,
            dirty: 100_000,
            wb_thresh: 50_000,
            wb_bg_thresh: 25_000,
            wb_dirty: 50_000,
            write_bw: 1000,
            strict_limit: false,
        };
        assert_eq!(d.position_ratio(), 0);
        // At the global setpoint, far above the wb's x_intercept: 1/4.
        d.dirty = 87_500;
        d.wb_dirty = 99_000;
        assert_eq!(d.position_ratio(), POS_RATIO_ONE / 4);
        // At both setpoints: 1 (up to the kernel's rounding of x and `| 1`).
        d.wb_dirty = 43_749;
        assert!(d.position_ratio().abs_diff(POS_RATIO_ONE) <= 1);
    }

    #[test]
    fn strictlimit_uses_the_wb_counts() {
        let d = Dtc {
            thresh: 100_000,
            bg_thresh: 50_000,
            dirty_limit: 100_000,
            dirty: 10,
            wb_thresh: 1000,
            wb_bg_thresh: 500,
            wb_dirty: 1000,
            write_bw: 1000,
            strict_limit: true,
        };
        assert!(!d.freerun());
        assert_eq!(d.position_ratio(), 0);
        let d = Dtc { wb_dirty: 750, ..d };
        assert_eq!(d.position_ratio(), POS_RATIO_ONE);
        let d = Dtc { wb_dirty: 700, ..d };
        assert!(d.freerun());
    }

    #[test]
    fn strictlimit_ratio_is_the_smaller_cubic() {
        // wb_position_ratio()'s strictlimit branch, spelled out, against the
        // prepared control (which skips the global cubic when it cannot be
        // the smaller one), on both sides of both setpoints.
        let (thresh, bg_thresh, dirty_limit) = (100_000u64, 50_000, 110_000);
        let (wb_thresh, wb_bg_thresh) = (1000u64, 400);
        let limit = dirty_limit;
        let setpoint = (dirty_freerun_ceiling(thresh, bg_thresh) + limit) / 2;
        let wb_setpoint = dirty_freerun_ceiling(wb_thresh, wb_bg_thresh);
        let mut seen_skip = (false, false);
        for dirty in (0..limit)
            .step_by(997)
            .chain([setpoint - 1, setpoint, setpoint + 1])
        {
            for wb_dirty in (0..wb_thresh)
                .step_by(7)
                .chain([wb_setpoint, wb_setpoint + 1])
            {
                let d = Dtc {
                    thresh,
                    bg_thresh,
                    dirty_limit,
                    dirty,
                    wb_thresh,
                    wb_bg_thresh,
                    wb_dirty,
                    write_bw: 1000,
                    strict_limit: true,
                };
                let global = pos_ratio_polynom(setpoint, dirty, limit);
                let want = if wb_dirty < 8 {
                    (global * 2).min(2 * POS_RATIO_ONE)
                } else {
                    global.min(pos_ratio_polynom(wb_setpoint, wb_dirty, wb_thresh))
                };
                assert_eq!(
                    d.position_ratio(),
                    want,
                    "dirty {dirty}, wb_dirty {wb_dirty}"
                );
                let skip = wb_dirty >= 8 && wb_dirty >= wb_setpoint && dirty <= setpoint;
                if skip {
                    seen_skip.0 = true;
                } else if wb_dirty >= 8 {
                    seen_skip.1 = true;
                }
            }
        }
        assert_eq!(seen_skip, (true, true));
    }

    /// A `Dtc` of page counts below 2^33 (past `u32::MAX`, where the
    /// control line clamps), with `bg_thresh ≤ thresh`.
    fn dtc_strategy() -> impl proptest::strategy::Strategy<Value = Dtc> {
        use proptest::prelude::*;
        let pages = || prop_oneof![0u64..64, 0u64..1 << 20, 0u64..1 << 33];
        (
            pages(),
            0u64..=1000,
            pages(),
            pages(),
            pages(),
            0u64..=1000,
            (pages(), pages(), any::<bool>()),
        )
            .prop_map(
                |(thresh, bg_per_mille, dirty_limit, dirty, wb_thresh, wb_bg_per_mille, rest)| {
                    let (wb_dirty, write_bw, strict_limit) = rest;
                    Dtc {
                        thresh,
                        bg_thresh: thresh / 1000 * bg_per_mille,
                        dirty_limit,
                        dirty,
                        wb_thresh,
                        wb_bg_thresh: wb_thresh / 1000 * wb_bg_per_mille,
                        wb_dirty,
                        write_bw,
                        strict_limit,
                    }
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// A control rebuilt from a kept domain-wide part and a previous
        /// control (whose divisors it reuses where they match) is the
        /// control made from scratch, and neither reads the dirty counts:
        /// the simulator keeps controls across steps on that.
        #[test]
        fn renewed_control_is_the_new_one(dtc in dtc_strategy(), prev in dtc_strategy()) {
            let fresh = PosControl::new(&dtc);
            let before = PosControl::new(&prev);
            let domain = PosControl::domain(dtc.thresh, dtc.bg_thresh, dtc.limit(), &before);
            proptest::prop_assert_eq!(domain.limit(), dtc.limit());
            proptest::prop_assert_eq!(domain.with_wb(&dtc, &before), fresh);
            proptest::prop_assert_eq!(PosControl::renew(&dtc, &before), fresh);
            let other_counts = Dtc { dirty: prev.dirty, wb_dirty: prev.wb_dirty, ..dtc };
            proptest::prop_assert_eq!(PosControl::new(&other_counts), fresh);
        }
    }

    #[test]
    fn divisor_divides_like_the_division() {
        // Edge divisors (1, powers of two, 2^32 - 1, past 2^32) and
        // numerators (around d, 2^32, u64::MAX), then pseudo-random ones.
        let mut ds = vec![
            1u64,
            2,
            3,
            7,
            1 << 20,
            (1 << 31) - 1,
            1 << 31,
            u32::MAX as u64,
        ];
        ds.extend([1 << 32, (1 << 32) + 1, u64::MAX]);
        let mut next = xorshift64(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let r = next();
            ds.push((r >> (r % 64)).max(1));
        }
        for &d in &ds {
            let div = Divisor::new(NonZeroU64::new(d).unwrap());
            let mut ns = vec![0u64, 1, d - 1, d, d.wrapping_add(1), d.wrapping_mul(3) - 1];
            ns.extend([u32::MAX as u64, 1 << 32, u64::MAX, u64::MAX - 1]);
            for _ in 0..200 {
                let r = next();
                ns.push(r >> (r % 64));
                ns.push(r & 0xffff_ffff);
            }
            for n in ns {
                assert_eq!(div.divide(n), n / d, "{n} / {d}");
                assert_eq!(div.divide_ceil(n), n.div_ceil(d), "{n} / {d} rounded up");
            }
            let other = Divisor::new(NonZeroU64::new(d.max(2) - 1).unwrap());
            assert_eq!(other.or_new(div.d), div);
            assert_eq!(div.or_new(div.d), div);
        }
    }

    #[test]
    fn mostly_small_quotients_divide_like_the_division() {
        let big = [
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) - 1,
            (1 << 63) + 1,
        ];
        for d in (0..40u64).chain(big) {
            let near = [2u64, 3].map(|k| d.wrapping_mul(k));
            let near = near
                .into_iter()
                .flat_map(|n| [n.wrapping_sub(1), n, n.wrapping_add(1)]);
            for n in (0..200u64).chain(big).chain(near) {
                assert_eq!(div_mostly_small(n, d), n.checked_div(d), "{n} / {d}");
            }
        }
    }

    #[test]
    fn max_pause_without_the_division_is_the_same() {
        for write_bw in [
            0u64,
            1,
            31,
            32,
            1000,
            25_600,
            102_400,
            u64::MAX / 64,
            u64::MAX,
        ] {
            let per_jiffy = 1 + write_bw / 32;
            for wb_dirty in [0u64, 1, per_jiffy, per_jiffy.saturating_mul(48)]
                .into_iter()
                .chain([per_jiffy.saturating_mul(49).saturating_sub(1)])
                .chain([
                    per_jiffy.saturating_mul(49),
                    per_jiffy.saturating_mul(50),
                    u64::MAX,
                ])
            {
                let want = if wb_dirty < per_jiffy {
                    1
                } else {
                    (wb_dirty / per_jiffy).saturating_add(1).min(MAX_PAUSE)
                };
                assert_eq!(
                    wb_max_pause(write_bw, wb_dirty),
                    want,
                    "{write_bw} {wb_dirty}"
                );
            }
        }
    }

    #[test]
    fn long_below_decides_like_the_division() {
        // wb_min_pause()'s second half as the kernel writes it.
        fn kernel(p: &MinPauseTarget, t: i64, task_ratelimit: u64) -> (u64, u64) {
            let (mut t, mut pages) = (t, p.pages);
            let (hz, max_pause) = (HZ as i64, p.max_pause as i64);
            if hz * pages / (task_ratelimit as i64 + 1) > max_pause {
                t = max_pause;
                pages = task_ratelimit as i64 * t / HZ_POW2;
            }
            min_pause_of(t, pages)
        }
        let mut seen_long = 0;
        for write_bw in [1u64, 100, 6_400, 25_600, 204_800, 1 << 40] {
            for dirty_ratelimit in [1u64, 50, 255, 2_000, 25_600, 204_800, 1 << 40] {
                for max_pause in 0..=MAX_PAUSE {
                    let p = MinPauseTarget::new(write_bw, dirty_ratelimit, max_pause);
                    assert!(p.long_below_exact);
                    // A target pause t with the kept result: where the pause
                    // fits, the kernel's result reads t only through
                    // min_pause_of, so any such t gives it; where it is too
                    // long, t is not read.
                    let t = (0..=2 * MAX_PAUSE as i64)
                        .find(|&t| min_pause_of(t, p.pages) == p.short)
                        .unwrap();
                    let bound = p.long_below;
                    let mut rates = vec![0u64, 1, 2, 1000, 1 << 20, 1 << 40];
                    rates.extend([bound.saturating_sub(1), bound, bound + 1]);
                    for task_ratelimit in rates {
                        seen_long += u32::from(task_ratelimit < bound);
                        assert_eq!(
                            p.min_pause(task_ratelimit),
                            kernel(&p, t, task_ratelimit),
                            "{write_bw} {dirty_ratelimit} {max_pause} {task_ratelimit}"
                        );
                    }
                }
            }
        }
        assert!(seen_long > 100, "{seen_long}");
    }

    #[test]
    fn pauses_are_at_least_a_jiffy() {
        // A throttled task that sleeps sleeps at least min(min_pause,
        // max_pause) jiffies: both are at least 1 for every max_pause that
        // wb_max_pause() returns.
        let rates = [
            0u64,
            1,
            2,
            31,
            32,
            255,
            256,
            8_000,
            8_001,
            25_600,
            1 << 20,
            1 << 40,
        ];
        for write_bw in rates {
            for wb_dirty in [0u64, 1, 100, 1 << 16, 1 << 30, u64::MAX] {
                assert!(wb_max_pause(write_bw, wb_dirty) >= 1);
            }
            for dirty_ratelimit in rates {
                for max_pause in 1..=MAX_PAUSE {
                    let p = MinPauseTarget::new(write_bw, dirty_ratelimit, max_pause);
                    for task_ratelimit in rates {
                        let (min_pause, _) = p.min_pause(task_ratelimit);
                        assert!(
                            min_pause >= 1,
                            "{write_bw} {dirty_ratelimit} {max_pause} {task_ratelimit}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dirty_limit_follows_up_at_once_and_down_slowly() {
        assert_eq!(update_dirty_limit(100, 200, 0), 200);
        assert_eq!(update_dirty_limit(200 + 320, 200, 0), 200 + 310);
        assert_eq!(update_dirty_limit(1000, 200, 900), 1000 - (100 >> 5));
    }

    #[test]
    fn dirty_ratelimit_converges_to_the_balanced_rate() {
        // Two tasks well above the setpoint (pos_ratio 1/2) on a
        // wb writing 10,000 pages/s: each task dirties at task_ratelimit, so
        // the wb's dirty rate is 2 · task_ratelimit and the balanced rate
        // write_bw / 2. (Exactly at the setpoint the kernel leaves
        // dirty_ratelimit alone: it only follows the balanced rate when the
        // position error points the same way, and barely moves it for a
        // small error: "don't pursue 100% rate matching".)
        let dtc = Dtc {
            thresh: 100_000,
            bg_thresh: 50_000,
            dirty_limit: 100_000,
            dirty: 95_000,
            wb_thresh: 100_000,
            wb_bg_thresh: 50_000,
            wb_dirty: 95_000,
            write_bw: 10_000,
            strict_limit: false,
        };
        let pos_ratio = POS_RATIO_ONE / 2;
        let mut r = RateLimit::default();
        let mut dirtied = 0;
        for _ in 0..2000 {
            // 200 ms at 2 · task_ratelimit.
            dirtied += 2 * ((r.dirty_ratelimit * pos_ratio) >> RATELIMIT_CALC_SHIFT) / 5;
            r.update(&dtc, pos_ratio, dirtied, 200);
            r.dirtied_stamp = dirtied;
        }
        assert!(r.dirty_ratelimit.abs_diff(5_000) < 500, "{r:?}");
        assert!(r.balanced.abs_diff(5_000) < 500, "{r:?}");
    }

    #[test]
    fn pauses_follow_the_kernel_bounds() {
        // A big wb_dirty on a slow device: MAX_PAUSE.
        assert_eq!(wb_max_pause(1000, 1 << 30), MAX_PAUSE);
        // Almost nothing dirty: one jiffy.
        assert_eq!(wb_max_pause(1 << 20, 10), 1);
        // One task at its balanced rate: a pause of about 10 ms (HZ / 100
        // jiffies) and nr_dirtied_pause pages to match it.
        let (min_pause, pages) = wb_min_pause(25_600, 25_600, MAX_PAUSE, 25_600);
        assert_eq!(min_pause, 1 + (HZ / 100).max(1) / 2);
        assert_eq!(pages, 25_600 * (HZ / 100).max(1) / HZ.next_power_of_two());
    }

    #[test]
    fn bandwidth_estimate_converges_to_the_measured_rate() {
        let mut e = BwEstimate::default();
        let mut written = 0;
        for k in 1..=200u64 {
            written += 2560 / 5; // 10 MiB/s over 200 ms
            e.update(k * 200, written, true);
        }
        assert!((e.avg as i64 - 2560).abs() < 60, "avg {}", e.avg);
        // A stalled device: the estimate decays towards 0 but stays >= 1.
        for k in 201..=400u64 {
            e.update(k * 200, written, true);
        }
        assert!(e.avg >= 1 && e.avg < 20, "avg {}", e.avg);
    }
}
