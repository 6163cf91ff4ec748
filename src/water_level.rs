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
//! `c_i / x_i` (compared by cross-multiplying, no division): the capped set
//! `C` is the longest prefix in that order in which each bdi's share at the
//! current level, `R · x_i / S` with `R` the pool not yet committed and `S`
//! the weight not yet capped, reaches its room. A selection finds its end in
//! O(n) expected, O(n log n) at worst (see `select_capped`).
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
//!
//! `Lend`'s lenders ([`Role::Lender`]) take no part in the water-filling,
//! but the pages they hold, `lent`, come out of the pool: the uncapped bdis
//! share `R_B(T) = R(T) − min(R(T), lent)`, and a lender keeps its pages
//! ([`WaterLevel::lender_allocation`]). `lent` is a live aggregate like `S`:
//! the caller's reports move it in O(1), and a fall that lets an uncapped
//! bdi reach its room marks the level stale, as a completion does.

use crate::bdi::{Bdi, LimitSum, Role};
use crate::consts::RATIO_FINE_MAX;
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
///   resolved at `t0` on its own, so `R(t0) = t0 − committed0` (0 when
///   over-committed);
/// * `uncapped_events` (`S`) is the sum of the uncapped live bdis' counts:
///   the completion path ([`WaterLevel::add_uncapped`]) adds every
///   completion of an uncapped bdi to it;
/// * `(uncap_x, uncap_room)` is the count and room of the capped bdi with the
///   smallest `x / room`, `(0, 0)` when none is capped;
/// * `lent` is the sum of the pages the live [`Role::Lender`] bdis hold
///   ([`Bdi::held()`]): the caller's reports update it
///   ([`WaterLevel::lender_held`]); the uncapped bdis share
///   `R_B = R − min(R, lent)`, `rest0` at `t0`, and `query_pages` is
///   `committed.pages + lent` (saturating) for the query's fast path;
/// * while `lent > 0`, `(cap_x, cap_room)` is the weight and room of the
///   uncapped bdi with a weight and the largest `x / room` (the first to
///   reach its room when `R_B` grows), `(0, 0)` when there is none;
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
    /// `R_B(t0)`: what the uncapped bdis share at `t0` (`R(t0)` less what
    /// the lenders hold).
    rest0: u64,
    /// `R_B(t0)` for the query, `None` when over-committed at `t0`.
    rest0_query: Option<u64>,
    /// The committed pages and the lenders' pages together.
    query_pages: u64,
    /// The threshold of the last recompute, and what it committed exactly
    /// (each floor and cap rounded on its own) at that threshold.
    t0: u64,
    committed0: u128,
    /// The capped bdi nearest to falling below its room: its count and room.
    uncap_x: u64,
    uncap_room: u64,
    /// `Lend`: the pages the lenders hold, kept out of the uncapped bdis' pool.
    lent: u64,
    /// The uncapped bdi nearest to its room: its weight and room (kept
    /// while `lent > 0`).
    cap_x: u64,
    cap_room: u64,
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

/// A candidate's key `(room, x)`: bdi `i` reaches its cap at level `room / x`.
#[inline]
fn key(slots: &[Bdi], g: &FpropGlobal, i: u32) -> (u64, u64) {
    slots
        .get(i as usize)
        .map_or((0, 0), |b| (b.room, weight(b, g)))
}

/// Key order: `a` saturates before `b` when `room_a / x_a < room_b / x_b`,
/// compared by cross-multiplying.
#[inline]
fn before(a: (u64, u64), b: (u64, u64)) -> bool {
    (a.0 as u128) * (b.1 as u128) < (b.0 as u128) * (a.1 as u128)
}

/// The candidate at position `k` of the scratch array kept in the slots'
/// `order` fields.
#[inline]
fn entry(slots: &[Bdi], k: usize) -> u32 {
    slots.get(k).map_or(0, |s| s.order)
}

#[inline]
fn swap_entries(slots: &mut [Bdi], i: usize, j: usize) {
    let (oi, oj) = (entry(slots, i), entry(slots, j));
    if let Some(s) = slots.get_mut(i) {
        s.order = oj;
    }
    if let Some(s) = slots.get_mut(j) {
        s.order = oi;
    }
}

