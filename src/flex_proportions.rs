//! Floating proportions: each bdi's share of recent writeback completions.
//!
//! This mirrors `lib/flex_proportions.c`. A global event count `e` and one
//! local count `x_j` per bdi are all halved once per *period*; the fraction of
//! bdi `j` is `x_j / e`. Only the global count is halved eagerly (in
//! [`FpropGlobal::new_period`]); a local count remembers the period it was
//! last brought up to date in and is halved for all the periods it missed the
//! next time it is touched ([`FpropLocal::reflect_period`]), so a period
//! switch costs O(1) whatever the number of bdis.
//!
//! Differences from the kernel, by design: counts are exact `u64`s instead of
//! per-cpu counters (the kernel reads them with an error of up to
//! `nr_cpus * PROP_BATCH`), and the period number is a `u32` compared with
//! wrapping subtraction, as the kernel's `unsigned int` is.

use crate::mul_div::{div128, mul_div};
use fixed::types::U1F63;

/// `FPROP_FRAC_SHIFT`: the precision of the capped add, fractions in 1/1024.
pub const FPROP_FRAC_SHIFT: u32 = 10;
/// `FPROP_FRAC_BASE`: a fraction of 1 in [`FPROP_FRAC_SHIFT`] precision.
pub const FPROP_FRAC_BASE: u32 = 1 << FPROP_FRAC_SHIFT;

/// A fraction `numerator / denominator` with `0 <= numerator <= denominator`
/// and `denominator > 0`, as `fprop_fraction_percpu()` returns it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct Fraction {
    /// The type's events.
    pub numerator: u64,
    /// All events (never 0).
    pub denominator: u64,
}

impl Fraction {
    /// Builds a fraction the way the kernel repairs one read from racy
    /// counters: the denominator is raised to the numerator, and to 1 if both are 0.
    pub fn new(numerator: u64, denominator: u64) -> Self {
        let denominator = if denominator <= numerator {
            numerator.max(1)
        } else {
            denominator
        };
        Fraction {
            numerator,
            denominator,
        }
    }

    /// The fraction as an unsigned fixed-point number in `[0, 1]`, exact to 2^-63.
    pub fn to_fixed(self) -> U1F63 {
        U1F63::from_bits(mul_div(self.numerator, 1 << 63, self.denominator))
    }

    /// The fraction in parts per million, rounded down.
    pub fn ppm(self) -> u64 {
        mul_div(self.numerator, 1_000_000, self.denominator)
    }
}

/// The global side (`struct fprop_global`): the event count and the period number.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct FpropGlobal {
    events: u64,
    period: u32,
}

impl Default for FpropGlobal {
    fn default() -> Self {
        Self::new()
    }
}

impl FpropGlobal {
    /// `fprop_global_init()`: the event count starts at 1 so that a fraction
    /// never divides by zero.
    pub const fn new() -> Self {
        FpropGlobal {
            events: 1,
            period: 0,
        }
    }

    /// The global event count `e`.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The current period number.
    pub fn period(&self) -> u32 {
        self.period
    }

    /// `fprop_new_period()`: declares `periods` new periods, halving the
    /// global count once per period (to 0 after 64). Returns `false`, and
    /// changes nothing, when there are no events left to age (count <= 1):
    /// aging has zeroed every fraction and period switching may stop.
    pub fn new_period(&mut self, periods: u32) -> bool {
        if self.events <= 1 {
            return false;
        }
        self.events = if periods < 64 {
            self.events >> periods
        } else {
            0
        };
        self.period = self.period.wrapping_add(periods);
        true
    }
}

/// The per-bdi side (`struct fprop_local_percpu`): a count and the period it
/// was last aged to.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct FpropLocal {
    events: u64,
    period: u32,
}

impl FpropLocal {
    /// `fprop_local_init_percpu()`, joining at the global's current period.
    pub const fn new(g: &FpropGlobal) -> Self {
        FpropLocal {
            events: 0,
            period: g.period,
        }
    }

    /// The count as it would be after [`reflect_period`](Self::reflect_period),
    /// without changing anything: halved once per period missed.
    pub fn events(&self, g: &FpropGlobal) -> u64 {
        let missed = g.period.wrapping_sub(self.period);
        if missed == 0 {
            self.events
        } else if missed < 64 {
            self.events >> missed
        } else {
            0
        }
    }

    /// `fprop_reflect_period_percpu()`: brings the count up to the global period.
    pub fn reflect_period(&mut self, g: &FpropGlobal) {
        self.events = self.events(g);
        self.period = g.period;
    }

