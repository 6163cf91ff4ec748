//! A writeback domain (`struct wb_domain`): the global completion
//! proportions, the period clock, the bdis and their settings, and the
//! policy that turns all of that into each bdi's `wb_thresh`.
//!
//! Cost of each call, with `n` bdis:
//!
//! * [`Domain::writeout_inc`] (a completion), [`Domain::note_active`] and
//!   [`Domain::note_held`]: O(1), touch one bdi only;
//! * [`Domain::wb_thresh`] (a query): O(1) for every policy;
//! * [`Domain::tick`] on a period boundary (or after a bdi reached its cap,
//!   or, for `Lend`, the active set or a lender's pages changed it),
//!   settings changes, add/remove
//!   and a changed [`Domain::update_dirty_limit`]: O(n) for `Redistribute`
//!   and `Lend`, which age every bdi and recompute the water level
//!   ([`crate::water_level`], [`crate::lending`]) in O(n) expected,
//!   O(n log n) at worst;
//!   O(1) otherwise.
//!
//! Every setter validates completely before it changes anything: an `Err`
//! leaves the whole domain as it was.

use crate::bdi::{Bdi, BdiId, Limit, LimitSum, Role};
use crate::consts::{BDI_RATIO_SCALE, PAGE_SHIFT, PAGE_SIZE, RATIO_FINE_MAX};
use crate::error::Error;
use crate::flex_proportions::{FpropGlobal, FpropLocal, Fraction};
use crate::global_limits::DirtyLimits;
use crate::lending::{self, Lending};
use crate::mul_div::mul_div;
use crate::period::{PeriodClock, DEFAULT_PERIOD_MS};
use crate::policy::{BytesMode, Policy};
use crate::water_level::{self, WaterLevel};
use crate::wb_thresh::{self, WbLimits};
use fixed::types::U32F32;

/// How a domain computes thresholds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct DomainConfig {
    /// How the pool is shared.
    pub policy: Policy,
    /// What `min_bytes`/`max_bytes` become.
    pub bytes_mode: BytesMode,
    /// Apply the 6.13+ idle-device floor (`false`: the pre-6.13 formula).
    /// `ClipOnly` never applies it.
    pub idle_floor: bool,
    /// Period length in the caller's time unit (default 3000 ms).
    pub period_len: u64,
}

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            policy: Policy::Redistribute,
            bytes_mode: BytesMode::Resolve,
            idle_floor: true,
            period_len: DEFAULT_PERIOD_MS,
        }
    }
}

impl DomainConfig {
    /// The given policy with the defaults; `Linux` converts bytes limits
    /// once when set, as the kernel does.
    pub fn new(policy: Policy) -> Self {
        DomainConfig {
            policy,
            bytes_mode: if policy == Policy::Linux {
                BytesMode::LinuxSnapshot
            } else {
                BytesMode::Resolve
            },
            ..DomainConfig::default()
        }
    }

    /// The same with periods of `len` time units.
    pub const fn with_period_len(mut self, len: u64) -> Self {
        self.period_len = len;
        self
    }

    /// The same with the 6.13+ idle-device floor on or off.
    pub const fn with_idle_floor(mut self, on: bool) -> Self {
        self.idle_floor = on;
        self
    }
}

/// A writeback domain over caller-provided bdi slots.
///
/// # Invariants
///
/// * `sum_min` is the sum of the floors (`Bdi::min`) of the live slots, and
///   `nr_live` the number of live slots: `add_bdi` (floor 0), `remove_bdi`
///   and the floor setters keep both;
/// * for `Redistribute`, `level` describes the slots as of the last
///   recompute, which every settings change, add/remove, changed `T` and
///   period boundary triggers; between recomputes only completions change
///   it ([`WaterLevel`]'s own invariants);
/// * a setter that returns `Err` has changed nothing.
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct Domain<'a> {
    slots: &'a mut [Bdi],
    cfg: DomainConfig,
    /// `dom->completions`.
    completions: FpropGlobal,
    clock: PeriodClock,
    /// `dom->dirty_limit`: the `T` the water level and bytes conversions use.
    dirty_limit: u64,
    /// `bdi_min_ratio`: the sum of all floors.
    sum_min: LimitSum,
    level: WaterLevel,
    /// `Lend`: which bdis are active.
    lend: Lending,
    nr_live: u32,
}