/// The pool and weight not yet committed while the capped set is searched.
struct Pool {
    rest: u64,
    weight: u64,
}

impl Pool {
    /// Whether the candidate with key `(room, x)` is at its cap once the
    /// candidates with the smaller keys, of rooms `rooms` and counts `xs`,
    /// are: its share `R·x / S` reaches its room. If so, commits them all.
    #[inline]
    fn take_if_capped(&mut self, (room, x): (u64, u64), rooms: u64, xs: u64) -> bool {
        let Some(rest) = self.rest.checked_sub(rooms) else {
            return false;
        };
        let weight = self.weight.saturating_sub(xs);
        if (rest as u128) * (x as u128) < (room as u128) * (weight as u128) {
            return false;
        }
        // INVARIANT: R·x >= room·S and x <= S, so R >= room: nothing saturates.
        self.rest = rest.saturating_sub(room);
        self.weight = weight.saturating_sub(x);
        true
    }
}

/// Marks the capped candidates among positions `lo..hi` of the scratch
/// array and returns how many there are.
///
/// In increasing key order the candidates at their cap are a prefix: taking
/// one whose key is below `R / S` raises `R / S`, taking one above lowers
/// it. So a selection finds the prefix's end: partition around a pivot (the
/// median of three); if the pivot is capped once every smaller key is, they
/// all are, else none of the larger ones is. That reads every candidate
/// about three times in all (O(n) expected, no sorting). Should the pivots
/// be poor and the reads pass [`SELECT_READS`]` · n`, a heap finishes the search in
/// O(n + |C| log n), so the worst case stays O(n log n).
fn select_capped(slots: &mut [Bdi], g: &FpropGlobal, pool: &mut Pool, len: usize) -> u32 {
    select_capped_within(slots, g, pool, len, len.saturating_mul(SELECT_READS))
}

/// Candidate reads per candidate the selection may spend before the heap
/// takes over.
const SELECT_READS: usize = 8;

/// [`select_capped`] with a budget of `budget` candidate reads.
fn select_capped_within(
    slots: &mut [Bdi],
    g: &FpropGlobal,
    pool: &mut Pool,
    len: usize,
    mut budget: usize,
) -> u32 {
    let (mut lo, mut hi) = (0usize, len);
    let mut heap_capped = 0;
    while lo < hi {
        let span = hi - lo;
        if span > budget {
            heap_capped = heap_capped_count(slots, g, pool, lo, hi);
            break;
        }
        budget -= span;
        median_of_three_last(slots, g, lo, hi);
        let last = hi - 1;
        let pivot = key(slots, g, entry(slots, last));
        let (mut store, mut rooms, mut xs) = (lo, 0u64, 0u64);
        for k in lo..last {
            let kk = key(slots, g, entry(slots, k));
            if before(kk, pivot) {
                swap_entries(slots, store, k);
                store += 1;
                rooms = rooms.saturating_add(kk.0);
                xs = xs.saturating_add(kk.1);
            }
        }
        swap_entries(slots, store, last);
        if pool.take_if_capped(pivot, rooms, xs) {
            lo = store + 1;
        } else {
            hi = store;
        }
    }
    for k in 0..lo {
        let i = entry(slots, k);
        if let Some(b) = slots.get_mut(i as usize) {
            b.capped = true;
        }
    }
    (lo as u32).saturating_add(heap_capped)
}

/// Moves the median (by key) of the first, middle and last candidates of
/// `lo..hi` to position `hi - 1`.
fn median_of_three_last(slots: &mut [Bdi], g: &FpropGlobal, lo: usize, hi: usize) {
    let (a, m, z) = (lo, lo + (hi - lo) / 2, hi - 1);
    let k = |s: &[Bdi], p: usize| key(s, g, entry(s, p));
    let (ka, km, kz) = (k(slots, a), k(slots, m), k(slots, z));
    let med = if before(ka, km) {
        if before(km, kz) {
            m
        } else if before(ka, kz) {
            z
        } else {
            a
        }
    } else if before(ka, kz) {
        a
    } else if before(km, kz) {
        z
    } else {
        m
    };
    swap_entries(slots, med, z);
}