    /// `__fprop_add_percpu()`: records `nr` events for this bdi and globally.
    /// The global count stops at `u64::MAX` (the kernel's s64 would wrap
    /// at 2^63): only as many events as still fit are recorded, so every sum
    /// of local counts stays exact and at most the global count.
    pub fn add(&mut self, g: &mut FpropGlobal, nr: u64) -> u64 {
        self.reflect_period(g);
        let nr = nr.min(u64::MAX - g.events);
        self.events = self.events.saturating_add(nr);
        g.events += nr;
        nr
    }

    /// `__fprop_add_percpu_max()`: records at most as many of `nr` events as
    /// keep this bdi's fraction at or below `max_frac / FPROP_FRAC_BASE`.
    /// Returns how many were recorded. With `max_frac >= FPROP_FRAC_BASE`
    /// every event counts; with `max_frac == 0` none does.
    pub fn add_max(&mut self, g: &mut FpropGlobal, max_frac: u32, nr: u64) -> u64 {
        let mut nr = nr;
        if max_frac < FPROP_FRAC_BASE {
            let f = self.fraction(g);
            let room = FPROP_FRAC_BASE - max_frac;
            // tmp = den * max_frac - num * 2^10, exactly (the kernel uses s64).
            let tmp = (f.denominator as i128) * (max_frac as i128)
                - ((f.numerator as i128) << FPROP_FRAC_SHIFT);
            if tmp < 0 {
                // Maximum fraction already exceeded.
                return 0;
            }
            let tmp = tmp as u128;
            if tmp < (nr as u128) * (room as u128) {
                // Add just enough for the fraction to saturate:
                // DIV_ROUND_UP(tmp, room), which is < nr and so fits in u64.
                let n = tmp + (room as u128 - 1);
                nr = div128((n >> 64) as u64, n as u64, room as u64).unwrap_or(nr);
            }
        }
        self.add(g, nr)
    }

    /// `fprop_fraction_percpu()`: this bdi's share of the global count.
    pub fn fraction(&self, g: &FpropGlobal) -> Fraction {
        Fraction::new(self.events(g), g.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_starts_at_one_and_stops_aging_when_empty() {
        let mut g = FpropGlobal::new();
        assert_eq!(g.events(), 1);
        assert!(!g.new_period(1), "nothing to age");
        assert_eq!(g.period(), 0);
        let mut l = FpropLocal::new(&g);
        l.add(&mut g, 9);
        assert_eq!(g.events(), 10);
        assert!(g.new_period(1));
        assert_eq!((g.events(), g.period()), (5, 1));
        assert_eq!(l.events(&g), 4);
        assert!(g.new_period(2));
        assert_eq!(g.events(), 1);
        assert!(!g.new_period(1));
    }

    #[test]
    fn add_max_saturates_at_the_cap() {
        // __fprop_add_percpu_max with max_frac = 256 (25%): a bdi alone may
        // only reach a quarter of the events.
        let mut g = FpropGlobal::new();
        let mut other = FpropLocal::new(&g);
        let mut l = FpropLocal::new(&g);
        other.add(&mut g, 299); // e = 300
                                // tmp = 300*256 - 0 = 76800; room = 768; nr*room = 100*768 > tmp
                                // => nr = ceil(76800/768) = 100
        assert_eq!(l.add_max(&mut g, 256, 1000), 100);
        assert_eq!(l.events(&g), 100);
        assert_eq!(g.events(), 400);
        // now 100/400 = 25%: tmp = 400*256 - 100*1024 = 0 -> adds ceil(0/768) = 0
        assert_eq!(l.add_max(&mut g, 256, 5), 0);
        // max_frac 0 never counts (max_ratio_fine < 977 ppm rounds to this)
        let mut z = FpropLocal::new(&g);
        assert_eq!(z.add_max(&mut g, 0, 50), 0);
    }

    #[test]
    fn fraction_repairs_like_the_kernel() {
        assert_eq!(
            Fraction::new(0, 0),
            Fraction {
                numerator: 0,
                denominator: 1
            }
        );
        assert_eq!(
            Fraction::new(7, 3),
            Fraction {
                numerator: 7,
                denominator: 7
            }
        );
        assert_eq!(Fraction::new(1, 2).ppm(), 500_000);
        assert_eq!(Fraction::new(1, 2).to_fixed(), U1F63::from_bits(1 << 62));
    }
}
