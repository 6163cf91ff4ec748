//! Lending: what idle bdis hold goes to the bdis that are dirtying now.
//!
//! [`Policy::Lend`](crate::policy::Policy::Lend) is `Redistribute` with two
//! more inputs. Which bdis are *active*: the caller reports a bdi with
//! [`Domain::note_active`](crate::domain::Domain::note_active) whenever
//! pages were dirtied on it or a writer on it is in `balance_dirty_pages()`
//! (throttled, or asleep in a pause); a bdi is active while it
//! was reported in the current or the previous tick interval (between two
//! [`Domain::tick`](crate::domain::Domain::tick) calls). The caller also
//! reports the pages `h_i` each bdi holds, dirty and under writeback
//! ([`Domain::note_held`](crate::domain::Domain::note_held)). It changes
//! three things.
//!
//! **Idle bdis lend what they do not hold.** The water level
//! ([`crate::water_level`]) is computed over the active set `A` only. An
//! idle bdi (a *lender*) commits no floor and takes no share; it keeps the
//! pages it holds, within its cap, and no idle-device floor either, since
//! it gets its share at the next tick after it is reported, which is what
//! the idle floor is for. With `f_i = x_i / e`:
//!
//! ```text
//!   wb_thresh_i = T·min_i + min( T·(max_i − min_i), λ·f_i·P_A )   for i ∈ A
//!   wb_thresh_i = min( h_i, T·max_i )                             for i ∉ A
//!   P_A = R − min( R, Σ_{j∉A} h_j ),   R = T − Σ_{j∈A} T·min_j − (caps of capped)
//! ```
//!
//! with `λ` the smallest level at which `P_A` is spent or every `i ∈ A` with
//! `x_i > 0` is capped; should the lenders hold more than `R`, lender `i`
//! gets `⌊h_i·R / Σ_{j∉A} h_j⌋` instead. The lenders' floors `T·min_i` and
//! their stale shares `f_i·P` are in `P_A`, so the borrowers get them in
//! proportion to their own fractions; the pages a lender holds are not
//! lent until they are written back (lent while still held, a borrower
//! could dirty them on top: a `strict_limit` one is not throttled by the
//! global count below its own freerun ceiling). `P_A` follows the
//! lenders' reports at once (O(1)): written-back pages go to the borrowers
//! without a recompute. `Σ_A f_i ≤ 1` still gives `Σ wb_thresh ≤ T` at any
//! `T` (before the idle floor of active bdis), and with every bdi active
//! this is `Redistribute`'s level. A lender's `wb_bg_thresh` is its
//! threshold at `bg_thresh` (as the kernel's `wb_over_bg_thresh()` computes
//! it), so the flusher does not write its pages early for holding them.
//!
//! **Newcomers share equally.** If every active bdi with completions is
//! capped while pool is left (a writer starts on a bdi with no completions
//! beside capped ones, or on an idle system whose fractions belong to bdis
//! that stopped), the rest is water-filled among the active bdis with no
//! completions with weight 1 each: `m_i + min(c_i, μ)` with `μ` the level
//! that spends it. Their first completion makes the level stale, and the
//! next tick goes back to weights `x_i`. So nothing is left unallocated
//! while an active bdi is below its cap, where the pages a lender holds
//! count as allocated to it.
//!
//! **Completions count up to the cap, as Linux counts them.** A bdi's
//! completions are recorded only while they keep its fraction at or below
//! `m/1024`, with `m = max_prop_frac` the cap in Linux's 1/1024 steps rounded
//! down (10/1024 = 0.977% for `max_ratio` 1): `nr` is cut to the largest `n`
//! with `(x + n)·1024 ≤ m·(e + n)`, i.e. `n ≤ (m·e − 1024·x) / (1024 − m)`
//! (integer halving at a period's end may then lift the fraction by less
//! than one event, and once aging has zeroed the global count the first
//! completions count against 1, as the kernel's fraction does). This is
//! `__fprop_add_percpu_max()`'s cut rounded down instead of up, so a bdi
//! records what Linux records, to within one event per call. A capped bdi
//! that stops completing therefore leaves its cap as soon as the others
//! complete, and its threshold falls from where Linux's falls from, at the
//! same rate (`Redistribute`, counting every completion, takes the periods
//! a fraction far above its cap needs to decay). What this changes: the
//! weights are the recorded counts, so a bdi that wants more than its cap
//! is allocated `λ·(m/1024)·P_A`, below its cap `T·max_i` unless lenders or
//! capped bdis raise `λ` (at `λ = 1`, 0.977% of `P` for `max_ratio` 1, as
//! under Linux), and the difference goes to the others; every invariant
//! above holds for the recorded counts, and `Redistribute`'s results are
//! equal for the same recorded counts (not for the same completions).
//! Counting exactly to `T·max_i` instead would start that fall 2.3% higher
//! for `max_ratio` 1 and converge later than Linux (docs/lending.md).
//!
//! # What the owner of a floor is guaranteed
//!
//! A lender that becomes active makes the level stale
//! ([`Lending::note_active`], O(1)); the next tick recomputes it with the
//! owner in `A`, so from then on `wb_thresh_o ≥ T·min_o` (clipped to its
//! cap). Borrowed pages are not preemptible, though: they are dirty or under
//! writeback already, and the owner's room is `T` minus what the others hold.
//! With `D_B` the pages the borrowers hold when the owner wakes (at most the
//! hard limit `H`, which `dirty_limit` keeps near `T`), the owner can have
//! its floor once `D_B ≤ T − T·min_o`; the borrowers must flush
//!
//! ```text
//!   E = D_B − (T − T·min_o)  ≤  T·min_o + (H − T)
//! ```
//!
//! pages. Their thresholds dropped at the tick, so they are above them and
//! throttled; if they dirty nothing more while above (`strict_limit`, or a
//! domain at its hard limit), `D_B` falls at `B = Σ_b bw_b`, their writeback
//! bandwidths, and the owner waits at most
//!
//! ```text
//!   wait ≤ one tick + (T·min_o + H − T) / B
//! ```
//!
//! (a borrower still dirtying at rate `r_b` while above its threshold slows
//! this to `B − Σ r_b`). The simulator's `owner-wakes` scenario measures it.
//!
//! # Cost
//!
//! [`Lending::note_active`], [`Lending::note_held`] and the completion path
//! are O(1) and touch one bdi; the query is `Redistribute`'s plus one
//! comparison and one subtraction (a lender's, one comparison or, when the
//! lenders hold more than `R`, one division). A tick is O(1)
//! unless the active set changed (a lender reported active, or an active
//! bdi not reported during the interval) or a lender's pages moved the
//! capped set (they grew, or fell far enough for an uncapped bdi to reach
//! its cap or for waiting newcomers to get pool), when it recomputes in
//! O(n), twice when newcomers share equally.

