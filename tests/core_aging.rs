//! Aging: k empty periods are exactly k halvings, and catching up k missed
//! periods at once (`writeout_period()` with `miss_periods`) leaves the same
//! fractions and thresholds as k separate ticks.

mod core_common;

use dirtylimit::flex_proportions::{FpropGlobal, FpropLocal};
use dirtylimit::{Bdi, Domain, DomainConfig, Policy};
use proptest::prelude::*;

const LEN: u64 = 3000;

proptest! {
    #![proptest_config(core_common::cases())]

    /// `fprop_new_period(k)` on the global count and the lazy reflection of
    /// a local count equal k single halvings.
    #[test]
    fn k_periods_are_k_halvings(x in prop::collection::vec(0u64..u64::MAX / 64, 1..6), k in 0u32..70) {
        let (mut g1, mut g2) = (FpropGlobal::new(), FpropGlobal::new());
        let mut l1: Vec<FpropLocal> = x.iter().map(|_| FpropLocal::new(&g1)).collect();
        let mut l2 = l1.clone();
        for (i, &v) in x.iter().enumerate() {
            l1[i].add(&mut g1, v);
            l2[i].add(&mut g2, v);
        }
        let (mut e, mut locals) = (g1.events(), x.clone());
        for _ in 0..k {
            if e <= 1 { break; } // nothing left to age: the kernel stops here
            e >>= 1;
            for v in &mut locals { *v >>= 1; }
            g1.new_period(1);
        }
        g2.new_period(k);
        prop_assert_eq!(g1.events(), e);
        if k > 0 && g2.events() > 1 { prop_assert_eq!(g2.events(), e); }
        for i in 0..x.len() {
            prop_assert_eq!(l1[i].events(&g1), locals[i]);
            if g1.period() == g2.period() { prop_assert_eq!(l2[i].events(&g2), locals[i]); }
            l1[i].reflect_period(&g1);
            prop_assert_eq!(l1[i].events(&g1), locals[i], "reflect_period keeps the aged value");
        }
    }

    /// A domain ticked once after k missed periods equals one ticked every period.
    #[test]
    fn catching_up_equals_ticking(x in prop::collection::vec(0u64..1_000_000, 1..6), k in 1u64..80,
                                  policy in prop::sample::select(Policy::ALL.to_vec()),
                                  caps in prop::collection::vec(0u32..=1_000_000, 6)) {
        let (mut s1, mut s2) = (vec![Bdi::EMPTY; x.len()], vec![Bdi::EMPTY; x.len()]);
        let mut a = Domain::new(&mut s1, DomainConfig::new(policy));
        let mut b = Domain::new(&mut s2, DomainConfig::new(policy));
        let t = 1_000_000;
        a.update_dirty_limit(t);
        b.update_dirty_limit(t);
        let ids: Vec<_> = x.iter().map(|_| { b.add_bdi().unwrap(); a.add_bdi().unwrap() }).collect();
        for (i, (&v, &id)) in x.iter().zip(&ids).enumerate() {
            a.set_max_ratio_fine(id, caps[i]).unwrap();
            b.set_max_ratio_fine(id, caps[i]).unwrap();
            a.writeout_inc(id, v, 100);
            b.writeout_inc(id, v, 100);
        }
        // The clock was armed at 100: periods end at 3100, 6100, ...
        let end = 100 + k * LEN;
        let mut declared = 0;
        for p in 1..=k {
            declared += a.tick(100 + p * LEN);
        }
        let caught_up = b.tick(end);
        prop_assert!(declared <= k as u32 && caught_up <= k as u32);
        if declared < k as u32 {
            // Aging ran out on the way: tick by tick the kernel stops at a
            // global count of 1 (`fprop_new_period` refuses to age <= 1),
            // while one late timer shifts it straight to 0. Both are "empty".
            prop_assert!(a.completions().events() <= 1 && b.completions().events() <= 1);
            // ... and the clock stops at the latest one period later.
            a.tick(end + LEN);
            b.tick(end + LEN);
            prop_assert_eq!(a.period_deadline(), None);
            prop_assert_eq!(b.period_deadline(), None);
            return Ok(());
        }
        prop_assert_eq!(caught_up, declared);
        prop_assert_eq!(a.completions().events(), b.completions().events());
        for &id in &ids {
            prop_assert_eq!(a.fraction(id), b.fraction(id));
            prop_assert_eq!(a.wb_thresh(id, t, t), b.wb_thresh(id, t, t));
        }
    }
}

#[test]
fn period_clock_stops_when_aged_out_and_restarts_on_completion() {
    let mut slots = [Bdi::EMPTY; 1];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Linux));
    let id = d.add_bdi().unwrap();
    assert_eq!(
        d.period_deadline(),
        None,
        "no completion yet: no period switching"
    );
    d.writeout_inc(id, 8, 1000);
    assert_eq!(d.period_deadline(), Some(1000 + LEN));
    // 9 events: 4, 2, 1 after three periods; the fourth finds nothing to age.
    assert_eq!(d.tick(1000 + 3 * LEN), 3);
    assert_eq!(d.completions().events(), 1);
    assert_eq!(d.tick(1000 + 4 * LEN), 0);
    assert_eq!(d.period_deadline(), None, "aged out: the clock stopped");
    d.writeout_inc(id, 1, 50_000);
    assert_eq!(
        d.period_deadline(),
        Some(50_000 + LEN),
        "the next completion re-arms it"
    );
}
