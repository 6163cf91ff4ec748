//! Exact redistribution: weighted max-min fair water-filling of the pool.
//!
//! Bdi `i` with completion count `x_i` (fraction `f_i = x_i / e`), floor
//! `m_i` and cap room `c_i = max_i − m_i` (all in pages at threshold `T`)
//! gets
//!
//! ```text
//! wb_thresh_i = m_i + min(c_i, λ · f_i · P),     P = T − Σ m_j
//! ```
//!
//! with the smallest level `λ ≥ 1` at which `P` is spent, or every bdi with
//! `x_i > 0` is at its cap. Raising `λ` saturates bdis in increasing order of
//! `c_i / x_i`, so a min-heap on that key (compared by cross-multiplying, no
//! division) finds the capped set `C` in `O(n + |C| log n)`: pop while the
//! bdi's share at the current level, `R · x_i / S` with `R` the pool not yet
//! committed and `S` the weight not yet capped, reaches its room.
//!
//! Between two recomputes only completions change the counts, and
//! [`WaterLevel`] keeps what a query needs in O(1): what is committed (the
//! floors of uncapped bdis, the caps of capped ones) as a ratio part and a
//! pages part, and `S`, the live sum of the uncapped bdis' counts (the
//! completion path adds to it). An uncapped bdi then gets
//! `m_i + min(c_i, R(T) · x_i / S)` with `R(T) = T − committed(T)`: the shares
//! of uncapped bdis sum to at most `R(T)`, so `Σ wb_thresh ≤ T` at any time and
//! any `T`, and at a recompute point this is exactly the water level above.
//! The capped set can go out of date between recomputes in two ways, both
//! detected in O(1) by the completion path, which then marks the level stale
//! so that the domain's next [`tick`](crate::domain::Domain::tick)
//! recomputes it (the share moves at the next tick, not the next period):
//!
//! * an uncapped bdi's share `R·x_i/S` reaches its room `c_i` (checked on
//!   its own count);
//! * `S` grows past the point where a capped bdi `j` would fall below its
//!   room, `R·x_j < c_j·S`. Capped counts only grow between recomputes, so
//!   it is enough to watch the capped bdi with the smallest `x_j / c_j`,
//!   found at the recompute. Without this a bdi alone at its cap (which may
//!   be all of `T`) would keep it until the next period while a newcomer
//!   starts writing.
//!
//! If floors and caps given in pages ever commit more than `T` (the threshold
//! shrank), everything committed is scaled down by `T / committed(T)`.

use crate::bdi::{Bdi, LimitSum, Role};
use crate::flex_proportions::FpropGlobal;
use crate::mul_div::{mul_div, scale_down};

/// What the last recompute decided, in the form the hot paths use.
///
/// # Invariants
///
/// Set by [`WaterLevel::recompute`] at threshold `t0`; until the next one:
///
/// * `committed` is the sum of the floors of the uncapped live bdis and the
///   caps of the capped ones (the floor where a capped bdi's floor exceeds its
///   cap), `capped` of them; `committed0` is that sum with each limit
///   resolved at `t0` on its own, and `rest0 = R(t0) = t0 − committed0`
///   (0 when over-committed);
/// * `uncapped_events` (`S`) is the sum of the uncapped live bdis' counts:
///   the completion path ([`WaterLevel::add_uncapped`]) adds every
///   completion of an uncapped bdi to it;
/// * `(uncap_x, uncap_room)` is the count and room of the capped bdi with the
///   smallest `x / room`, `(0, 0)` when none is capped;
/// * `stale` once set stays set: the domain recomputes at its next `tick`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct WaterLevel {
    /// The floors of uncapped bdis and the caps of capped ones.
    committed: LimitSum,
    /// `S`: the live sum of the uncapped bdis' completion counts.
    uncapped_events: u64,
    /// How many bdis are capped.
    capped: u32,
    /// `R(t0)`: the pool left for uncapped bdis at the recompute.
    rest0: u64,
    /// The threshold of the last recompute, and what it committed exactly
    /// (each floor and cap rounded on its own) at that threshold.
    t0: u64,
    committed0: u128,
    /// The capped bdi nearest to falling below its room: its count and room.
    uncap_x: u64,
    uncap_room: u64,
    /// The capped set is out of date since the recompute.
    stale: bool,
}

