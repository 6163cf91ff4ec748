//! Property tests of the `Lend` policy (`dirtylimit::lending`): the
//! allocation (before the idle-device floor, so queries use `dirty = T`) is
//! the water-filling among the active bdis of what the idle bdis do not
//! hold, an idle bdi keeps the pages it holds (within its cap, and within
//! what the active bdis' floors and caps leave), an owner that becomes
//! active has its floor at the next tick, and with every bdi active the
//! result is `Redistribute`'s for the same recorded completions.

mod core_common;

use core_common::{count, ppm};

use dirtylimit::{Bdi, BdiId, DirtyLimits, Domain, DomainConfig, Policy, RATIO_FINE_MAX};
use proptest::prelude::*;

const LEN: u64 = 3000;

#[derive(Clone, Debug)]
struct Dev {
    min: u32,
    max: u32,
    strict: bool,
    active: bool,
    /// Completions in the first and the second batch.
    x: (u64, u64),
    /// Pages held (dirty and under writeback) when the active set is
    /// decided, and later.
    held: (u64, u64),
}

/// Pages a bdi holds: none, few, many, anything.
fn held() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        0u64..1000,
        0u64..1_000_000,
        0u64..=u64::from(u32::MAX),
        any::<u64>()
    ]
}

fn dev() -> impl Strategy<Value = Dev> {
    (
        ppm(),
        ppm(),
        any::<bool>(),
        prop::bool::weighted(0.7),
        (count(), count()),
        (held(), held()),
    )
        .prop_map(|(a, b, strict, active, x, held)| Dev {
            min: a.min(b) / 3,
            max: a.max(b),
            strict,
            active,
            x,
            held,
        })
}

fn thresh() -> impl Strategy<Value = u64> {
    prop_oneof![
        1u64..100,
        100u64..1_000_000,
        Just(u64::from(u32::MAX)),
        1u64..=u64::from(u32::MAX)
    ]
}

/// The completions each call recorded, per bdi and batch, so that another
/// domain can be fed exactly the same counts.
type Recorded = Vec<(u64, u64)>;

fn config(policy: Policy) -> DomainConfig {
    DomainConfig {
        idle_floor: false,
        ..DomainConfig::new(policy)
    }
}

/// Builds a `Lend` domain with `devs` (two batches of completions, `gap`
/// periods apart), reports the active ones and ticks once, so that the
/// active set is theirs. Returns what each completion call recorded.
fn build<'a>(
    slots: &'a mut [Bdi],
    devs: &[Dev],
    t: u64,
    gap: u64,
) -> (Domain<'a>, Vec<BdiId>, Recorded) {
    let mut d = Domain::new(slots, config(Policy::Lend));
    let ids: Vec<BdiId> = devs.iter().map(|_| d.add_bdi().unwrap()).collect();
    d.update_dirty_limit(t);
    for (dv, &id) in devs.iter().zip(&ids) {
        let _ = d.set_max_ratio_fine(id, dv.max);
        let _ = d.set_min_ratio_fine(id, dv.min); // may be refused: the sum of floors
        d.set_strict_limit(id, dv.strict).unwrap();
    }
    let mut rec = vec![(0, 0); devs.len()];
    for (i, (dv, &id)) in devs.iter().zip(&ids).enumerate() {
        let before = d.fraction(id).numerator;
        d.writeout_inc(id, dv.x.0, 0);
        rec[i].0 = d.fraction(id).numerator - before;
    }
    d.tick(gap * LEN);
    for (i, (dv, &id)) in devs.iter().zip(&ids).enumerate() {
        let before = d.fraction(id).numerator;
        d.writeout_inc(id, dv.x.1, gap * LEN);
        rec[i].1 = d.fraction(id).numerator - before;
    }
    for (dv, &id) in devs.iter().zip(&ids) {
        if dv.active {
            d.note_active(id);
        }
        d.note_held(id, dv.held.0);
    }
    d.tick(gap * LEN);
    (d, ids, rec)
}

