//! The period clock of a `wb_domain`: when floating proportions age.
//!
//! The kernel ages completions from a timer (`writeout_period()`) that fires
//! every `VM_COMPLETIONS_PERIOD_LEN` (3 s). When it fires late it declares
//! every missed period at once; when aging has zeroed all fractions it stops
//! re-arming itself, and the next completion (`wb_domain_writeout_add()`)
//! arms it again one period ahead. We have no timer: callers pass the time to
//! [`PeriodClock::due`] and the domain declares the periods it reports.
//! Time is an opaque monotonic `u64` in the caller's unit (milliseconds in
//! the simulator, jiffies in the kernel); 0 means "stopped", as the kernel's
//! `period_time == 0` does.

/// Default period length in milliseconds (`VM_COMPLETIONS_PERIOD_LEN` = 3 s).
pub const DEFAULT_PERIOD_MS: u64 = 3000;

/// The deadline of the next period, or stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "fmt", derive(Debug))]
pub struct PeriodClock {
    len: u64,
    period_time: u64,
}

impl PeriodClock {
    /// A stopped clock with periods of `len` time units (at least 1).
    pub const fn new(len: u64) -> Self {
        PeriodClock {
            len: if len == 0 { 1 } else { len },
            period_time: 0,
        }
    }

    /// The period length.
    pub fn period_len(&self) -> u64 {
        self.len
    }

    /// When the next period begins, or `None` when period switching is off.
    pub fn deadline(&self) -> Option<u64> {
        (self.period_time != 0).then_some(self.period_time)
    }

    /// `wp_next_time()`: one period after `t`, never the reserved 0.
    fn next_time(&self, t: u64) -> u64 {
        match t.saturating_add(self.len) {
            0 => 1,
            n => n,
        }
    }

    /// A completion happened at `now`: arm the clock if it was stopped.
    pub fn arm(&mut self, now: u64) {
        if self.period_time == 0 {
            self.period_time = self.next_time(now);
        }
    }

    /// How many periods have ended by `now`: 0 before the deadline, else the
    /// one due plus every whole period missed since (`miss_periods + 1`).
    pub fn due(&self, now: u64) -> u32 {
        if self.period_time == 0 || now < self.period_time {
            return 0;
        }
        let missed = (now - self.period_time).checked_div(self.len).unwrap_or(0);
        u32::try_from(missed.saturating_add(1)).unwrap_or(u32::MAX)
    }

    /// After the domain declared the `periods` that [`due`](Self::due)
    /// reported: move the deadline past them, or stop when `aged_out`.
    pub fn advance(&mut self, periods: u32, aged_out: bool) {
        if aged_out {
            self.period_time = 0;
        } else if periods > 0 {
            let missed = self.len.saturating_mul(u64::from(periods - 1));
            self.period_time = self.next_time(self.period_time.saturating_add(missed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_fires_and_catches_up() {
        let mut c = PeriodClock::new(3000);
        assert_eq!(c.due(10_000), 0, "stopped");
        c.arm(500);
        assert_eq!(c.deadline(), Some(3500));
        c.arm(900); // already armed: unchanged
        assert_eq!(c.deadline(), Some(3500));
        assert_eq!(c.due(3499), 0);
        assert_eq!(c.due(3500), 1);
        assert_eq!(c.due(9600), 3); // 3500, 6500, 9500
        c.advance(3, false);
        assert_eq!(c.deadline(), Some(12_500));
        c.advance(1, true);
        assert_eq!(c.deadline(), None);
    }
}