/// A bdi's weight in the water-filling: its completion count `x` for
/// [`Role::Count`], 1 for [`Role::Unit`], none for the others.
#[inline]
pub fn weight(b: &Bdi, g: &FpropGlobal) -> u64 {
    match b.role {
        Role::Count => b.completions.events(g),
        Role::Unit => 1,
        Role::Capped | Role::Lender => 0,
    }
}

/// Heap order: `a` saturates before `b` when `room_a / x_a < room_b / x_b`.
fn before(slots: &[Bdi], g: &FpropGlobal, a: u32, b: u32) -> bool {
    let (Some(a), Some(b)) = (slots.get(a as usize), slots.get(b as usize)) else {
        return false;
    };
    let (xa, xb) = (weight(a, g), weight(b, g));
    (a.room as u128) * (xb as u128) < (b.room as u128) * (xa as u128)
}

fn heap_entry(slots: &[Bdi], k: usize) -> u32 {
    slots.get(k).map_or(0, |s| s.order)
}

fn heap_swap(slots: &mut [Bdi], i: usize, j: usize) {
    let (oi, oj) = (heap_entry(slots, i), heap_entry(slots, j));
    if let Some(s) = slots.get_mut(i) {
        s.order = oj;
    }
    if let Some(s) = slots.get_mut(j) {
        s.order = oi;
    }
}

/// Sifts heap position `k` down in the heap of `len` entries kept in the
/// slots' `order` fields.
fn sift_down(slots: &mut [Bdi], g: &FpropGlobal, mut k: usize, len: usize) {
    loop {
        let l = 2 * k + 1;
        if l >= len {
            return;
        }
        let r = l + 1;
        let mut c = l;
        if r < len && before(slots, g, heap_entry(slots, r), heap_entry(slots, l)) {
            c = r;
        }
        if !before(slots, g, heap_entry(slots, c), heap_entry(slots, k)) {
            return;
        }
        heap_swap(slots, k, c);
        k = c;
    }
}

impl WaterLevel {
    /// Recomputes the capped set for threshold `t0` (the domain's current
    /// `dirty_limit`), each bdi taking the part its [`Role`] gives it.
    /// Ages every live bdi to the current period first.
    pub fn recompute(slots: &mut [Bdi], g: &FpropGlobal, t0: u64) -> WaterLevel {
        // The floors, each rounded on its own: the same pages the queries give.
        let mut floors = 0u128;
        let mut held = 0u64;
        let mut capped = 0u32;
        let mut len = 0usize;
        let mut weight = 0u64;
        for i in 0..slots.len() {
            let Some(b) = slots.get_mut(i) else { break };
            if !b.live {
                continue;
            }
            b.completions.reflect_period(g);
            let (floor, max) = (b.min.resolve(t0), b.max.resolve(t0));
            b.room = max.saturating_sub(floor);
            b.capped = b.role == Role::Capped;
            b.capped_at_min = max < floor;
            if b.role == Role::Lender {
                continue;
            }
            floors = floors.saturating_add(u128::from(floor));
            if b.capped {
                held = held.saturating_add(b.room);
                capped += 1;
            }
            let x = self::weight(b, g);
            if x > 0 {
                weight = weight.saturating_add(x);
                if let Some(s) = slots.get_mut(len) {
                    s.order = i as u32;
                }
                len += 1;
            }
        }
        for k in (0..len / 2).rev() {
            sift_down(slots, g, k, len);
        }

        let mut rest = u64::try_from(u128::from(t0).saturating_sub(floors))
            .unwrap_or(0)
            .saturating_sub(held);
        while len > 0 {
            let top = heap_entry(slots, 0);
            let Some(b) = slots.get_mut(top as usize) else {
                break;
            };
            let x = self::weight(b, g);
            // At the current level this bdi would get rest * x / weight.
            if (rest as u128) * (x as u128) < (b.room as u128) * (weight as u128) {
                break;
            }
            b.capped = true;
            rest = rest.saturating_sub(b.room);
            weight = weight.saturating_sub(x);
            capped += 1;
            len -= 1;
            heap_swap(slots, 0, len);
            sift_down(slots, g, 0, len);
        }

        let mut level = WaterLevel {
            capped,
            t0,
            ..WaterLevel::default()
        };
        for b in slots.iter().filter(|b| b.live && b.role != Role::Lender) {
            let x = self::weight(b, g);
            // The capped bdi with the smallest x / room uncaps first.
            if b.capped
                && b.role == Role::Count
                && b.room > 0
                && (level.uncap_room == 0
                    || (x as u128) * (level.uncap_room as u128)
                        < (level.uncap_x as u128) * (b.room as u128))
            {
                (level.uncap_x, level.uncap_room) = (x, b.room);
            }
            let l = match (b.capped, b.capped_at_min) {
                (true, false) => b.max,
                _ => b.min,
            };
            level.committed.add(l);
            level.committed0 = level.committed0.saturating_add(u128::from(l.resolve(t0)));
            if !b.capped {
                level.uncapped_events = level.uncapped_events.saturating_add(x);
            }
        }
        // INVARIANT: committed/committed0/uncapped_events/uncap_* summed over
        // every live slot above, so rest0 is R(t0) of this capped set.
        level.rest0 = level.rest(t0);
        level
    }