impl<'a> Domain<'a> {
    /// A domain with every slot of `slots` free. Ids are slot indices; at
    /// most `u32::MAX` slots are used.
    pub fn new(slots: &'a mut [Bdi], cfg: DomainConfig) -> Self {
        for s in slots.iter_mut() {
            *s = Bdi::EMPTY;
        }
        let usable = slots.len().min(u32::MAX as usize);
        Domain {
            slots: slots.get_mut(..usable).unwrap_or(&mut []),
            cfg,
            completions: FpropGlobal::new(),
            clock: PeriodClock::new(cfg.period_len),
            dirty_limit: 0,
            sum_min: LimitSum::default(),
            level: WaterLevel::default(),
            lend: Lending::new(),
            nr_live: 0,
        }
    }

    /// The configuration the domain was made with.
    pub fn config(&self) -> &DomainConfig {
        &self.cfg
    }

    /// The domain's policy.
    pub fn policy(&self) -> Policy {
        self.cfg.policy
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of live bdis.
    pub fn len(&self) -> u32 {
        self.nr_live
    }

    /// Whether no bdi is live.
    pub fn is_empty(&self) -> bool {
        self.nr_live == 0
    }

    /// The ids of all live bdis, in slot order.
    pub fn ids(&self) -> impl Iterator<Item = BdiId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, b)| b.live)
            .map(|(i, _)| BdiId(i as u32))
    }

    /// A live bdi's slot.
    pub fn bdi(&self, id: BdiId) -> Option<&Bdi> {
        self.slots.get(id.0 as usize).filter(|b| b.live)
    }

    /// The global completion proportions (`dom->completions`).
    pub fn completions(&self) -> &FpropGlobal {
        &self.completions
    }

    /// When the next period starts, `None` while period switching is off.
    pub fn period_deadline(&self) -> Option<u64> {
        self.clock.deadline()
    }

    /// The `T` last given to [`update_dirty_limit`](Self::update_dirty_limit).
    pub fn dirty_limit(&self) -> u64 {
        self.dirty_limit
    }

    /// The threshold used to convert pages to ratios outside a query.
    fn ref_thresh(&self) -> u64 {
        if self.dirty_limit == 0 {
            u64::from(u32::MAX)
        } else {
            self.dirty_limit
        }
    }

    fn recompute(&mut self) {
        let t0 = self.ref_thresh();
        match self.cfg.policy {
            Policy::Redistribute => {
                self.level = WaterLevel::recompute(self.slots, &self.completions, t0);
            }
            Policy::Lend => {
                self.level = self.lend.recompute(self.slots, &self.completions, t0);
            }
            Policy::ClipOnly | Policy::Linux => {}
        }
    }

    /// Registers a bdi (`bdi_register` + `wb_init`): no completions, no
    /// floor, no cap, not strict.
    pub fn add_bdi(&mut self) -> Result<BdiId, Error> {
        let (i, slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, b)| !b.live)
            .ok_or(Error::DomainFull)?;
        *slot = Bdi {
            completions: FpropLocal::new(&self.completions),
            live: true,
            ..Bdi::EMPTY
        };
        self.nr_live += 1;
        self.recompute();
        Ok(BdiId(i as u32))
    }

    /// Unregisters a bdi. Its past completions stay in the global count and
    /// age out with it, as in the kernel.
    pub fn remove_bdi(&mut self, id: BdiId) -> Result<(), Error> {
        let b = *self.bdi(id).ok_or(Error::UnknownBdi)?;
        // INVARIANT: the floor leaves the sum with the slot.
        self.sum_min.sub(b.min);
        if let Some(s) = self.slots.get_mut(id.0 as usize) {
            *s = Bdi::EMPTY;
        }
        self.nr_live = self.nr_live.saturating_sub(1);
        self.recompute();
        Ok(())
    }

    /// `bdi_set_min_ratio()`: percent, 0..=100.
    pub fn set_min_ratio(&mut self, id: BdiId, percent: u32) -> Result<(), Error> {
        if percent > 100 {
            return Err(Error::RatioOutOfRange);
        }
        self.set_min(
            id,
            Limit::ratio(percent * BDI_RATIO_SCALE),
            self.ref_thresh(),
        )
    }

    /// `bdi_set_max_ratio()`: percent, 0..=100.
    pub fn set_max_ratio(&mut self, id: BdiId, percent: u32) -> Result<(), Error> {
        if percent > 100 {
            return Err(Error::RatioOutOfRange);
        }
        self.set_max(
            id,
            Limit::ratio(percent * BDI_RATIO_SCALE),
            self.ref_thresh(),
        )
    }

    /// `min_ratio_fine`: ppm, 0..=1,000,000.
    pub fn set_min_ratio_fine(&mut self, id: BdiId, ppm: u32) -> Result<(), Error> {
        if ppm > RATIO_FINE_MAX {
            return Err(Error::RatioOutOfRange);
        }
        self.set_min(id, Limit::ratio(ppm), self.ref_thresh())
    }

    /// `max_ratio_fine`: ppm, 0..=1,000,000.
    pub fn set_max_ratio_fine(&mut self, id: BdiId, ppm: u32) -> Result<(), Error> {
        if ppm > RATIO_FINE_MAX {
            return Err(Error::RatioOutOfRange);
        }
        self.set_max(id, Limit::ratio(ppm), self.ref_thresh())
    }

    /// `bdi_set_min_bytes()`, validated against the current limits `now`.
    pub fn set_min_bytes(&mut self, id: BdiId, bytes: u64, now: &DirtyLimits) -> Result<(), Error> {
        self.bdi(id).ok_or(Error::UnknownBdi)?;
        let l = self.bytes_limit(bytes, now)?;
        self.set_min(id, l, now.thresh)
    }

    /// `bdi_set_max_bytes()`, validated against the current limits `now`.
    pub fn set_max_bytes(&mut self, id: BdiId, bytes: u64, now: &DirtyLimits) -> Result<(), Error> {
        self.bdi(id).ok_or(Error::UnknownBdi)?;
        let l = self.bytes_limit(bytes, now)?;
        self.set_max(id, l, now.thresh)
    }

    /// `bdi_check_pages_limit()` + `bdi_ratio_from_pages()`: the limit a
    /// bytes value stands for, in this domain's [`BytesMode`].
    fn bytes_limit(&self, bytes: u64, now: &DirtyLimits) -> Result<Limit, Error> {
        let pages = bytes >> PAGE_SHIFT;
        if pages > now.avail {
            return Err(Error::BytesAboveDirtyable);
        }
        if now.thresh == 0 {
            return Err(Error::NoDirtyThresh);
        }
        let ppm = mul_div(pages, u64::from(RATIO_FINE_MAX), now.thresh);
        if ppm > u64::from(RATIO_FINE_MAX) {
            return Err(Error::RatioOutOfRange);
        }
        Ok(match self.cfg.bytes_mode {
            BytesMode::LinuxSnapshot => Limit::ratio(ppm as u32),
            BytesMode::Resolve => Limit::pages(pages),
        })
    }

    /// `__bdi_set_min_ratio()`: the floor may not exceed the cap, and the
    /// floors of all bdis together must stay below 100%, compared at `t`.
    fn set_min(&mut self, id: BdiId, new: Limit, t: u64) -> Result<(), Error> {
        let b = *self.bdi(id).ok_or(Error::UnknownBdi)?;
        let ppm = |l: Limit| l.ppm_at(t).ok_or(Error::NoDirtyThresh);
        let (new_ppm, old_ppm, max_ppm) = (ppm(new)?, ppm(b.min)?, ppm(b.max)?);
        if new_ppm > max_ppm {
            return Err(Error::MinAboveMax);
        }
        if new_ppm > old_ppm {
            let sum = self.sum_min.ppm_at(t);
            if (sum - old_ppm.min(sum)).saturating_add(new_ppm) >= u64::from(RATIO_FINE_MAX) {
                return Err(Error::MinSumTooLarge);
            }
        }
        // INVARIANT: validated above; the sum of floors follows the slot's floor.
        self.sum_min.sub(b.min);
        self.sum_min.add(new);
        if let Some(s) = self.slots.get_mut(id.0 as usize) {
            s.min = new;
        }
        self.recompute();
        Ok(())
    }

    /// `__bdi_set_max_ratio()`: the cap may not go below the floor.
    fn set_max(&mut self, id: BdiId, new: Limit, t: u64) -> Result<(), Error> {
        let b = *self.bdi(id).ok_or(Error::UnknownBdi)?;
        let ppm = |l: Limit| l.ppm_at(t).ok_or(Error::NoDirtyThresh);
        if ppm(b.min)? > ppm(new)? {
            return Err(Error::MinAboveMax);
        }
        if let Some(s) = self.slots.get_mut(id.0 as usize) {
            s.max = new;
        }
        self.recompute();
        Ok(())
    }

    /// `bdi_set_strict_limit()`.
    pub fn set_strict_limit(&mut self, id: BdiId, on: bool) -> Result<(), Error> {
        self.bdi(id).ok_or(Error::UnknownBdi)?;
        if let Some(s) = self.slots.get_mut(id.0 as usize) {
            s.strict_limit = on;
        }
        Ok(())
    }

    /// The floor in ppm of the current `T` (`min_ratio_fine` as sysfs shows it).
    pub fn min_ratio_fine(&self, id: BdiId) -> Result<u64, Error> {
        let b = self.bdi(id).ok_or(Error::UnknownBdi)?;
        b.min.ppm_at(self.ref_thresh()).ok_or(Error::NoDirtyThresh)
    }

    /// The cap in ppm of the current `T` (`max_ratio_fine`).
    pub fn max_ratio_fine(&self, id: BdiId) -> Result<u64, Error> {
        let b = self.bdi(id).ok_or(Error::UnknownBdi)?;
        b.max.ppm_at(self.ref_thresh()).ok_or(Error::NoDirtyThresh)
    }

    /// `bdi_get_min_bytes()`: the floor in bytes at threshold `thresh`
    /// (a ratio converted as the kernel does, rounding in bytes).
    pub fn min_bytes(&self, id: BdiId, thresh: u64) -> Result<u64, Error> {
        let b = self.bdi(id).ok_or(Error::UnknownBdi)?;
        Ok(limit_bytes(b.min, thresh))
    }

    /// `bdi_get_max_bytes()`: the cap in bytes at threshold `thresh`.
    pub fn max_bytes(&self, id: BdiId, thresh: u64) -> Result<u64, Error> {
        let b = self.bdi(id).ok_or(Error::UnknownBdi)?;
        Ok(limit_bytes(b.max, thresh))
    }

    /// Sets the domain's dirty limit `T` (`dom->dirty_limit`), used for the
    /// water level and for converting pages to ratios outside queries.
    /// Recomputes the water level when it changed.
    pub fn update_dirty_limit(&mut self, thresh: u64) {
        if thresh != self.dirty_limit {
            self.dirty_limit = thresh;
            self.recompute();
        }
    }

    /// Recomputes the water level of `Redistribute` or `Lend` now (O(n), see the module
    /// doc); the domain already does so whenever its inputs call for it.
    pub fn rebalance(&mut self) {
        self.recompute();
    }

    /// `__wb_writeout_add()`: `nr` pages of `id` finished writeback at `now`.
    /// O(1): touches this bdi and the global count only. Unknown ids are ignored.
    pub fn writeout_inc(&mut self, id: BdiId, nr: u64, now: u64) {
        let ref_thresh = self.ref_thresh();
        let Some(b) = self.slots.get_mut(id.0 as usize).filter(|b| b.live) else {
            return;
        };
        match self.cfg.policy {
            Policy::Linux => {
                let max_frac = b.max.prop_frac_at(ref_thresh);
                b.completions.add_max(&mut self.completions, max_frac, nr);
            }
            Policy::ClipOnly => {
                b.completions.add(&mut self.completions, nr);
            }
            Policy::Redistribute => {
                let nr = b.completions.add(&mut self.completions, nr);
                if !b.capped {
                    let x = b.completions.events(&self.completions);
                    self.level.add_uncapped(b, x, nr);
                }
            }
            Policy::Lend => {
                let nr = lending::add_up_to_cap(
                    &mut b.completions,
                    &mut self.completions,
                    b.max,
                    ref_thresh,
                    nr,
                );
                match b.role {
                    Role::Count if !b.capped => {
                        let x = b.completions.events(&self.completions);
                        self.level.add_uncapped_lending(b, x, nr);
                    }
                    // A newcomer's weight goes from 1 to its count.
                    Role::Unit if nr > 0 => self.level.mark_stale(),
                    _ => {}
                }
            }
        }
        self.clock.arm(now);
    }

    /// `Lend`: pages were dirtied on `id`, or a writer on it is in
    /// `balance_dirty_pages()` (throttled, or asleep in a pause). O(1). An idle bdi reported active has its floor
    /// back at the next [`tick`](Self::tick). Other policies and unknown ids
    /// ignore it.
    pub fn note_active(&mut self, id: BdiId) {
        if self.cfg.policy != Policy::Lend {
            return;
        }
        if let Some(b) = self.slots.get_mut(id.0 as usize).filter(|b| b.live) {
            self.lend.note_active(b, &mut self.level);
        }
    }

    /// `Lend`: `id` holds `pages` pages now, dirty (`WB_RECLAIMABLE`) and
    /// under writeback (`WB_WRITEBACK`). O(1). While it lends, it keeps
    /// these pages and the others share the rest: the caller reports every
    /// change it sees cheaply (a lender's count only falls unless it
    /// dirties, which reports it active). Other policies and unknown ids
    /// ignore it.
    ///
    /// A count above `u64::MAX / capacity` is taken as that much, so that
    /// the lenders' sum is exact in 64 bits (no page count comes near it).
    pub fn note_held(&mut self, id: BdiId, pages: u64) {
        if self.cfg.policy != Policy::Lend {
            return;
        }
        let pages = pages.min(u64::MAX / (self.slots.len() as u64).max(1));
        if let Some(b) = self.slots.get_mut(id.0 as usize).filter(|b| b.live) {
            self.lend.note_held(b, &mut self.level, pages);
        }
    }

    /// `Lend`: whether `id` is active (reported since the tick before last).
    pub fn is_active(&self, id: BdiId) -> bool {
        self.bdi(id).is_some_and(|b| self.lend.is_active(b))
    }

    /// `writeout_period()`: declares the periods that ended by `now` and
    /// returns how many (0 if none, or if aging had already zeroed every
    /// fraction, which stops the clock until the next completion).
    /// `Redistribute` also recomputes here when a completion has pushed an
    /// uncapped bdi to its cap since the last recompute.
    /// `Lend` also ends its activity interval here and recomputes when the
    /// active set changed.
    pub fn tick(&mut self, now: u64) -> u32 {
        if self.cfg.policy == Policy::Lend && self.lend.end_tick() {
            self.level.mark_stale();
        }
        let due = self.clock.due(now);
        if due == 0 {
            if self.level.stale() {
                self.recompute();
            }
            return 0;
        }
        let aged = self.completions.new_period(due);
        self.clock.advance(due, !aged);
        if !aged {
            if self.level.stale() {
                self.recompute();
            }
            return 0;
        }
        self.recompute();
        due
    }

    /// The bdi's share of recent completions (`fprop_fraction_percpu()`).
    pub fn fraction(&self, id: BdiId) -> Fraction {
        match self.bdi(id) {
            Some(b) => b.completions.fraction(&self.completions),
            None => Fraction::new(0, 1),
        }
    }

    /// `__wb_calc_thresh()`: the bdi's dirty threshold in pages, for a
    /// domain threshold `thresh` and `dirty` pages dirty in the domain
    /// (the idle floor's input). 0 for an unknown id. O(1).
    pub fn wb_thresh(&self, id: BdiId, thresh: u64, dirty: u64) -> u64 {
        let Some(b) = self.bdi(id) else { return 0 };
        let (floor, max) = (b.min.resolve(thresh), b.max.resolve(thresh));
        let alloc = match self.cfg.policy {
            Policy::ClipOnly | Policy::Linux => {
                let pool = wb_thresh::pool(thresh, &self.sum_min);
                let f = b.completions.fraction(&self.completions);
                wb_thresh::proportional_share(pool, f).saturating_add(floor)
            }
            Policy::Redistribute => {
                let x = b.completions.events(&self.completions);
                self.level.allocation(b, x, thresh, floor, max)
            }
            Policy::Lend => {
                // A lender keeps the pages it holds, no share and no idle
                // floor: it gets its share at the next tick after it is
                // reported active.
                if b.role == Role::Lender {
                    return self
                        .level
                        .lender_allocation(b.held, thresh)
                        .min(max.max(floor));
                }
                let w = water_level::weight(b, &self.completions);
                self.level.allocation(b, w, thresh, floor, max)
            }
        };
        let idle = if self.cfg.idle_floor && self.cfg.policy != Policy::ClipOnly {
            wb_thresh::idle_floor(thresh, dirty, b.strict_limit)
        } else {
            0
        };
        wb_thresh::finish(alloc, idle, max.max(floor))
    }

    /// The bdi's `wb_thresh` and `wb_bg_thresh` for the domain limits `lim`.
    ///
    /// A `Lend` lender's `wb_bg_thresh` is its threshold at `bg_thresh`, as
    /// the kernel's `wb_over_bg_thresh()` computes it
    /// (`wb_calc_thresh(wb, bg_thresh)`): the pages it holds, not a share
    /// of them scaled by `bg_thresh / thresh`, so that holding them is not
    /// "over the background threshold" for the flusher.
    pub fn wb_limits(&self, id: BdiId, lim: &DirtyLimits, dirty: u64) -> WbLimits {
        let t = self.wb_thresh(id, lim.thresh, dirty);
        let lender =
            self.cfg.policy == Policy::Lend && self.bdi(id).is_some_and(|b| b.role == Role::Lender);
        WbLimits {
            wb_thresh: t,
            wb_bg_thresh: if lender {
                self.wb_thresh(id, lim.bg_thresh, dirty)
            } else {
                wb_thresh::wb_bg_thresh(t, lim)
            },
        }
    }

    /// `Redistribute`'s level `λ` at threshold `thresh`: an uncapped bdi gets
    /// `λ·f·P` from the pool. `None` for other policies, or when no
    /// uncapped bdi has completions.
    pub fn water_level(&self, thresh: u64) -> Option<U32F32> {
        if self.cfg.policy != Policy::Redistribute || self.level.uncapped_events() == 0 {
            return None;
        }
        let pool = wb_thresh::pool(thresh, &self.sum_min);
        if pool == 0 {
            return None;
        }
        let per_event = mul_div(
            self.level.rest(thresh),
            self.completions.events(),
            self.level.uncapped_events(),
        );
        Some(U32F32::from_bits(mul_div(per_event, 1 << 32, pool)))
    }

    /// The slots, live and free (for inspection; ids index this slice).
    pub fn slots(&self) -> &[Bdi] {
        self.slots
    }

    /// `bdi_min_ratio`: the floors of all bdis.
    pub fn sum_min(&self) -> LimitSum {
        self.sum_min
    }

    /// `Redistribute`'s state from the last recompute.
    pub fn water_level_state(&self) -> &WaterLevel {
        &self.level
    }

    /// How many bdis `Redistribute` found at their cap at the last recompute.
    pub fn capped_count(&self) -> u32 {
        self.level.capped()
    }
}

/// `bdi_get_bytes()`: `thresh * PAGE_SIZE * ppm / 10^6` for a ratio; a pages
/// limit is its pages in bytes.
fn limit_bytes(l: Limit, thresh: u64) -> u64 {
    match (l.as_pages(), l.as_ratio()) {
        (Some(p), _) => p.saturating_mul(PAGE_SIZE),
        (None, Some(ppm)) => mul_div(
            thresh.saturating_mul(PAGE_SIZE),
            u64::from(ppm),
            u64::from(RATIO_FINE_MAX),
        ),
        (None, None) => 0,
    }
}