use crate::bdi::{Bdi, Limit, Role};
use crate::flex_proportions::{FpropGlobal, FpropLocal, FPROP_FRAC_BASE};
use crate::mul_div::div_wide;
use crate::water_level::WaterLevel;

/// The active set's bookkeeping: the tick interval and how many of the bdis
/// active at the last recompute have been reported in it.
///
/// # Invariants
///
/// `seen ≤ active`; a bdi is active iff it was reported in interval `tick`
/// or `tick − 1` (wrapping: a report 2^32 ticks old looks recent, and the
/// next tick corrects that).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct Lending {
    tick: u32,
    /// Bdis active at the last recompute.
    active: u32,
    /// Of those, how many were reported in the current interval.
    seen: u32,
    /// The last recompute left active bdis without completions waiting
    /// beside uncapped ones or a spent pool (weights are counts).
    newcomers: bool,
}

impl Default for Lending {
    fn default() -> Self {
        Self::new()
    }
}

impl Lending {
    /// No bdi active. A free slot's `active_tick` (0) is two intervals old.
    pub const fn new() -> Self {
        Lending {
            tick: 2,
            active: 0,
            seen: 0,
            newcomers: false,
        }
    }

    /// Whether `b` was reported in this interval or the previous one.
    #[inline]
    pub fn is_active(&self, b: &Bdi) -> bool {
        self.tick.wrapping_sub(b.active_tick) <= 1
    }

