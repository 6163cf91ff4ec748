//! Differential test: the `Linux` (and `ClipOnly`) policy against a second,
//! deliberately plain model of the kernel's formulas written here with
//! `u128`/`i128` arithmetic, eager aging and no shared code.
//!
//! Mirrors: `fprop_new_period`, `fprop_reflect_period_percpu`,
//! `__fprop_add_percpu_max`, `fprop_fraction_percpu` (lib/flex_proportions.c);
//! `writeout_period`, `wb_domain_writeout_add`, `__bdi_set_min_ratio`,
//! `__bdi_set_max_ratio`, `__wb_calc_thresh` (mm/page-writeback.c, 6.13+).

mod core_common;

use dirtylimit::{Bdi, BdiId, Domain, DomainConfig, Policy};
use proptest::prelude::*;

const LEN: u64 = 3000;

/// The plain model: eager aging, u128 math.
#[derive(Clone, Debug)]
struct Plain {
    clip_only: bool,
    idle_floor: bool,
    global: u128,
    local: Vec<u128>,
    min: Vec<u128>,
    max: Vec<u128>,
    strict: Vec<bool>,
    next_period: Option<u64>,
}

impl Plain {
    fn new(n: usize, clip_only: bool, idle_floor: bool) -> Self {
        Plain {
            clip_only,
            idle_floor,
            global: 1,
            local: vec![0; n],
            min: vec![0; n],
            max: vec![1_000_000; n],
            strict: vec![false; n],
            next_period: None,
        }
    }

    fn complete(&mut self, i: usize, nr: u64, now: u64) {
        let mut nr = nr as i128;
        let max_frac = (1024 * self.max[i] / 1_000_000) as i128;
        if !self.clip_only && max_frac < 1024 {
            let num = self.local[i] as i128;
            let den = if (self.global as i128) <= num {
                num.max(1)
            } else {
                self.global as i128
            };
            let tmp = den * max_frac - (num << 10);
            if tmp < 0 {
                nr = 0;
            } else if tmp < nr * (1024 - max_frac) {
                nr = (tmp + 1024 - max_frac - 1) / (1024 - max_frac);
            }
        }
        self.local[i] += nr as u128;
        self.global += nr as u128;
        if self.next_period.is_none() {
            self.next_period = Some(now + LEN);
        }
    }

    fn tick(&mut self, now: u64) {
        let Some(next) = self.next_period else { return };
        if now < next {
            return;
        }
        let k = ((now - next) / LEN + 1) as u32;
        if self.global <= 1 {
            self.next_period = None;
            return;
        }
        let age = |v: u128| if k < 64 { v >> k } else { 0 };
        self.global = age(self.global);
        for l in &mut self.local {
            *l = age(*l);
        }
        self.next_period = Some(next + k as u64 * LEN);
    }

    fn set_min(&mut self, i: usize, ppm: u128) -> bool {
        if ppm > 1_000_000 || ppm > self.max[i] {
            return false;
        }
        let sum: u128 = self.min.iter().sum();
        if ppm > self.min[i] && sum - self.min[i] + ppm >= 1_000_000 {
            return false;
        }
        self.min[i] = ppm;
        true
    }

    fn set_max(&mut self, i: usize, ppm: u128) -> bool {
        if ppm > 1_000_000 || self.min[i] > ppm {
            return false;
        }
        self.max[i] = ppm;
        true
    }