/// A `Redistribute` domain with the same settings fed the counts `rec`.
fn redistribute<'a>(
    slots: &'a mut [Bdi],
    lend: &Domain,
    ids: &[BdiId],
    rec: &Recorded,
    t: u64,
    gap: u64,
) -> Domain<'a> {
    let mut d = Domain::new(slots, config(Policy::Redistribute));
    for _ in ids {
        d.add_bdi().unwrap();
    }
    d.update_dirty_limit(t);
    for &id in ids {
        let b = lend.bdi(id).unwrap();
        d.set_max_ratio_fine(id, lend.max_ratio_fine(id).unwrap() as u32)
            .unwrap();
        d.set_min_ratio_fine(id, lend.min_ratio_fine(id).unwrap() as u32)
            .unwrap();
        d.set_strict_limit(id, b.strict_limit()).unwrap();
    }
    for (&id, r) in ids.iter().zip(rec) {
        d.writeout_inc(id, r.0, 0);
    }
    d.tick(gap * LEN);
    for (&id, r) in ids.iter().zip(rec) {
        d.writeout_inc(id, r.1, gap * LEN);
    }
    d.tick(gap * LEN);
    d.rebalance();
    d
}

fn thresholds(d: &Domain, ids: &[BdiId], t: u64) -> Vec<u64> {
    ids.iter().map(|&id| d.wb_thresh(id, t, t)).collect()
}

fn floor_cap(d: &Domain, id: BdiId, t: u64) -> (u64, u64) {
    let b = d.bdi(id).unwrap();
    (b.min().resolve(t), b.max().resolve(t))
}

