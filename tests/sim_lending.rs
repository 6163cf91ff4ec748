//! The `Lend` policy in the built-in scenarios: the targets of
//! docs/lending.md, checked on the simulator's recordings. Each test prints
//! the numbers it checks (`cargo test --test sim_lending -- --nocapture`).

use dirtylimit::policy::Policy;
use dirtylimit::sim::{all_builtin, builtin, metrics, run, Recording, Scenario};

fn scenario(name: &str) -> Scenario {
    builtin(name).expect("exists").expect("parses")
}

fn device(sc: &Scenario, name: &str) -> usize {
    sc.devices
        .iter()
        .position(|d| d.name == name)
        .expect("device")
}

/// Sample index of time `ms`.
fn at(sc: &Scenario, ms: u64) -> usize {
    (ms / sc.sample_ms) as usize
}

/// The share of `T` that device `d` has at sample `k`.
fn share(rec: &Recording, k: usize, d: usize) -> f64 {
    rec.dev(k, d).wb_thresh as f64 / rec.global[k].thresh as f64
}

/// Case 1: beside an idle device holding `min_ratio` 30%, the writer gets
/// at least 0.99·T (Linux: 0.70·T); the owner has its floor back one tick
/// after it starts writing at 30 s.
#[test]
fn idle_min_ratio_owner_lends_its_floor() {
    let sc = scenario("idle-min-ratio");
    let (ssd, archive) = (device(&sc, "ssd"), device(&sc, "archive"));
    let lend = run(&sc, Policy::Lend).expect("run");
    let linux = run(&sc, Policy::Linux).expect("run");
    let low = (at(&sc, 100)..at(&sc, 30_000))
        .map(|k| share(&lend, k, ssd))
        .fold(1.0f64, f64::min);
    let low_linux = (at(&sc, 100)..at(&sc, 30_000))
        .map(|k| share(&linux, k, ssd))
        .fold(1.0f64, f64::min);
    println!("idle-min-ratio, 0.1-30 s: writer's lowest share lend {low:.4}, linux {low_linux:.4}");
    assert!(low >= 0.99, "writer's share {low}");
    let k = at(&sc, 30_100);
    let floor = lend.global[k].thresh * 30 / 100;
    assert!(lend.dev(k, archive).wb_thresh >= floor);
}

/// Case 2: after disk A's cap drops to 10% and B starts (B has no
/// completions yet), what A loses goes to B one tick later: the unused share
/// is below 1% from the switch on.
#[test]
fn max_ratio_lowered_newcomer_gets_the_rest() {
    let sc = scenario("max-ratio-lowered");
    for p in [Policy::Redistribute, Policy::Lend] {
        let rec = run(&sc, p).expect("run");
        let from = at(&sc, 20_000);
        let unused: Vec<f64> = rec.global[from..]
            .iter()
            .map(|g| g.thresh.saturating_sub(g.sum_wb_thresh) as f64 / g.thresh as f64)
            .collect();
        let mean = unused.iter().sum::<f64>() / unused.len() as f64;
        let after_first = unused[1..].iter().copied().fold(0.0f64, f64::max);
        println!(
            "max-ratio-lowered {}: unused at 20.0 s {:.4}, mean from 20 s {:.5}, max from 20.1 s {:.5}",
            p.name(),
            unused[0],
            mean,
            after_first
        );
        if p == Policy::Lend {
            assert!(mean < 0.01, "mean unused {mean}");
            assert!(after_first < 0.01, "unused {after_first}");
        }
    }
}

/// Case 3: a writer starting on disk B while idle disk A's fraction is
/// near 1 reaches 0.5·T one tick (10 ms) after it starts, 40 s in.
#[test]
fn idle_system_newcomer_within_one_tick() {
    let mut sc = scenario("idle-system-newcomer");
    sc.sample_ms = sc.step_ms;
    let b = device(&sc, "disk-b");
    for p in [Policy::Linux, Policy::Lend] {
        let rec = run(&sc, p).expect("run");
        let start = at(&sc, 40_000);
        let reached = (start..rec.len()).find(|&k| share(&rec, k, b) >= 0.5);
        let ms = reached.map(|k| (k - start) as u64 * sc.sample_ms);
        println!(
            "idle-system-newcomer {}: disk-b at 0.5·T {:?} ms after its writer starts",
            p.name(),
            ms
        );
        if p == Policy::Lend {
            assert_eq!(ms, Some(sc.step_ms), "one tick");
        }
    }
}

