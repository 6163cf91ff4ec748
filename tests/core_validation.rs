//! Every rejected call returns an error and leaves the whole domain as it
//! was (like the kernel's -EINVAL); and no input, however extreme, panics.

mod core_common;

use dirtylimit::bdi::{Bdi, LimitSum};
use dirtylimit::flex_proportions::FpropGlobal;
use dirtylimit::water_level::WaterLevel;
use dirtylimit::{BdiId, DirtyLimits, Domain, DomainConfig, Error, Policy};
use proptest::prelude::*;

/// Everything a domain holds, comparable.
#[derive(Debug, PartialEq)]
struct Snapshot {
    slots: Vec<Bdi>,
    global: FpropGlobal,
    deadline: Option<u64>,
    dirty_limit: u64,
    sum_min: LimitSum,
    level: WaterLevel,
    len: u32,
}

fn snapshot(d: &Domain) -> Snapshot {
    Snapshot {
        slots: d.slots().to_vec(),
        global: *d.completions(),
        deadline: d.period_deadline(),
        dirty_limit: d.dirty_limit(),
        sum_min: d.sum_min(),
        level: *d.water_level_state(),
        len: d.len(),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add,
    Remove(u32),
    MinRatio(u32, u32),
    MaxRatio(u32, u32),
    MinFine(u32, u32),
    MaxFine(u32, u32),
    MinBytes(u32, u64, DirtyLimits),
    MaxBytes(u32, u64, DirtyLimits),
    Strict(u32, bool),
    Complete(u32, u64, u64),
    Tick(u64),
    Limit(u64),
}

fn big() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        any::<u64>(),
        0u64..1 << 32
    ]
}

fn limits() -> impl Strategy<Value = DirtyLimits> {
    (big(), big(), big()).prop_map(|(avail, thresh, bg_thresh)| DirtyLimits {
        avail,
        thresh,
        bg_thresh,
    })
}

fn ratio() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..=101,
        Just(u32::MAX),
        0u32..1_100_000,
        Just(1_000_000),
        Just(1_000_001)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let id = prop_oneof![0u32..5, Just(u32::MAX)];
    prop_oneof![
        1 => Just(Op::Add),
        1 => id.clone().prop_map(Op::Remove),
        2 => (id.clone(), ratio()).prop_map(|(i, r)| Op::MinRatio(i, r)),
        2 => (id.clone(), ratio()).prop_map(|(i, r)| Op::MaxRatio(i, r)),
        2 => (id.clone(), ratio()).prop_map(|(i, r)| Op::MinFine(i, r)),
        2 => (id.clone(), ratio()).prop_map(|(i, r)| Op::MaxFine(i, r)),
        2 => (id.clone(), big(), limits()).prop_map(|(i, b, l)| Op::MinBytes(i, b, l)),
        2 => (id.clone(), big(), limits()).prop_map(|(i, b, l)| Op::MaxBytes(i, b, l)),
        1 => (id.clone(), any::<bool>()).prop_map(|(i, s)| Op::Strict(i, s)),
        3 => (id, big(), big()).prop_map(|(i, n, t)| Op::Complete(i, n, t)),
        1 => big().prop_map(Op::Tick),
        1 => big().prop_map(Op::Limit),
    ]
}

fn apply(d: &mut Domain, o: &Op) -> Option<Result<(), Error>> {
    Some(match *o {
        Op::Add => d.add_bdi().map(|_| ()),
        Op::Remove(i) => d.remove_bdi(BdiId(i)),
        Op::MinRatio(i, r) => d.set_min_ratio(BdiId(i), r),
        Op::MaxRatio(i, r) => d.set_max_ratio(BdiId(i), r),
        Op::MinFine(i, r) => d.set_min_ratio_fine(BdiId(i), r),
        Op::MaxFine(i, r) => d.set_max_ratio_fine(BdiId(i), r),
        Op::MinBytes(i, b, l) => d.set_min_bytes(BdiId(i), b, &l),
        Op::MaxBytes(i, b, l) => d.set_max_bytes(BdiId(i), b, &l),
        Op::Strict(i, s) => d.set_strict_limit(BdiId(i), s),
        Op::Complete(i, n, t) => {
            d.writeout_inc(BdiId(i), n, t);
            return None;
        }
        Op::Tick(t) => {
            d.tick(t);
            return None;
        }
        Op::Limit(t) => {
            d.update_dirty_limit(t);
            return None;
        }
    })
}

proptest! {
    #![proptest_config(core_common::cases())]

    /// Random sequences of valid and invalid calls with extreme values: an
    /// `Err` never changes anything; queries never panic and stay bounded.
    #[test]
    fn rejected_calls_change_nothing(policy in prop::sample::select(Policy::ALL.to_vec()),
                                     snapshot_bytes in any::<bool>(),
                                     ops in prop::collection::vec(op(), 1..40),
                                     queries in prop::collection::vec((big(), big()), 1..3)) {
        let mut slots = vec![Bdi::EMPTY; 4];
        let mut cfg = DomainConfig::new(policy);
        if snapshot_bytes { cfg.bytes_mode = dirtylimit::BytesMode::LinuxSnapshot; }
        let mut d = Domain::new(&mut slots, cfg);
        for o in &ops {
            let before = snapshot(&d);
            if let Some(Err(e)) = apply(&mut d, o) {
                prop_assert_eq!(&snapshot(&d), &before, "{:?} -> {:?} changed the domain", o, e);
                prop_assert!(e.errno() < 0);
            }
            for &(t, dirty) in &queries {
                let ids: Vec<_> = d.ids().collect();
                let mut sum = 0u128;
                for id in ids {
                    let w = d.wb_thresh(id, t, dirty);
                    prop_assert!(w <= t, "wb_thresh {} above T {}", w, t);
                    let f = d.fraction(id);
                    prop_assert!(f.numerator <= f.denominator && f.denominator > 0);
                    sum += u128::from(w);
                }
                if policy == Policy::Redistribute && dirty >= t {
                    prop_assert!(sum <= u128::from(t), "Σ {} > T {}", sum, t);
                }
                let _ = d.water_level(t);
            }
        }
    }
}

