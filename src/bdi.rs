//! One backing device (`struct backing_dev_info` + its `bdi_writeback`) as
//! the dirty limit controller sees it: its completion count and its limits.
//!
//! A [`Limit`] is either a ratio of the dirty threshold in parts per million
//! (the kernel's `*_ratio_fine`; `min_ratio`/`max_ratio` in percent are
//! `ppm / BDI_RATIO_SCALE`), or a number of pages, from `min_bytes`/`max_bytes`
//! kept as such and resolved against the current threshold at every query.
//! The kernel turns bytes into a ratio once, when they are written; the
//! domain does the same in [`BytesMode::LinuxSnapshot`](crate::policy::BytesMode).

use crate::consts::RATIO_FINE_MAX;
use crate::flex_proportions::{FpropLocal, FPROP_FRAC_BASE};
use crate::mul_div::{div_wide, mul_div};

/// A limit on a bdi's threshold: a ratio of `T` in ppm, or pages. Packed in a
/// `u64` (top bit set for pages) to keep a slot small.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit(u64);

const PAGES_BIT: u64 = 1 << 63;

impl Limit {
    /// 0%: no floor.
    pub const NONE: Limit = Limit(0);
    /// 100%: no cap.
    pub const FULL: Limit = Limit(RATIO_FINE_MAX as u64);

    /// A ratio of the dirty threshold in ppm (1,000,000 = 100%).
    pub const fn ratio(ppm: u32) -> Limit {
        Limit(ppm as u64)
    }

    /// A number of pages (at most 2^63 - 1; larger values saturate).
    pub const fn pages(p: u64) -> Limit {
        Limit(if p >= PAGES_BIT {
            u64::MAX
        } else {
            p | PAGES_BIT
        })
    }

    /// The ratio in ppm, if this is a ratio.
    pub fn as_ratio(self) -> Option<u32> {
        (self.0 & PAGES_BIT == 0).then_some(self.0 as u32)
    }

    /// The number of pages, if this is a pages limit.
    pub fn as_pages(self) -> Option<u64> {
        (self.0 & PAGES_BIT != 0).then_some(self.0 & !PAGES_BIT)
    }

    /// The limit in pages for threshold `thresh`: `thresh * ppm / 10^6` as
    /// the kernel rounds it, or the pages clipped to `thresh`.
    #[inline]
    pub fn resolve(self, thresh: u64) -> u64 {
        match self.as_pages() {
            Some(p) => p.min(thresh),
            None => mul_div(thresh, self.0, RATIO_FINE_MAX as u64),
        }
    }

    /// The limit in ppm of `thresh` (`bdi_ratio_from_pages()` for pages);
    /// `None` for a pages limit when `thresh` is 0.
    pub fn ppm_at(self, thresh: u64) -> Option<u64> {
        match self.as_pages() {
            Some(p) => (thresh != 0).then(|| mul_div(p, RATIO_FINE_MAX as u64, thresh)),
            None => Some(self.0),
        }
    }

    /// `max_prop_frac`: the limit in 1/[`FPROP_FRAC_BASE`] of `thresh`,
    /// rounded down as `bdi_set_max_ratio()` does (a pages limit converted
    /// at `thresh`, 0 when `thresh` is 0). The cap up to which `Linux` and
    /// `Lend` count a bdi's completions.
    pub fn prop_frac_at(self, thresh: u64) -> u32 {
        let ppm = self
            .ppm_at(thresh)
            .unwrap_or(0)
            .min(u64::from(RATIO_FINE_MAX));
        (u64::from(FPROP_FRAC_BASE) * ppm / u64::from(RATIO_FINE_MAX)) as u32
    }
}

#[cfg(feature = "fmt")]
impl core::fmt::Debug for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.as_pages() {
            Some(p) => write!(f, "{p} pages"),
            None => write!(f, "{} ppm", self.0),
        }
    }
}

/// A sum of limits with the ratio and the pages parts kept apart, so that it
/// can be resolved against any `T`: the kernel's `bdi_min_ratio` (the sum of
/// all floors), and what the water level has committed.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct LimitSum {
    /// The ratio limits, ppm of `T`.
    pub ppm: u64,
    /// The pages limits.
    pub pages: u64,
}

impl LimitSum {
    /// Adds a limit.
    pub fn add(&mut self, l: Limit) {
        match (l.as_pages(), l.as_ratio()) {
            (Some(p), _) => self.pages = self.pages.saturating_add(p),
            (None, r) => self.ppm = self.ppm.saturating_add(r.map_or(0, u64::from)),
        }
    }

    /// Removes a limit added before.
    pub fn sub(&mut self, l: Limit) {
        match (l.as_pages(), l.as_ratio()) {
            (Some(p), _) => self.pages = self.pages.saturating_sub(p),
            (None, r) => self.ppm = self.ppm.saturating_sub(r.map_or(0, u64::from)),
        }
    }