    fn wb_thresh(&self, i: usize, t: u128, dirty: u128) -> u128 {
        let sum_min: u128 = self.min.iter().sum();
        let num = self.local[i];
        let den = if self.global <= num {
            num.max(1)
        } else {
            self.global
        };
        let mut w = t * (1_000_000 - sum_min) / 1_000_000;
        w = w * num / den;
        w += t * self.min[i] / 1_000_000;
        if !self.clip_only && self.idle_floor && t > dirty {
            w = w.max((t - dirty) / if self.strict[i] { 100 } else { 8 });
        }
        w.min(t * self.max[i] / 1_000_000)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Complete(usize, u64),
    Advance(u64),
    SetMin(usize, u32),
    SetMax(usize, u32),
    Strict(usize, bool),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..n, prop_oneof![1u64..64, 1u64..100_000, Just(u64::from(u32::MAX))])
            .prop_map(|(i, nr)| Op::Complete(i, nr)),
        2 => prop_oneof![0u64..LEN, LEN..8 * LEN, Just(200 * LEN)].prop_map(Op::Advance),
        1 => (0..n, prop_oneof![0u32..1_000_001, (0u32..=100).prop_map(|p| p * 10_000)])
            .prop_map(|(i, r)| Op::SetMin(i, r / 4)),
        2 => (0..n, prop_oneof![0u32..1_000_001, 0u32..2_000, (0u32..=100).prop_map(|p| p * 10_000)])
            .prop_map(|(i, r)| Op::SetMax(i, r)),
        1 => (0..n, any::<bool>()).prop_map(|(i, s)| Op::Strict(i, s)),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, bool, bool, Vec<(u64, u64)>)> {
    (1usize..6).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(op(n), 1..40),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(
                (
                    prop_oneof![1u64..1000, 1u64..u64::from(u32::MAX)],
                    any::<u64>(),
                ),
                1..4,
            ),
        )
    })
}

proptest! {
    #![proptest_config(core_common::cases())]

    #[test]
    fn linux_policy_matches_plain_model((n, ops, clip_only, idle_floor, queries) in scenario()) {
        let policy = if clip_only { Policy::ClipOnly } else { Policy::Linux };
        let mut slots = vec![Bdi::EMPTY; n];
        let mut d = Domain::new(&mut slots, DomainConfig { idle_floor, ..DomainConfig::new(policy) });
        let ids: Vec<BdiId> = (0..n).map(|_| d.add_bdi().unwrap()).collect();
        let mut p = Plain::new(n, clip_only, idle_floor);
        let mut now = 0u64;
        for o in ops {
            match o {
                Op::Complete(i, nr) => { d.writeout_inc(ids[i], nr, now); p.complete(i, nr, now); }
                Op::Advance(dt) => { now += dt; d.tick(now); p.tick(now); }
                Op::SetMin(i, r) => prop_assert_eq!(d.set_min_ratio_fine(ids[i], r).is_ok(), p.set_min(i, r.into())),
                Op::SetMax(i, r) => prop_assert_eq!(d.set_max_ratio_fine(ids[i], r).is_ok(), p.set_max(i, r.into())),
                Op::Strict(i, s) => { d.set_strict_limit(ids[i], s).unwrap(); p.strict[i] = s; }
            }
            for &(t, dirty) in &queries {
                let dirty = dirty % (2 * t);
                for (i, &id) in ids.iter().enumerate() {
                    prop_assert_eq!(u128::from(d.wb_thresh(id, t, dirty)), p.wb_thresh(i, t.into(), dirty.into()),
                        "bdi {} T {} dirty {}", i, t, dirty);
                    let f = d.fraction(id);
                    prop_assert!(f.numerator <= f.denominator && f.denominator > 0);
                }
            }
        }
    }
}

/// `max_ratio_fine` below 977 ppm makes `max_prop_frac` 0 in the kernel: the
/// bdi's completions are never counted, and its threshold is the idle floor
/// at most: the kernel's own rounding, kept by the `Linux` policy.
#[test]
fn fine_max_ratio_below_977_ppm_counts_nothing_under_linux() {
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Linux));
    let (fuse, ssd) = (d.add_bdi().unwrap(), d.add_bdi().unwrap());
    d.set_max_ratio_fine(fuse, 976).unwrap();
    d.writeout_inc(fuse, 1_000_000, 0);
    d.writeout_inc(ssd, 10, 0);
    assert_eq!(d.fraction(fuse).numerator, 0);
    assert_eq!(d.wb_thresh(fuse, 1_000_000, 1_000_000), 0);
    d.set_max_ratio_fine(fuse, 977).unwrap(); // 1024 * 977 / 10^6 = 1/1024
    d.writeout_inc(fuse, 1_000_000, 0);
    assert!(d.fraction(fuse).numerator > 0);
}