/// The heap's fallback: a min-heap by key over positions `base..hi`, popped
/// while the top is at its cap; marks and counts the popped candidates.
fn heap_capped_count(
    slots: &mut [Bdi],
    g: &FpropGlobal,
    pool: &mut Pool,
    base: usize,
    hi: usize,
) -> u32 {
    let mut len = hi - base;
    for k in (0..len / 2).rev() {
        sift_down(slots, g, base, k, len);
    }
    let mut capped = 0u32;
    while len > 0 {
        let top = entry(slots, base);
        if !pool.take_if_capped(key(slots, g, top), 0, 0) {
            break;
        }
        if let Some(b) = slots.get_mut(top as usize) {
            b.capped = true;
        }
        capped += 1;
        len -= 1;
        swap_entries(slots, base, base + len);
        sift_down(slots, g, base, 0, len);
    }
    capped
}

/// Sifts heap position `k` down in the heap of `len` entries at positions
/// `base..base + len` of the scratch array.
fn sift_down(slots: &mut [Bdi], g: &FpropGlobal, base: usize, mut k: usize, len: usize) {
    let at = |s: &[Bdi], p: usize| key(s, g, entry(s, base + p));
    loop {
        let l = 2 * k + 1;
        if l >= len {
            return;
        }
        let r = l + 1;
        let mut c = l;
        if r < len && before(at(slots, r), at(slots, l)) {
            c = r;
        }
        if !before(at(slots, c), at(slots, k)) {
            return;
        }
        swap_entries(slots, base + k, base + c);
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
        let mut caps = 0u64;
        let mut lent = 0u64;
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
                lent = lent.saturating_add(b.held);
                continue;
            }
            floors = floors.saturating_add(u128::from(floor));
            if b.capped {
                caps = caps.saturating_add(b.room);
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
        let rest = u64::try_from(u128::from(t0).saturating_sub(floors))
            .unwrap_or(0)
            .saturating_sub(caps)
            .saturating_sub(lent);
        let capped =
            capped.saturating_add(select_capped(slots, g, &mut Pool { rest, weight }, len));

        let mut level = WaterLevel {
            capped,
            t0,
            lent,
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
                if lent > 0 {
                    level.note_uncapped(b, x);
                }
            }
        }
        // INVARIANT: committed/committed0/uncapped_events/uncap_*/cap_* summed
        // over every live slot above, so rest0 is R(t0) of this capped set.
        level.set_lent(lent);
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

    /// `R_B(T)`: what the uncapped bdis share, `R(T)` less the pages the
    /// lenders hold.
    #[inline]
    pub fn borrowers_rest(&self, thresh: u64) -> u64 {
        self.rest(thresh).saturating_sub(self.lent)
    }

    /// `Lend`: the pages the lenders hold.
    pub fn lent(&self) -> u64 {
        self.lent
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

    /// `Lend`'s completion path of an uncapped bdi:
    /// [`add_uncapped`](Self::add_uncapped), and while lenders hold pages,
    /// keeps the uncapped bdi nearest to its room. A call that recorded
    /// nothing (`nr = 0`: the bdi is at its cap in 1/1024 steps, or its cap
    /// rounds to 0) changes neither `x` nor `S`, so the capped set is as the
    /// last check left it; it returns at once, since the room test alone
    /// would read `0 ≥ 0` for a bdi with no count while `S = 0`.
    #[inline]
    pub fn add_uncapped_lending(&mut self, b: &Bdi, x: u64, nr: u64) {
        if nr == 0 {
            return;
        }
        self.add_uncapped(b, x, nr);
        if self.lent > 0 {
            self.note_uncapped(b, x);
        }
    }

    /// Sets the lenders' pages and what follows from them: `R_B(t0)` and
    /// the query's pages.
    fn set_lent(&mut self, lent: u64) {
        self.lent = lent;
        self.rest0 = self.rest(self.t0).saturating_sub(lent);
        self.rest0_query = (self.committed0 <= u128::from(self.t0)).then_some(self.rest0);
        self.query_pages = self.committed.pages.saturating_add(lent);
    }

    /// Keeps `(cap_x, cap_room)` the uncapped bdi with the largest
    /// `x / room`, given uncapped `b` with weight `x`.
    #[inline]
    fn note_uncapped(&mut self, b: &Bdi, x: u64) {
        if x > 0
            && (self.cap_x == 0
                || (x as u128) * (self.cap_room as u128) > (self.cap_x as u128) * (b.room as u128))
        {
            (self.cap_x, self.cap_room) = (x, b.room);
        }
    }

    /// `Lend`: a lender that held `old` pages now holds `new`. O(1): the
    /// uncapped bdis' pool `R_B` follows at once. The capped set is marked
    /// out of date when it may have changed: on any growth of `lent` (a
    /// capped bdi may fall below its room; rare, since a bdi dirties pages
    /// only while it is active), and on a fall that lets the uncapped bdi
    /// nearest to its room reach it, or that leaves pool beside waiting
    /// `newcomers` with every bdi that has completions capped.
    #[inline]
    pub fn lender_held(&mut self, old: u64, new: u64, newcomers: bool) {
        self.set_lent(self.lent.saturating_sub(old).saturating_add(new));
        if self.stale || new == old {
            return;
        }
        let r = self.rest0 as u128;
        let s = self.uncapped_events as u128;
        self.stale = new > old
            || if s == 0 {
                newcomers && r > 0
            } else {
                r * (self.cap_x as u128) >= (self.cap_room as u128) * s
            };
    }

    /// `Lend`: a lender holding `held` pages keeps them, as far as `R(T)`
    /// covers what all lenders hold (else in proportion, rounded down), so
    /// that the lenders together never get more than `R(T)`. O(1).
    #[inline]
    pub fn lender_allocation(&self, held: u64, thresh: u64) -> u64 {
        // R_B(T) > 0: the lenders' pages fit (the fast path's saturated
        // sum can give 0, never more, where they do not).
        if self.rest_for_query(thresh).is_some_and(|r| r > 0) {
            return held;
        }
        self.lender_scaled(held, thresh)
    }

    /// [`lender_allocation`](Self::lender_allocation) where the lenders'
    /// pages may not fit: exactly, from `R(T)`.
    #[cold]
    #[inline(never)]
    fn lender_scaled(&self, held: u64, thresh: u64) -> u64 {
        let r = self.rest(thresh);
        if self.lent <= r {
            held
        } else {
            mul_div(held, r, self.lent)
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

    /// `R_B(T)` for the query: `None` when floors, caps and the lenders'
    /// pages commit more than `T` (see [`allocation`](Self::allocation)).
    /// At the recompute's threshold it is stored; elsewhere `T·ppm` almost
    /// always fits in 64 bits, and then `R_B(T) = T − ⌊T·ppm / 10^6⌋ −
    /// (pages + lent)` is two checked subtractions, exactly what
    /// [`borrowers_rest`](Self::borrowers_rest) gives where that is
    /// positive.
    #[inline]
    fn rest_for_query(&self, thresh: u64) -> Option<u64> {
        if thresh == self.t0 {
            return self.rest0_query;
        }
        let p = u128::from(thresh) * u128::from(self.committed.ppm);
        let Ok(p) = u64::try_from(p) else {
            return self.rest_wide(thresh);
        };
        thresh
            .checked_sub(p / u64::from(RATIO_FINE_MAX))?
            .checked_sub(self.query_pages)
    }

    /// [`rest_for_query`](Self::rest_for_query) when `T·ppm` needs 128 bits.
    #[cold]
    #[inline(never)]
    fn rest_wide(&self, thresh: u64) -> Option<u64> {
        let c = self.committed.resolve_wide(thresh) + u128::from(self.lent);
        u64::try_from(u128::from(thresh).checked_sub(c)?).ok()
    }

    /// Bdi `b`'s allocation (count `x`) at threshold `thresh`, before the
    /// idle floor and the final clip, given its floor and cap resolved at
    /// `thresh` (the query needs them for the clip too). O(1). `x` is the
    /// bdi's [`weight`]; a [`Role::Lender`] has no allocation (the domain
    /// does not ask).
    #[inline]
    pub fn allocation(&self, b: &Bdi, x: u64, thresh: u64, floor: u64, max: u64) -> u64 {
        let Some(rest) = self.rest_for_query(thresh) else {
            return self.over_committed(b, thresh, floor, max);
        };
        if b.capped {
            return if b.capped_at_min { floor } else { max };
        }
        let share = if self.uncapped_events == 0 {
            0
        } else {
            mul_div(rest, x, self.uncapped_events)
        };
        floor.saturating_add(share.min(max.saturating_sub(floor)))
    }

    /// `R_B(T) = 0`. Where floors and caps fit in `T` and only the lenders'
    /// pages leave nothing to share, an uncapped bdi gets its floor and a
    /// capped one its cap. Over-committed (`R = 0`): everything committed
    /// is scaled down by `T / committed(T)`, and an uncapped bdi gets its
    /// scaled floor.
    #[cold]
    #[inline(never)]
    fn over_committed(&self, b: &Bdi, thresh: u64, floor: u64, max: u64) -> u64 {
        if self.committed(thresh) <= u128::from(thresh) {
            return if b.capped && !b.capped_at_min {
                max
            } else {
                floor
            };
        }
        let mine = if b.capped && !b.capped_at_min {
            max
        } else {
            floor
        };
        scale_down(mine, thresh, self.committed(thresh))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::flex_proportions::FpropLocal;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// Slots with the given `(room, x)` as candidates `0..len`, all
    /// uncapped, in the order given.
    fn slots_of(keys: &[(u64, u64)], g: &mut FpropGlobal) -> Vec<Bdi> {
        let mut slots = vec![Bdi::EMPTY; keys.len()];
        for (i, (s, &(room, x))) in slots.iter_mut().zip(keys).enumerate() {
            s.completions = FpropLocal::new(g);
            s.completions.add(g, x);
            s.room = room;
            s.order = i as u32;
        }
        slots
    }

    fn capped_set(slots: &[Bdi]) -> Vec<bool> {
        slots.iter().map(|b| b.capped).collect()
    }

    fn key_strategy() -> impl Strategy<Value = (u64, u64)> {
        // Few distinct values, so that keys tie often.
        (
            prop_oneof![0u64..4, 1u64..1000, Just(500u64)],
            prop_oneof![1u64..4, 1u64..1000, Just(7u64)],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The selection, with any budget (so the heap takes over at any
        /// point), caps exactly the bdis the heap alone caps, and leaves the
        /// same pool and weight.
        #[test]
        fn selection_caps_what_the_heap_caps(
            keys in prop::collection::vec(key_strategy(), 1..40),
            rest in prop_oneof![0u64..2000, 0u64..100_000],
            budget in prop_oneof![Just(0usize), 0usize..200, Just(usize::MAX)],
        ) {
            let mut g = FpropGlobal::new();
            let mut by_heap = slots_of(&keys, &mut g);
            let mut by_selection = by_heap.clone();
            let weight = keys.iter().map(|k| k.1).sum();
            let len = keys.len();
            let mut p1 = Pool { rest, weight };
            let n1 = heap_capped_count(&mut by_heap, &g, &mut p1, 0, len);
            let mut p2 = Pool { rest, weight };
            let n2 = select_capped_within(&mut by_selection, &g, &mut p2, len, budget);
            prop_assert_eq!(n1, n2);
            prop_assert_eq!(capped_set(&by_heap), capped_set(&by_selection));
            prop_assert_eq!((p1.rest, p1.weight), (p2.rest, p2.weight));
        }

        /// At a `T` other than the recompute's, the query's `R(T)` is the
        /// 128-bit `T − committed(T)`, and `None` exactly when that is negative.
        #[test]
        fn query_rest_at_a_moved_t_is_exact(
            ppm in prop_oneof![0u64..=1_000_000, 0u64..=20_000_000_000, any::<u64>()],
            pages in prop_oneof![0u64..1_000_000, any::<u64>()],
            lent in prop_oneof![Just(0u64), 0u64..1_000_000, any::<u64>()],
            thresh in prop_oneof![0u64..10_000_000, any::<u64>()],
        ) {
            prop_assume!(pages.checked_add(lent).is_some());
            let mut level = WaterLevel {
                committed: LimitSum { ppm, pages },
                t0: thresh.wrapping_add(1),
                ..WaterLevel::default()
            };
            level.set_lent(lent);
            let committed = level.committed.resolve_wide(thresh) + u128::from(lent);
            let want = (committed <= u128::from(thresh)).then(|| level.borrowers_rest(thresh));
            prop_assert_eq!(level.rest_for_query(thresh), want);
        }
    }
}
