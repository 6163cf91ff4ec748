//! The per-bdi threshold arithmetic shared by every policy
//! (`__wb_calc_thresh()` and `wb_bg_thresh` in mm/page-writeback.c).
//!
//! For a bdi with completion fraction `f`, floor `min` and cap `max`, the
//! kernel computes, in this integer order:
//!
//! ```text
//! wb_thresh  = T * (10^6 - Σmin) / 10^6        the pool P no floor reserves
//! wb_thresh  = wb_thresh * num / den           P·f (64-bit in the kernel)
//! wb_thresh += T * min / 10^6                  the bdi's own floor
//! if T > dirty:                                (6.13+) idle-device floor
//!     wb_thresh = max(wb_thresh, (T - dirty) / (strict_limit ? 100 : 8))
//! wb_thresh  = min(wb_thresh, T * max / 10^6)
//! ```
//!
//! The policies differ only in how `P` is shared (proportionally, or by
//! water-filling) and in which completions count; the pool, the floor, the
//! idle floor and the clip are these functions, used by all of them.

use crate::bdi::LimitSum;
use crate::consts::RATIO_FINE_MAX;
use crate::flex_proportions::Fraction;
use crate::global_limits::DirtyLimits;
use crate::mul_div::mul_div;

/// The pool `P = T·(1 − Σmin)`: `T * (10^6 - Σmin_ppm) / 10^6` as the
/// kernel rounds it, less any floors given in pages.
#[inline]
pub fn pool(thresh: u64, sum_min: &LimitSum) -> u64 {
    let free_ppm = (RATIO_FINE_MAX as u64).saturating_sub(sum_min.ppm);
    mul_div(thresh, free_ppm, RATIO_FINE_MAX as u64).saturating_sub(sum_min.pages)
}

/// `P·f` with the kernel's rounding (`wb_thresh * num / den`), exact where
/// the kernel's 64-bit product would overflow.
#[inline]
pub fn proportional_share(pool: u64, f: Fraction) -> u64 {
    mul_div(pool, f.numerator, f.denominator)
}

/// The idle-device floor of Linux 6.13+: while the domain is below its
/// threshold, every bdi may dirty at least a slice of the room left, so that
/// an idle or new device is not stuck at 0.
#[inline]
pub fn idle_floor(thresh: u64, dirty: u64, strict_limit: bool) -> u64 {
    let room = thresh.saturating_sub(dirty);
    // Two constant divisions rather than one by a divisor chosen at run time.
    if strict_limit {
        room / 100
    } else {
        room / 8
    }
}

/// The last two steps: raise to the idle floor (when in force), then clip to the cap.
#[inline]
pub fn finish(alloc: u64, idle_floor: u64, cap: u64) -> u64 {
    alloc.max(idle_floor).min(cap)
}

/// `wb_bg_thresh = wb_thresh * bg_thresh / thresh` (`wb_dirty_limits()`).
#[inline]
pub fn wb_bg_thresh(wb_thresh: u64, lim: &DirtyLimits) -> u64 {
    if lim.thresh == 0 {
        0
    } else {
        mul_div(wb_thresh, lim.bg_thresh, lim.thresh)
    }
}

/// A bdi's threshold and background threshold.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct WbLimits {
    /// `wb_thresh`: the bdi's share of the dirty threshold, pages.
    pub wb_thresh: u64,
    /// `wb_bg_thresh`: its share of the background threshold, pages.
    pub wb_bg_thresh: u64,
}