/// The owner's wait: when the archive disk (min_ratio 40%) starts writing
/// at 20 s, its floor is back at the next tick, and the slow strict_limit
/// borrower holds more than `T − floor` only until it has flushed what it
/// dirtied with the borrowed share: at most one tick plus
/// `(floor + H − T) / bw_borrower` (docs/lending.md).
#[test]
fn owner_wakes_waits_at_most_the_bound() {
    let sc = scenario("owner-wakes");
    let (slow, archive) = (device(&sc, "slow"), device(&sc, "archive"));
    let rec = run(&sc, Policy::Lend).expect("run");
    let wake = at(&sc, 20_000);
    let t = rec.global[wake].thresh;
    let floor = t * 40 / 100;
    let hard = rec.global.iter().map(|g| g.hard_limit).max().unwrap_or(t);
    let bw = sc.devices[slow].bandwidth as f64;
    let bound = sc.step_ms as f64 / 1000.0 + (floor + hard - t) as f64 / bw;
    let pinned = |k: usize| rec.dev(k, slow).dirty + rec.dev(k, slow).writeback;
    let excess = pinned(wake).saturating_sub(t - floor);
    let room = (wake..rec.len())
        .find(|&k| pinned(k) <= t - floor)
        .expect("the borrower drains");
    let wait = (room - wake) as f64 * sc.sample_ms as f64 / 1000.0;
    let floor_back = (wake + 1..rec.len())
        .find(|&k| rec.dev(k, archive).wb_thresh >= floor)
        .expect("floor back");
    println!(
        "owner-wakes: floor back {} ms after the wake; borrower's excess {} pages ({:.2} s at its bandwidth); \
         measured wait {:.1} s; bound {:.2} s",
        (floor_back - wake) as u64 * sc.sample_ms,
        excess,
        excess as f64 / bw,
        wait,
        bound
    );
    assert_eq!(
        floor_back,
        wake + 1,
        "floor back at the first sample after the wake"
    );
    assert!(wait <= bound, "wait {wait} s > bound {bound} s");
}

/// A writer asleep in a `balance_dirty_pages()` pause is still writing:
/// the FUSE device of `fuse-strict-beside-ssd`, whose writer sleeps through
/// whole steps, never lends its share while the writer runs (10-45 s).
#[test]
fn paused_writer_keeps_its_device_active() {
    let mut sc = scenario("fuse-strict-beside-ssd");
    sc.sample_ms = sc.step_ms;
    let fuse = device(&sc, "fuse");
    let rec = run(&sc, Policy::Lend).expect("run");
    let lent = (at(&sc, 10_010)..at(&sc, 45_000))
        .filter(|&k| rec.dev(k, fuse).wb_thresh == 0)
        .count();
    println!("fuse-strict-beside-ssd: steps with the FUSE writer running and wb_thresh 0: {lent}");
    assert_eq!(lent, 0);
}

/// Case 4 and every built-in scenario: Lend's convergence after each change
/// is no slower than Linux's.
#[test]
fn lend_converges_no_slower_than_linux() {
    let mut misses = Vec::new();
    for sc in all_builtin().expect("parse") {
        let lend = metrics(&sc, &run(&sc, Policy::Lend).expect("run"));
        let linux = metrics(&sc, &run(&sc, Policy::Linux).expect("run"));
        for (a, b) in lend.convergence.iter().zip(&linux.convergence) {
            let (x, y) = (
                a.secs.unwrap_or(f64::INFINITY),
                b.secs.unwrap_or(f64::INFINITY),
            );
            println!(
                "{} t={} s: lend {x:.1} s, linux {y:.1} s",
                sc.name,
                a.at_ms / 1000
            );
            if x > y {
                misses.push(format!(
                    "{} after t={} ms: lend {x} s > linux {y} s",
                    sc.name, a.at_ms
                ));
            }
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}

/// In `owner-wakes`, the `strict_limit` borrower is not throttled by the
/// global count below its own freerun ceiling, so pages lent while their
/// lender still held them would be dirtied on top of them: the global dirty
/// count never passes the hard limit (the owner's wait bound assumes it).
#[test]
fn lending_never_passes_the_hard_limit() {
    for name in ["owner-wakes", "idle-min-ratio", "idle-system-newcomer"] {
        let sc = scenario(name);
        let m = metrics(&sc, &run(&sc, Policy::Lend).expect("run"));
        println!(
            "{name}: peak dirty {:.1} MiB, {:.1} MiB from the hard limit",
            m.peak_dirty_mib, m.peak_over_limit_mib
        );
        assert!(m.peak_over_limit_mib <= 0.0, "{name}: {m:?}");
    }
}
