//! The kernel's rate-limit loop in the simulator: one buffered writer on a
//! fast device settles around the setpoint `(freerun + limit) / 2`, as
//! Linux does (0.88–0.89·T measured for one `dd` on Linux 6.18), not pinned
//! at the freerun ceiling; two writers on one device share it evenly;
//! kupdate writes back what is older than 30 s; and a bdi over only its own
//! background threshold waits for the flusher's 5 s wakeup.

use dirtylimit::policy::Policy;
use dirtylimit::sim::{run, Scenario, Sim};

/// One device at `bw` MiB/s, `writers` writers as fast as allowed (8 GB/s),
/// dirty_ratio 10 / dirty_background_ratio 5 of 23 GiB: T ≈ 2.3 GiB.
fn scenario(bw: u32, writers: u32) -> Scenario {
    let mut text = format!(
        "name = \"fast\"\nduration_s = 60\nmax_rate_mib_s = 8000\n\
         [memory]\ndirtyable_mib = 23552\n[vm]\ndirty_ratio = 10\ndirty_background_ratio = 5\n\
         [[device]]\nname = \"nvme\"\nbandwidth_mib_s = {bw}\n"
    );
    for k in 0..writers {
        text.push_str(&format!(
            "[[writer]]\nname = \"dd{k}\"\ndevice = \"nvme\"\n"
        ));
    }
    Scenario::from_toml(&text, "test").expect("scenario parses")
}

/// Mean of (dirty + writeback) / T over the last 30 s.
fn steady_share(sc: &Scenario, p: Policy) -> f64 {
    let rec = run(sc, p).expect("run");
    let late: Vec<f64> = rec
        .global
        .iter()
        .filter(|g| g.t_ms >= 30_000)
        .map(|g| (g.dirty + g.writeback) as f64 / g.thresh as f64)
        .collect();
    late.iter().sum::<f64>() / late.len() as f64
}

#[test]
fn a_fast_writer_settles_near_the_setpoint() {
    for bw in [50, 1500, 6000] {
        for p in Policy::ALL {
            let share = steady_share(&scenario(bw, 1), p);
            // Setpoint: (0.75·T + T) / 2 = 0.875·T; the kernel: 0.88–0.89·T.
            assert!(
                (0.855..=0.915).contains(&share),
                "{bw} MiB/s {p:?}: steady dirty + writeback = {share:.3}·T"
            );
        }
    }
}

#[test]
fn two_writers_on_one_device_share_its_bandwidth() {
    let sc = scenario(1500, 2);
    let rec = run(&sc, Policy::Linux).expect("run");
    let (first, last) = (30_000 / sc.sample_ms as usize, rec.len() - 1);
    let rate = |w: usize| {
        (rec.writer(last, w).dirtied - rec.writer(first, w).dirtied) as f64 / 256.0 / 30.0
    };
    let (a, b) = (rate(0), rate(1));
    assert!((a + b - 1500.0).abs() < 30.0, "total {a} + {b}");
    assert!((a - b).abs() < 0.1 * (a + b), "uneven: {a} vs {b}");
}

/// Pages below every background threshold are written back by kupdate once
/// they are 30 s old, at its next 5 s wakeup, and not before. The wakeup at
/// 5 s finds the disk over its own background threshold (its share of
/// completions is still 0) and writes one chunk, half a second of the
/// bandwidth estimate it has had since nothing was written back
/// (`INIT_BW`, 100 MiB/s: 52 MiB with the rounding); after that chunk the disk
/// holds all of the completions and is under its threshold.
#[test]
fn kupdate_writes_back_expired_pages() {
    let sc = Scenario::from_toml(
        "name = \"kupdate\"\nduration_s = 60\n[memory]\ndirtyable_mib = 4096\n\
         [[device]]\nname = \"disk\"\nbandwidth_mib_s = 100\n\
         [[writer]]\nname = \"small\"\ndevice = \"disk\"\nrate_mib_s = 50\nstop_s = 2\n",
        "test",
    )
    .expect("scenario parses");
    let rec = run(&sc, Policy::Linux).expect("run");
    let at = |ms: u64| rec.dev((ms / sc.sample_ms) as usize, 0);
    let dirtied = 100 * 256;
    // 2 s at 50 MiB/s, far below the background threshold (410 MiB).
    assert_eq!(at(4_900).written, 0, "{:?}", at(4_900));
    assert_eq!(at(6_000).written, 52 * 256, "{:?}", at(6_000));
    // The rest stays dirty until the wakeup at 35 s, the first with pages
    // older than 30 s.
    assert_eq!(at(34_900).dirty, dirtied - 52 * 256, "{:?}", at(34_900));
    assert_eq!(at(36_000).dirty, 0, "{:?}", at(36_000));
    assert_eq!(at(40_000).written, dirtied);
}

