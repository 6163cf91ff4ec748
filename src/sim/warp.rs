//! A period clock that follows recorded boundaries: the time the core's domain is given, so
//! that its free-running period clock (`VM_COMPLETIONS_PERIOD_LEN`, 3 s) ends its periods
//! exactly when a kernel's `writeout_period()` ran.
//!
//! The kernel's period timer has a phase nobody chose (it was armed by some completion long
//! ago) and fires on the timer wheel's granularity (on HZ=250, multiples of 64 jiffies: 2.816
//! or 3.072 s apart), so a model with its own 3 s clock ages completions at other instants
//! than the kernel did. How fast a newcomer's share grows depends on when the others' counts
//! halve; `dirtylimit observe` and `crosscheck` follow the boundaries they see through
//! tracefs, and `dirtylimit replay` gives the simulator the boundaries a recording saw.

use std::vec;
use std::vec::Vec;

/// Maps sampler time to model time so that the model's 3 s period clock ticks exactly when the
/// kernel's `writeout_period()` ran: model time runs with real time from the latest kernel
/// boundary but stops 1 ms short of the next model boundary until the kernel's next boundary
/// is seen, and then jumps to it (several periods at once when the kernel's deferrable timer
/// was late by whole periods).
#[derive(Debug, Clone, PartialEq)]
pub struct Warp {
    period_ms: u64,
    /// Model time of the latest boundary.
    base: u64,
    /// Real time (ms since start) of the latest kernel boundary.
    last_b: f64,
    pending: Vec<f64>,
}

impl Warp {
    /// A warp with periods of `period_ms`.
    pub fn new(period_ms: u64) -> Self {
        Warp {
            period_ms: period_ms.max(2),
            base: 0,
            last_b: 0.0,
            pending: vec![],
        }
    }

    /// Kernel boundaries (seconds since start) observed since the last call.
    pub fn push(&mut self, boundaries: &[f64]) {
        self.pending.extend(boundaries.iter().map(|s| s * 1000.0));
        self.pending.sort_by(|a, b| a.total_cmp(b));
    }

    /// Model time for real time `real_ms` (call with non-decreasing times).
    pub fn model_time(&mut self, real_ms: u64) -> u64 {
        let r = real_ms as f64;
        while let Some(&b) = self.pending.first() {
            if b > r {
                break;
            }
            self.pending.remove(0);
            let gap = b - self.last_b;
            let periods = if self.base == 0 && self.last_b == 0.0 {
                1
            } else {
                ((gap / self.period_ms as f64).round() as u64).max(1)
            };
            self.base = self
                .base
                .saturating_add(periods.saturating_mul(self.period_ms));
            self.last_b = b;
        }
        let run = (r - self.last_b).max(0.0) as u64;
        self.base + run.min(self.period_ms - 1)
    }

    /// Model time of the latest boundary (where a stopped model clock is re-armed).
    pub fn base(&self) -> u64 {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warp_follows_boundaries() {
        let mut w = Warp::new(3000);
        assert_eq!(w.model_time(0), 0);
        assert_eq!(w.model_time(1000), 1000);
        // No kernel boundary yet: model time waits just short of its own boundary.
        assert_eq!(w.model_time(3500), 2999);
        w.push(&[3.6]);
        assert_eq!(w.model_time(3600), 3000);
        assert_eq!(w.model_time(4000), 3400);
        // Next boundary 2.816 s later (timer wheel granularity): one period.
        w.push(&[6.416]);
        assert_eq!(w.model_time(6500), 6000 + 84);
        // A late deferrable timer: 9.1 s gap = 3 periods at once.
        w.push(&[15.516]);
        assert_eq!(w.model_time(15516), 15000);
    }
}