#[test]
fn each_invalid_setting_is_refused_with_its_errno() {
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Redistribute));
    let (a, b) = (d.add_bdi().unwrap(), d.add_bdi().unwrap());
    d.update_dirty_limit(100_000);
    d.writeout_inc(a, 100, 0);
    d.set_max_ratio(b, 80).unwrap();
    d.set_min_ratio(a, 30).unwrap();
    let lim = DirtyLimits {
        avail: 1_000_000,
        thresh: 100_000,
        bg_thresh: 50_000,
    };
    let before = snapshot(&d);
    let cases: Vec<(Result<(), Error>, Error)> = vec![
        (d.set_min_ratio(a, 101), Error::RatioOutOfRange),
        (d.set_max_ratio(a, u32::MAX), Error::RatioOutOfRange),
        (d.set_min_ratio_fine(a, 1_000_001), Error::RatioOutOfRange),
        (d.set_max_ratio_fine(b, 1_000_001), Error::RatioOutOfRange),
        (d.set_min_ratio(b, 81), Error::MinAboveMax),
        (d.set_max_ratio(a, 29), Error::MinAboveMax),
        (d.set_min_ratio_fine(b, 700_000), Error::MinSumTooLarge),
        (
            d.set_min_bytes(a, 2_000_000 << 12, &lim),
            Error::BytesAboveDirtyable,
        ),
        (
            d.set_max_bytes(a, 4096, &DirtyLimits { thresh: 0, ..lim }),
            Error::NoDirtyThresh,
        ),
        (
            d.set_max_bytes(a, 200_000 << 12, &lim),
            Error::RatioOutOfRange,
        ),
        (d.set_max_bytes(a, 1_000 << 12, &lim), Error::MinAboveMax),
        (d.set_strict_limit(BdiId(7), true), Error::UnknownBdi),
        (d.remove_bdi(BdiId(u32::MAX)), Error::UnknownBdi),
        (d.add_bdi().map(|_| ()), Error::DomainFull),
    ];
    for (i, (got, want)) in cases.into_iter().enumerate() {
        assert_eq!(got, Err(want), "case {i}");
    }
    assert_eq!(snapshot(&d), before);
    assert_eq!(Error::DomainFull.errno(), -28);
    assert_eq!(Error::UnknownBdi.errno(), -2);
    assert_eq!(Error::MinSumTooLarge.errno(), -22);
}

#[test]
fn sum_of_min_ratio_must_stay_below_100_percent() {
    let mut slots = [Bdi::EMPTY; 3];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Linux));
    let (a, b, c) = (
        d.add_bdi().unwrap(),
        d.add_bdi().unwrap(),
        d.add_bdi().unwrap(),
    );
    d.set_min_ratio(a, 50).unwrap();
    d.set_min_ratio_fine(b, 499_999).unwrap();
    let before = snapshot(&d);
    assert_eq!(
        d.set_min_ratio_fine(c, 1),
        Err(Error::MinSumTooLarge),
        "would reach exactly 100%"
    );
    assert_eq!(snapshot(&d), before);
    d.set_min_ratio(a, 10).unwrap(); // lowering is always allowed
    d.set_min_ratio(c, 40).unwrap();
    assert_eq!(
        d.sum_min(),
        LimitSum {
            ppm: 100_000 + 499_999 + 400_000,
            pages: 0
        }
    );
    d.remove_bdi(b).unwrap(); // a removed bdi's floor is released
    assert_eq!(
        d.sum_min(),
        LimitSum {
            ppm: 500_000,
            pages: 0
        }
    );
}

#[test]
fn full_domain_at_u32_max_pages() {
    let t = u64::from(u32::MAX);
    let mut slots = vec![Bdi::EMPTY; 64];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Redistribute));
    let ids: Vec<_> = (0..64).map(|_| d.add_bdi().unwrap()).collect();
    assert_eq!(d.add_bdi(), Err(Error::DomainFull));
    d.update_dirty_limit(t);
    for (k, &id) in ids.iter().enumerate() {
        d.set_max_ratio_fine(id, (k as u32 * 15_625) % 1_000_001)
            .unwrap();
        d.writeout_inc(id, u64::MAX / 64, 0);
    }
    d.tick(0);
    let sum: u64 = ids.iter().map(|&id| d.wb_thresh(id, t, t)).sum();
    assert!(sum <= t);
    assert!(
        t - sum <= 64,
        "everything allocated but rounding: {}",
        t - sum
    );
}