    /// The sum in pages at threshold `thresh`: `thresh * ppm / 10^6 + pages`,
    /// never less than the sum of the limits each resolved on its own.
    pub fn resolve(&self, thresh: u64) -> u64 {
        mul_div(thresh, self.ppm, RATIO_FINE_MAX as u64).saturating_add(self.pages)
    }

    /// [`resolve`](Self::resolve) without saturation.
    #[inline]
    pub fn resolve_wide(&self, thresh: u64) -> u128 {
        let p = u128::from(thresh) * u128::from(self.ppm);
        let ratio = match u64::try_from(p) {
            Ok(p) => u128::from(p / u64::from(RATIO_FINE_MAX)),
            Err(_) => div_wide(p, u64::from(RATIO_FINE_MAX)),
        };
        ratio.saturating_add(u128::from(self.pages))
    }

    /// The sum in ppm of `thresh`, pages converted as `bdi_ratio_from_pages()`.
    pub fn ppm_at(&self, thresh: u64) -> u64 {
        let pages = Limit::pages(self.pages).ppm_at(thresh).unwrap_or(0);
        self.ppm.saturating_add(pages)
    }
}

/// A bdi's handle in its domain: the index of its slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct BdiId(pub u32);

/// One slot of a domain's caller-provided storage. The all-zero bit pattern
/// is a valid (free) slot, so C may hand over `kzalloc`ed memory.
///
/// # Invariants
///
/// * A slot that is not `live` holds [`Bdi::EMPTY`]'s values except its
///   `order` entry, which the water-level heap may use as scratch.
/// * `room`, `capped` and `capped_at_min` are valid only from one water-level
///   recompute to the next (they are written by
///   [`WaterLevel::recompute`](crate::water_level::WaterLevel::recompute) and
///   read by the queries and the completion path in between); `order` is
///   scratch of the recompute itself and means nothing outside it.
/// * `min` and `max` are what the last accepted setter stored; the domain's
///   sum of floors includes `min` exactly while the slot is `live`.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct Bdi {
    /// `wb->completions`: this bdi's floating proportion of completions.
    pub(crate) completions: FpropLocal,
    /// `min_ratio` / `min_bytes`: the floor.
    pub(crate) min: Limit,
    /// `max_ratio` / `max_bytes`: the cap.
    pub(crate) max: Limit,
    /// Water-filling scratch: the cap room above the floor at the last recompute.
    pub(crate) room: u64,
    /// Water-filling scratch: one entry of the array of candidates.
    pub(crate) order: u32,
    pub(crate) live: bool,
    /// `BDI_CAP_STRICTLIMIT`.
    pub(crate) strict_limit: bool,
    /// Redistribute: this bdi was at its cap at the last recompute.
    pub(crate) capped: bool,
    /// Redistribute: capped, and its floor was above its cap then (mixed units).
    pub(crate) capped_at_min: bool,
    /// Its part in the water-filling, set by the policy before each recompute.
    pub(crate) role: Role,
    /// Lend: the tick interval in which the caller last reported it active.
    pub(crate) active_tick: u32,
    /// Lend: the pages it holds (dirty and under writeback), as the caller
    /// last reported them.
    pub(crate) held: u64,
}

/// A bdi's part in the water-filling ([`crate::water_level`]), decided by
/// the policy before each recompute. Redistribute gives every bdi
/// [`Role::Count`]; [`crate::lending`] also uses the others.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub enum Role {
    /// Shares the pool with its completion count as weight.
    #[default]
    Count,
    /// Shares the pool with weight 1 (an active bdi with no completions
    /// while every active bdi with completions is capped).
    Unit,
    /// Held at its cap: commits its cap, takes no share.
    Capped,
    /// Idle: commits no floor and takes no share; it keeps the pages it
    /// holds ([`Bdi::held()`]) and lends the rest.
    Lender,
}

impl Default for Bdi {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Bdi {
    /// A free slot.
    pub const EMPTY: Bdi = Bdi {
        completions: FpropLocal::new(&crate::flex_proportions::FpropGlobal::new()),
        min: Limit::NONE,
        max: Limit::FULL,
        room: 0,
        order: 0,
        live: false,
        strict_limit: false,
        capped: false,
        capped_at_min: false,
        role: Role::Count,
        active_tick: 0,
        held: 0,
    };

    /// The bdi's floor, `min_ratio` or `min_bytes`.
    pub fn min(&self) -> Limit {
        self.min
    }

    /// The bdi's cap, `max_ratio` or `max_bytes`.
    pub fn max(&self) -> Limit {
        self.max
    }

    /// Whether `strict_limit` is set.
    pub fn strict_limit(&self) -> bool {
        self.strict_limit
    }

    /// `Lend`: the pages it holds (dirty and under writeback), as the
    /// caller last reported them.
    pub fn held(&self) -> u64 {
        self.held
    }
}