/// A bdi over its own background threshold while the global count is below
/// `bg_thresh` is not written back by its writer's `balance_dirty_pages()`
/// (which starts background writeback on the global count only): its pages
/// wait for the flusher's periodic wakeup at 5 s, which finds
/// `wb_over_bg_thresh()` and starts it.
#[test]
fn a_wb_over_only_its_own_background_threshold_waits_for_the_wakeup() {
    let sc = Scenario::from_toml(
        "name = \"wakeup\"\nduration_s = 8\n[memory]\ndirtyable_mib = 4096\n\
         [[device]]\nname = \"idle\"\nbandwidth_mib_s = 100\n\
         [[device]]\nname = \"disk\"\nbandwidth_mib_s = 100\n\
         [[writer]]\nname = \"w\"\ndevice = \"disk\"\nrate_mib_s = 20\nstop_s = 4\n",
        "test",
    )
    .expect("scenario parses");
    let rec = run(&sc, Policy::Linux).expect("run");
    let at = |ms: u64| {
        (
            rec.dev((ms / sc.sample_ms) as usize, 1),
            &rec.global[(ms / sc.sample_ms) as usize],
        )
    };
    // 80 MiB at most, far below the background threshold (410 MiB), but
    // above the disk's own (its idle floor's share of it) from about 2.5 s.
    let (d, g) = at(4_900);
    assert!(g.dirty < g.bg_thresh, "{g:?}");
    assert!(d.dirty > d.wb_bg_thresh, "{d:?}");
    assert_eq!(d.written, 0, "{d:?}");
    // The wakeup at 5 s starts it.
    let (d, _) = at(5_500);
    assert!(d.written > 0, "{d:?}");
}

/// The steps (sim time, ms) at which the domain declared periods, and how many, one writer
/// completing throughout; `boundaries` is the scenario's `period_boundaries_s` line, if any.
fn period_ends(boundaries: &str) -> Vec<(u64, u64)> {
    let text = format!(
        "name = \"p\"\nduration_s = 14\n{boundaries}\n[memory]\ndirtyable_mib = 4096\n\
         [vm]\ndirty_bytes = 67108864\ndirty_background_bytes = 8388608\n\
         [[device]]\nname = \"d\"\nbandwidth_mib_s = 100\n\
         [[writer]]\nname = \"w\"\ndevice = \"d\"\nrate_mib_s = 50\n"
    );
    let sc = Scenario::from_toml(&text, "test").expect("scenario parses");
    let mut slots = Sim::slots(&sc);
    let mut sim = Sim::new(&sc, Policy::Linux, &mut slots).expect("sim");
    let mut ends = Vec::new();
    while !sim.done() {
        let (t, before) = (sim.now(), sim.periods());
        sim.step().expect("step");
        if sim.periods() > before {
            ends.push((t, sim.periods() - before));
        }
    }
    ends
}

#[test]
fn periods_end_on_recorded_boundaries() {
    // The domain's own clock: one period after the first completion, then every 3 s.
    let own = period_ends("");
    assert_eq!(own.len(), 4, "{own:?}");
    assert!(
        own.windows(2)
            .all(|w| w[1].0 - w[0].0 == 3000 && w[1].1 == 1),
        "{own:?}"
    );
    // A recorded kernel's: at the first step at or after each run of its writeout_period()
    // (timer-wheel gaps of 3.072 and 2.816 s, then a timer 6.08 s late: two periods at once).
    let rec = period_ends("period_boundaries_s = [0.73, 3.802, 6.618, 12.7]");
    assert_eq!(rec, [(730, 1), (3810, 1), (6620, 1), (12700, 2)], "{rec:?}");
}
