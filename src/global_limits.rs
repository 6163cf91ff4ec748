//! Global dirty limits: how much memory may be dirty at all.
//!
//! Mirrors `global_dirtyable_memory()` and `domain_dirty_limits()` in
//! mm/page-writeback.c for the global domain (no memcg, no highmem):
//!
//! * dirtyable memory `avail = max(free - totalreserve, 0) + file LRU + 1`;
//! * `thresh` from `vm.dirty_bytes` (rounded up to pages) or else from
//!   `vm.dirty_ratio`, which the kernel first turns into parts per PAGE_SIZE
//!   (`ratio * PAGE_SIZE / 100`) for precision: `thresh = ratio' * avail / PAGE_SIZE`;
//! * `bg_thresh` the same way from the background settings;
//! * a real-time (or deadline) task gets `x += x/4 + dirty_limit/32` on both;
//! * `thresh` is capped at `UINT_MAX` pages, and `bg_thresh >= thresh`
//!   becomes `thresh / 2`.

use crate::consts::PAGE_SIZE;
use crate::error::Error;
use crate::mul_div::{div_round_up, mul_div};

/// The vm.dirty_* sysctls. As in the kernel, a ratio and its bytes
/// counterpart exclude each other: setting one clears the other.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct VmDirtyConfig {
    /// `vm.dirty_ratio`, percent of dirtyable memory (default 20).
    pub dirty_ratio: u32,
    /// `vm.dirty_bytes` (0 = use the ratio).
    pub dirty_bytes: u64,
    /// `vm.dirty_background_ratio`, percent (default 10).
    pub dirty_background_ratio: u32,
    /// `vm.dirty_background_bytes` (0 = use the ratio).
    pub dirty_background_bytes: u64,
}

impl Default for VmDirtyConfig {
    fn default() -> Self {
        VmDirtyConfig {
            dirty_ratio: 20,
            dirty_bytes: 0,
            dirty_background_ratio: 10,
            dirty_background_bytes: 0,
        }
    }
}

impl VmDirtyConfig {
    /// `dirty_ratio_handler()`: 0..=100, clears `dirty_bytes`.
    pub fn set_dirty_ratio(&mut self, percent: u32) -> Result<(), Error> {
        if percent > 100 {
            return Err(Error::RatioOutOfRange);
        }
        self.dirty_ratio = percent;
        self.dirty_bytes = 0;
        Ok(())
    }

    /// `dirty_bytes_handler()`: at least two pages, clears `dirty_ratio`.
    pub fn set_dirty_bytes(&mut self, bytes: u64) -> Result<(), Error> {
        if bytes < 2 * PAGE_SIZE {
            return Err(Error::RatioOutOfRange);
        }
        self.dirty_bytes = bytes;
        self.dirty_ratio = 0;
        Ok(())
    }

    /// `dirty_background_ratio_handler()`: 0..=100, clears the bytes setting.
    pub fn set_dirty_background_ratio(&mut self, percent: u32) -> Result<(), Error> {
        if percent > 100 {
            return Err(Error::RatioOutOfRange);
        }
        self.dirty_background_ratio = percent;
        self.dirty_background_bytes = 0;
        Ok(())
    }

    /// `dirty_background_bytes_handler()`: at least 1, clears the ratio.
    pub fn set_dirty_background_bytes(&mut self, bytes: u64) -> Result<(), Error> {
        if bytes == 0 {
            return Err(Error::RatioOutOfRange);
        }
        self.dirty_background_bytes = bytes;
        self.dirty_background_ratio = 0;
        Ok(())
    }
}

/// Memory counters in pages, as in /proc/vmstat.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct MemInfo {
    /// `nr_free_pages`.
    pub free: u64,
    /// `totalreserve_pages`: kept back for the kernel, never dirtyable.
    pub totalreserve: u64,
    /// `nr_inactive_file + nr_active_file`.
    pub file_lru: u64,
}

/// `global_dirtyable_memory()`: never 0.
pub fn global_dirtyable_memory(m: &MemInfo) -> u64 {
    m.free
        .saturating_sub(m.totalreserve)
        .saturating_add(m.file_lru)
        .saturating_add(1)
}

/// The limits of one domain, in pages.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct DirtyLimits {
    /// Dirtyable memory the limits were computed from.
    pub avail: u64,
    /// The dirty threshold `T` (`dtc->thresh`).
    pub thresh: u64,
    /// The background threshold (`dtc->bg_thresh`).
    pub bg_thresh: u64,
}

/// `domain_dirty_limits()` for the global domain. `rt_boost` is the domain's
/// smoothed `dirty_limit` when the caller is a real-time or deadline task.
pub fn domain_dirty_limits(avail: u64, cfg: &VmDirtyConfig, rt_boost: Option<u64>) -> DirtyLimits {
    // Ratios in parts per PAGE_SIZE for higher precision.
    let ratio = u64::from(cfg.dirty_ratio) * PAGE_SIZE / 100;
    let bg_ratio = u64::from(cfg.dirty_background_ratio) * PAGE_SIZE / 100;

    let mut thresh = if cfg.dirty_bytes != 0 {
        div_round_up(cfg.dirty_bytes, PAGE_SIZE)
    } else {
        mul_div(ratio, avail, PAGE_SIZE)
    };
    let mut bg_thresh = if cfg.dirty_background_bytes != 0 {
        div_round_up(cfg.dirty_background_bytes, PAGE_SIZE)
    } else {
        mul_div(bg_ratio, avail, PAGE_SIZE)
    };

    if let Some(dirty_limit) = rt_boost {
        bg_thresh = bg_thresh
            .saturating_add(bg_thresh / 4)
            .saturating_add(dirty_limit / 32);
        thresh = thresh
            .saturating_add(thresh / 4)
            .saturating_add(dirty_limit / 32);
    }
    // Dirty throttling assumes page counts fit in 32 bits (16 TiB).
    thresh = thresh.min(u64::from(u32::MAX));
    if bg_thresh >= thresh {
        bg_thresh = thresh / 2;
    }
    DirtyLimits {
        avail,
        thresh,
        bg_thresh,
    }
}

/// `dirty_freerun_ceiling()`: below `(thresh + bg_thresh) / 2` tasks dirty freely.
pub fn dirty_freerun_ceiling(thresh: u64, bg_thresh: u64) -> u64 {
    thresh.saturating_add(bg_thresh) / 2
}

/// `hard_dirty_limit()`: the larger of the domain's smoothed `dirty_limit`
/// and `thresh`; no task may push dirty pages past it.
pub fn hard_dirty_limit(dirty_limit: u64, thresh: u64) -> u64 {
    dirty_limit.max(thresh)
}