    /// The caller reports `b` active. O(1): a lender makes `level` stale, so
    /// that the next tick gives it its floor back.
    #[inline]
    pub fn note_active(&mut self, b: &mut Bdi, level: &mut WaterLevel) {
        if b.active_tick == self.tick {
            return;
        }
        b.active_tick = self.tick;
        if b.role == Role::Lender {
            level.mark_stale();
        } else {
            self.seen = self.seen.saturating_add(1);
        }
    }

    /// The caller reports the pages `b` holds (dirty and under writeback).
    /// O(1): a lender's change moves the borrowers' pool at once.
    #[inline]
    pub fn note_held(&self, b: &mut Bdi, level: &mut WaterLevel, pages: u64) {
        let old = core::mem::replace(&mut b.held, pages);
        if b.role == Role::Lender {
            level.lender_held(old, pages, self.newcomers);
        }
    }

    /// Ends the tick interval. Returns whether a bdi active at the last
    /// recompute went unreported in it (it becomes a lender: recompute).
    pub fn end_tick(&mut self) -> bool {
        let quiet = self.seen < self.active;
        self.tick = self.tick.wrapping_add(1);
        self.seen = 0;
        quiet
    }

    /// The water level with the lenders out, at threshold `t0`. O(n), or
    /// twice that when newcomers share the rest equally.
    pub fn recompute(&mut self, slots: &mut [Bdi], g: &FpropGlobal, t0: u64) -> WaterLevel {
        let (mut active, mut seen, mut newcomers) = (0u32, 0u32, 0u32);
        for b in slots.iter_mut().filter(|b| b.live) {
            if self.is_active(b) {
                b.role = Role::Count;
                active += 1;
                seen += u32::from(b.active_tick == self.tick);
                newcomers += u32::from(b.completions.events(g) == 0);
            } else {
                b.role = Role::Lender;
            }
        }
        (self.active, self.seen) = (active, seen);
        self.newcomers = newcomers > 0;
        let level = WaterLevel::recompute(slots, g, t0);
        if newcomers == 0 || level.uncapped_events() > 0 || level.borrowers_rest(t0) == 0 {
            return level;
        }
        // Every active bdi with completions is capped and pool is left.
        for b in slots.iter_mut().filter(|b| b.live && b.role == Role::Count) {
            b.role = if b.completions.events(g) == 0 {
                Role::Unit
            } else {
                Role::Capped
            };
        }
        WaterLevel::recompute(slots, g, t0)
    }
}

/// `__wb_writeout_add()` for `Lend`: records as many of `nr` completions as
/// keep the fraction at or below the cap `max` in Linux's 1/1024 steps
/// (`max_prop_frac`, at threshold `thresh` for a pages cap), rounded down.
/// Returns how many were recorded. O(1).
///
/// With `m = max_prop_frac` this is the largest `n ≤ nr` with
/// `(x + n)·1024 ≤ m·(e + n)`, i.e. `n ≤ (m·e − 1024·x) / (1024 − m)`:
/// `__fprop_add_percpu_max()`'s cut, which rounds up instead (a call may
/// lift the kernel's fraction above `m/1024` by less than one event).
#[inline]
pub fn add_up_to_cap(
    local: &mut FpropLocal,
    g: &mut FpropGlobal,
    max: Limit,
    thresh: u64,
    nr: u64,
) -> u64 {
    let full = u64::from(FPROP_FRAC_BASE);
    let mut nr = nr;
    // No cap (the common case): nothing to convert.
    let max_frac = if max == Limit::FULL {
        full
    } else {
        u64::from(max.prop_frac_at(thresh))
    };
    if max_frac < full {
        // The fraction as aged to the current period; `add` stores it.
        let f = local.fraction(g);
        let (room, used) = (
            u128::from(max_frac) * u128::from(f.denominator),
            u128::from(f.numerator) * u128::from(full),
        );
        let (left, step) = (room.saturating_sub(used), full - max_frac);
        // Only a call that would pass the cap divides (as the kernel's).
        if left < u128::from(nr) * u128::from(step) {
            // left / step < nr: fits.
            nr = u64::try_from(div_wide(left, step)).unwrap_or(nr);
        }
    }
    local.add(g, nr)
}