/// The bounds of `lending_bounds` on `d` at `t`, the active set `active`:
/// Σ wb_thresh ≤ T; floor ≤ wb_thresh ≤ cap for an active bdi; an idle bdi
/// at most the pages it holds and its cap, exactly that when the lenders'
/// pages fit beside the active bdis' floors and caps. With `settled` (a
/// tick has passed since the last report): nothing unallocated (beyond
/// rounding, < 1 page per bdi) while an active bdi is below its cap, where
/// the pages a lender holds count as allocated to it.
fn check_bounds(
    d: &Domain,
    ids: &[BdiId],
    active: &[bool],
    t: u64,
    settled: bool,
) -> Result<(), TestCaseError> {
    let thr = thresholds(d, ids, t);
    let total: u128 = thr.iter().map(|&w| u128::from(w)).sum();
    prop_assert!(total <= u128::from(t), "Σ {} > T {}", total, t);
    let (mut lent, mut committed_at_most) = (0u128, 0u128);
    for (i, &id) in ids.iter().enumerate() {
        let (floor, cap) = floor_cap(d, id, t);
        if active[i] {
            committed_at_most += u128::from(floor.max(cap));
        } else {
            lent += u128::from(d.bdi(id).unwrap().held());
        }
    }
    let fits = lent + committed_at_most <= u128::from(t);
    let (mut active_below_cap, mut allocated) = (false, 0u128);
    for (i, &id) in ids.iter().enumerate() {
        let (floor, cap) = floor_cap(d, id, t);
        prop_assert_eq!(d.is_active(id), active[i]);
        if active[i] {
            prop_assert!(
                floor <= thr[i] && thr[i] <= cap,
                "bdi {}: {} not in [{}, {}]",
                i,
                thr[i],
                floor,
                cap
            );
            active_below_cap |= thr[i] < cap;
            allocated += u128::from(thr[i]);
        } else {
            let held = d.bdi(id).unwrap().held();
            let keeps = held.min(cap.max(floor));
            prop_assert!(
                thr[i] <= keeps,
                "idle bdi {}: {} above min(held, cap) {}",
                i,
                thr[i],
                keeps
            );
            if fits {
                prop_assert_eq!(thr[i], keeps, "idle bdi {} does not keep its pages", i);
            }
            allocated += u128::from(held);
        }
    }
    if settled && active_below_cap {
        let unallocated = u128::from(t).saturating_sub(allocated);
        prop_assert!(
            unallocated <= ids.len() as u128,
            "unallocated {} > n = {}",
            unallocated,
            ids.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(core_common::cases())]

    /// The bounds of [`check_bounds`] after the active set is decided; then
    /// at once after the pages held change (no tick: Σ ≤ T and the
    /// per-bdi bounds hold at any time); then after the next tick.
    #[test]
    fn lending_bounds(devs in prop::collection::vec(dev(), 1..12), t in thresh(), gap in 0u64..5) {
        let mut slots = vec![Bdi::EMPTY; devs.len()];
        let (mut d, ids, _) = build(&mut slots, &devs, t, gap);
        let active: Vec<bool> = devs.iter().map(|dv| dv.active).collect();
        check_bounds(&d, &ids, &active, t, true)?;
        for (dv, &id) in devs.iter().zip(&ids) {
            d.note_held(id, dv.held.1);
        }
        check_bounds(&d, &ids, &active, t, false)?;
        for (dv, &id) in devs.iter().zip(&ids) {
            if dv.active {
                d.note_active(id);
            }
        }
        d.tick(gap * LEN);
        check_bounds(&d, &ids, &active, t, true)?;
    }

    /// A lender's `wb_bg_thresh` is its threshold at `bg_thresh` (what the
    /// kernel's `wb_over_bg_thresh()` computes), not its `wb_thresh` scaled
    /// by `bg_thresh / thresh`; an active bdi's is the scaled one.
    #[test]
    fn lender_background_threshold_is_its_threshold_at_bg(devs in prop::collection::vec(dev(), 1..12),
                                                          t in thresh(), bg in any::<prop::sample::Index>()) {
        let mut slots = vec![Bdi::EMPTY; devs.len()];
        let (d, ids, _) = build(&mut slots, &devs, t, 0);
        let lim = DirtyLimits { thresh: t, bg_thresh: bg.index(t as usize + 1) as u64, ..DirtyLimits::default() };
        for (i, &id) in ids.iter().enumerate() {
            let l = d.wb_limits(id, &lim, t);
            prop_assert_eq!(l.wb_thresh, d.wb_thresh(id, t, t));
            let want = if devs[i].active {
                (u128::from(l.wb_thresh) * u128::from(lim.bg_thresh) / u128::from(t)) as u64
            } else {
                d.wb_thresh(id, lim.bg_thresh, t)
            };
            prop_assert_eq!(l.wb_bg_thresh, want, "bdi {}", i);
        }
    }

    /// With every bdi active, the thresholds are `Redistribute`'s for the
    /// same recorded completions, except where `Redistribute` leaves pool
    /// unallocated beside a bdi with no completions below its cap: there
    /// `Lend` gives that pool to such bdis, and allocates more in total.
    #[test]
    fn all_active_equals_redistribute(mut devs in prop::collection::vec(dev(), 1..12), t in thresh(), gap in 0u64..5) {
        for dv in devs.iter_mut() {
            dv.active = true;
        }
        let (mut s1, mut s2) = (vec![Bdi::EMPTY; devs.len()], vec![Bdi::EMPTY; devs.len()]);
        let (l, ids, rec) = build(&mut s1, &devs, t, gap);
        let r = redistribute(&mut s2, &l, &ids, &rec, t, gap);
        for &id in &ids {
            prop_assert_eq!(l.fraction(id), r.fraction(id));
        }
        let (tl, tr) = (thresholds(&l, &ids, t), thresholds(&r, &ids, t));
        let sum_r: u64 = tr.iter().sum();
        // Every bdi with completions capped, pool left, a newcomer below its cap.
        let newcomer_starved = r.water_level_state().uncapped_events() == 0
            && sum_r < t
            && ids.iter().zip(&tr).any(|(&id, &w)| {
                r.fraction(id).numerator == 0 && w < floor_cap(&r, id, t).1
            });
        if newcomer_starved {
            let sum_l: u64 = tl.iter().sum();
            prop_assert!(sum_l >= sum_r, "lend {} < redistribute {}", sum_l, sum_r);
        } else {
            prop_assert_eq!(tl, tr);
        }
    }

    /// An idle bdi reported active has at least its floor at the next tick
    /// (clipped to its cap), whatever it lent before.
    #[test]
    fn owner_has_its_floor_at_the_next_tick(devs in prop::collection::vec(dev(), 1..12), t in thresh(),
                                            gap in 0u64..5, pick in any::<prop::sample::Index>()) {
        let mut slots = vec![Bdi::EMPTY; devs.len()];
        let (mut d, ids, _) = build(&mut slots, &devs, t, gap);
        let o = ids[pick.index(ids.len())];
        let (floor, cap) = floor_cap(&d, o, t);
        d.note_active(o);
        d.tick(gap * LEN);
        let w = d.wb_thresh(o, t, t);
        prop_assert!(w >= floor.min(cap), "owner {} below its floor {}", w, floor);
        let total: u64 = thresholds(&d, &ids, t).iter().sum();
        prop_assert!(total <= t, "Σ {} > T {}", total, t);
    }

    /// A bdi's completions are counted up to its cap in Linux's 1/1024 steps
    /// (`max_prop_frac`), rounded down: a call that records anything leaves
    /// the fraction at or below `max_prop_frac / 1024` (integer halving at
    /// period ends may lift it by less than one event; after aging zeroed
    /// the global count, the first call counts against 1, as the kernel's
    /// fraction does), and a call that recorded less than it was given
    /// stopped where one more completion would exceed it.
    #[test]
    fn completions_count_up_to_the_cap(devs in prop::collection::vec(dev(), 1..8), t in thresh(),
                                       stream in prop::collection::vec((any::<prop::sample::Index>(), count(), 0u64..2 * LEN), 1..30)) {
        let mut slots = vec![Bdi::EMPTY; devs.len()];
        let (mut d, ids, _) = build(&mut slots, &devs, t, 0);
        let (full, base) = (u128::from(RATIO_FINE_MAX), 1024u128);
        let mut now = 0;
        for (pick, nr, dt) in stream {
            let id = ids[pick.index(ids.len())];
            now += dt;
            d.tick(now);
            // max_prop_frac: the cap in 1/1024, rounded down.
            let max = base * u128::from(d.max_ratio_fine(id).unwrap()).min(full) / full;
            let before = d.fraction(id);
            let aged_out = d.completions().events() == 0;
            d.writeout_inc(id, nr, now);
            let f = d.fraction(id);
            let got = f.numerator - before.numerator;
            prop_assert!(got == 0 || aged_out || u128::from(f.numerator) * base <= max * u128::from(f.denominator),
                "fraction {:?} above cap {}/1024", f, max);
            if got < nr && !aged_out && f.denominator < u64::MAX {
                prop_assert!((u128::from(f.numerator) + 1) * base > max * (u128::from(f.denominator) + 1),
                    "stopped early: {} of {} recorded, {:?}, cap {}/1024", got, nr, f, max);
            }
        }
    }
}

proptest! {
    #![proptest_config(core_common::cases())]

    /// Between recomputes the completion path and the activity reports keep
    /// the level up to date: after every `tick`, the thresholds equal those
    /// of a full recompute on the same inputs and the same active set.
    /// With `keep`, the bdis active at the start are reported at every step
    /// and time moves in small steps, so that most ticks do not recompute
    /// and the level is kept by the O(1) paths alone (completions, pages
    /// held).
    #[test]
    fn tick_keeps_the_lending_level_exact(devs in prop::collection::vec(dev(), 1..8), t in thresh(),
                                          keep in any::<bool>(),
                                          stream in prop::collection::vec(
                                              (any::<prop::sample::Index>(), count(), 0u64..2 * LEN, any::<bool>(),
                                               prop::option::of(held())), 1..30)) {
        let (mut s1, mut s2) = (vec![Bdi::EMPTY; devs.len()], vec![Bdi::EMPTY; devs.len()]);
        let (mut a, ids, _) = build(&mut s1, &devs, t, 0);
        let (mut b, _, _) = build(&mut s2, &devs, t, 0);
        let mut now = 0;
        for (pick, nr, dt, report, held) in stream {
            let id = ids[pick.index(ids.len())];
            now += if keep { dt / 64 } else { dt };
            if keep {
                for (dv, &i) in devs.iter().zip(&ids) {
                    if dv.active {
                        a.note_active(i);
                        b.note_active(i);
                    }
                }
            }
            if report {
                a.note_active(id);
                b.note_active(id);
            }
            if let Some(h) = held {
                a.note_held(id, h);
                b.note_held(id, h);
            }
            a.writeout_inc(id, nr, now);
            b.writeout_inc(id, nr, now);
            a.tick(now);
            b.tick(now);
            b.rebalance();
            prop_assert_eq!(thresholds(&a, &ids, t), thresholds(&b, &ids, t));
        }
    }
}

/// `T` of the two-bdi examples.
const T: u64 = 100_000;

/// Runs `f` on a `Lend` domain of two bdis whose dirty limit is `T`.
fn two_bdis(f: impl FnOnce(&mut Domain<'_>, BdiId, BdiId)) {
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, config(Policy::Lend));
    let (a, b) = (d.add_bdi().unwrap(), d.add_bdi().unwrap());
    d.update_dirty_limit(T);
    f(&mut d, a, b);
}

/// The four wasted allocations of the module doc, each in one small domain.
#[test]
fn idle_floor_owner_lends_and_gets_it_back() {
    two_bdis(|d, ssd, archive| {
        d.set_min_ratio(archive, 30).unwrap();
        let t = T;
        d.writeout_inc(ssd, 1000, 0);
        d.note_active(ssd);
        d.tick(0);
        // The idle archive disk lends its 30%: the writer gets all of T.
        assert_eq!(d.wb_thresh(ssd, t, t), t);
        assert_eq!(d.wb_thresh(archive, t, t), 0);
        // It starts dirtying: its floor is back at the next tick.
        d.note_active(archive);
        d.note_active(ssd);
        assert_eq!(d.wb_thresh(archive, t, t), 0, "not before the tick");
        d.tick(1);
        assert_eq!(d.wb_thresh(archive, t, t), 30_000);
        assert_eq!(d.wb_thresh(ssd, t, t), 70_000);
        // Neither is reported during the next interval: both lend again.
        d.tick(2);
        d.tick(3);
        assert_eq!(d.wb_thresh(archive, t, t) + d.wb_thresh(ssd, t, t), 0);
    });
}

#[test]
fn newcomer_beside_a_capped_bdi_gets_the_rest() {
    two_bdis(|d, a, b| {
        let t = T;
        d.writeout_inc(a, 10_000, 0);
        d.set_max_ratio(a, 10).unwrap();
        d.note_active(a);
        d.note_active(b);
        d.tick(0);
        // a is capped at 10% and b has no completions: b gets the other 90%.
        assert_eq!(d.wb_thresh(a, t, t), 10_000);
        assert_eq!(d.wb_thresh(b, t, t), 90_000);
        // b's first completion: weights are counts again at the next tick, and
        // b, the only uncapped bdi with completions, still gets the rest.
        d.writeout_inc(b, 1, 0);
        d.note_active(a);
        d.note_active(b);
        d.tick(0);
        assert_eq!(d.wb_thresh(b, t, t), 90_000);
    });
}

#[test]
fn stale_fraction_of_an_idle_bdi_is_lent_to_a_newcomer() {
    two_bdis(|d, a, b| {
        let t = T;
        d.writeout_inc(a, 50_000, 0);
        d.note_active(a);
        d.tick(0);
        assert_eq!(d.wb_thresh(a, t, t), t);
        // a stops; b starts with no completions: one tick later b has all of T.
        d.tick(10);
        d.note_active(b);
        d.tick(20);
        assert_eq!(d.wb_thresh(b, t, t), t);
        assert_eq!(d.wb_thresh(a, t, t), 0);
    });
}

#[test]
fn capped_bdi_that_stops_leaves_its_cap_at_once() {
    two_bdis(|d, disk, fuse| {
        d.set_max_ratio(fuse, 1).unwrap();
        let t = T;
        // fuse completes half the writes but only up to its 1% cap in 1/1024
        // steps (10/1024) are counted.
        d.writeout_inc(disk, 99_000, 0);
        let counted = {
            let before = d.fraction(fuse).numerator;
            d.writeout_inc(fuse, 99_000, 0);
            d.fraction(fuse).numerator - before
        };
        assert_eq!(counted, 976, "floor(99,000 · 10 / 1,014) = 976");
        d.note_active(disk);
        d.note_active(fuse);
        d.tick(0);
        // 976 / 99,976 of the pool: below its cap, the rest to the disk.
        assert_eq!(d.wb_thresh(fuse, t, t), 976);
        // fuse stalls (still active), disk completes: fuse is below its cap at
        // the next tick.
        d.writeout_inc(disk, 1_000, 1);
        d.note_active(disk);
        d.note_active(fuse);
        d.tick(1);
        assert!(d.wb_thresh(fuse, t, t) < 976);
    });
}

#[test]
fn completion_that_records_nothing_leaves_the_level_fresh() {
    two_bdis(|d, disk, fuse| {
        // 500 ppm is below one 1/1024 step: none of fuse's completions count.
        d.set_max_ratio_fine(fuse, 500).unwrap();
        let t = T;
        d.writeout_inc(disk, 10_000, 0);
        d.note_active(disk);
        d.note_active(fuse);
        d.tick(0);
        // The disk has all the completions and so all of T, at its cap.
        assert_eq!(d.wb_thresh(disk, t, t), t);
        assert_eq!(d.capped_count(), 1);
        assert!(!d.water_level_state().stale());
        // fuse completes: nothing is recorded, nothing moved, and the next
        // tick has nothing to recompute.
        d.writeout_inc(fuse, 100, 1);
        assert_eq!(d.fraction(fuse).numerator, 0);
        assert!(!d.water_level_state().stale());
        d.note_active(disk);
        d.note_active(fuse);
        d.tick(1);
        assert_eq!(d.wb_thresh(disk, t, t), t);
        assert_eq!(d.wb_thresh(fuse, t, t), 0);
    });
}

#[test]
fn lender_keeps_the_pages_it_holds_and_lends_the_rest() {
    two_bdis(|d, a, b| {
        let t = T;
        d.writeout_inc(a, 50_000, 0);
        d.writeout_inc(b, 50_000, 0);
        d.note_active(a);
        d.note_active(b);
        d.tick(0);
        assert_eq!(d.wb_thresh(a, t, t), 50_000);
        // a's writer stops with 30,000 pages dirty: a lends the rest.
        d.note_held(a, 30_000);
        d.note_active(b);
        d.tick(10);
        d.note_active(b);
        d.tick(20);
        assert!(!d.is_active(a));
        assert_eq!(d.wb_thresh(a, t, t), 30_000);
        assert_eq!(d.wb_thresh(b, t, t), 70_000);
        // Background writeback is not due for the pages it keeps: its
        // wb_bg_thresh is its threshold at bg_thresh.
        let lim = DirtyLimits {
            avail: 4 * t,
            thresh: t,
            bg_thresh: t / 2,
        };
        assert_eq!(d.wb_limits(a, &lim, t).wb_bg_thresh, 30_000);
        assert_eq!(d.wb_limits(b, &lim, t).wb_bg_thresh, 35_000);
        // a's pages are written back: b has them at once, before any tick.
        d.note_held(a, 10_000);
        assert_eq!(d.wb_thresh(a, t, t), 10_000);
        assert_eq!(d.wb_thresh(b, t, t), 90_000);
        // At half the threshold a keeps what it holds; b has the rest.
        assert_eq!(d.wb_thresh(a, t / 2, t / 2), 10_000);
        assert_eq!(d.wb_thresh(b, t / 2, t / 2), 40_000);
    });
}