    /// Pages committed to floors and caps at threshold `thresh`: exact at the
    /// recompute's threshold, else from the aggregates, rounded so that it is
    /// never less than the sum of the individually rounded limits.
    #[inline]
    pub fn committed(&self, thresh: u64) -> u128 {
        if thresh == self.t0 {
            return self.committed0;
        }
        self.committed.resolve_wide(thresh)
    }

    /// `R(T)`: the pool left for uncapped bdis.
    #[inline]
    pub fn rest(&self, thresh: u64) -> u64 {
        u64::try_from(u128::from(thresh).saturating_sub(self.committed(thresh))).unwrap_or(0)
    }

    /// `S`: the live sum of uncapped bdis' counts.
    pub fn uncapped_events(&self) -> u64 {
        self.uncapped_events
    }

    /// How many bdis were at their cap at the last recompute.
    pub fn capped(&self) -> u32 {
        self.capped
    }

    /// The completion path of an uncapped bdi `b` whose count is now `x`:
    /// adds `nr` to `S`, and marks the level stale when `b`'s share at the
    /// recomputed level, `R·x/S`, has reached its room, or when the larger
    /// `S` pushes the nearest capped bdi below its room (two
    /// multiplications, no other bdi looked at).
    #[inline]
    pub fn add_uncapped(&mut self, b: &Bdi, x: u64, nr: u64) {
        self.uncapped_events = self.uncapped_events.saturating_add(nr);
        if !self.stale {
            let (r, s) = (self.rest0 as u128, self.uncapped_events as u128);
            self.stale = r * (x as u128) >= (b.room as u128) * s
                || r * (self.uncap_x as u128) < (self.uncap_room as u128) * s;
        }
    }

    /// Whether a bdi has outgrown its room since the last recompute.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// Marks the level out of date: the domain's next tick recomputes it.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Bdi `b`'s allocation (count `x`) at threshold `thresh`, before the
    /// idle floor and the final clip, given its floor and cap resolved at
    /// `thresh` (the query needs them for the clip too). O(1).
    /// At the recompute's threshold, `R` is the stored `rest0`. `x` is the
    /// bdi's [`weight`]; a [`Role::Lender`] has no allocation (the domain
    /// does not ask).
    #[inline]
    pub fn allocation(&self, b: &Bdi, x: u64, thresh: u64, floor: u64, max: u64) -> u64 {
        let (rest, committed) = if thresh == self.t0 {
            (self.rest0, self.committed0)
        } else {
            let c = self.committed.resolve_wide(thresh);
            (
                u64::try_from(u128::from(thresh).saturating_sub(c)).unwrap_or(0),
                c,
            )
        };
        let mine = if b.capped && !b.capped_at_min {
            max
        } else {
            floor
        };
        if committed > u128::from(thresh) {
            // over-committed: R = 0, everything committed is scaled down
            return scale_down(mine, thresh, committed);
        }
        if b.capped {
            return mine;
        }
        let share = if self.uncapped_events == 0 {
            0
        } else {
            mul_div(rest, x, self.uncapped_events)
        };
        floor.saturating_add(share.min(max.saturating_sub(floor)))
    }
}
