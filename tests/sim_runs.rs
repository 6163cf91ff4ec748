//! Every built-in scenario runs under every policy, deterministically, and
//! the "max_ratio lowered" scenario orders the policies as expected.

use dirtylimit::policy::Policy;
use dirtylimit::sim::report::{write_metrics_csv, write_timeseries};
use dirtylimit::sim::{all_builtin, builtin, metrics, run, BUILTIN};

#[test]
fn every_builtin_scenario_runs_under_every_policy() {
    let all = all_builtin().expect("built-in scenarios parse");
    assert_eq!(all.len(), 9);
    assert_eq!(all.len(), BUILTIN.len());
    for sc in &all {
        for p in Policy::ALL {
            let rec = run(sc, p).expect("run");
            assert_eq!(rec.policy, Some(p));
            assert_eq!(
                rec.len() as u64,
                sc.duration_ms / sc.sample_ms + 1,
                "{}",
                sc.name
            );
            assert_eq!(rec.global.last().map(|g| g.t_ms), Some(sc.duration_ms));
            let m = metrics(sc, &rec);
            assert_eq!(m.convergence.len(), sc.change_points().len());
            assert!(m.total_mib_s > 0.0, "{} {:?}: nothing written", sc.name, p);
            if let Some(u) = m.unused_share {
                assert!((0.0..=1.0).contains(&u), "{} {:?}: unused {u}", sc.name, p);
            }
            for (_, mib) in &m.peak_pinned_mib {
                assert!(mib.is_finite() && *mib >= 0.0);
            }
            // wb_thresh never above T under any policy (the idle floor is
            // at most (T - dirty)/8 and every cap is at most T).
            for (k, g) in rec.global.iter().enumerate() {
                for d in 0..rec.n_devs {
                    assert!(rec.dev(k, d).wb_thresh <= g.thresh, "{} {:?}", sc.name, p);
                }
            }
        }
    }
}

fn csv_bytes(name: &str) -> (Vec<u8>, Vec<u8>) {
    let sc = builtin(name).expect("exists").expect("parses");
    let recs: Vec<_> = Policy::ALL
        .iter()
        .map(|&p| run(&sc, p).expect("run"))
        .collect();
    let ms: Vec<_> = recs.iter().map(|r| metrics(&sc, r)).collect();
    let mut ts = Vec::new();
    write_timeseries(&mut ts, &sc, &recs).expect("csv");
    let mut mc = Vec::new();
    write_metrics_csv(&mut mc, &ms).expect("csv");
    (ts, mc)
}

#[test]
fn the_same_scenario_gives_byte_identical_csv_twice() {
    for (name, _) in BUILTIN {
        let a = csv_bytes(name);
        let b = csv_bytes(name);
        assert!(a.0.len() > 1000, "{name}: time series too short");
        assert!(
            a.0 == b.0,
            "{name}: time series CSV differs between two runs"
        );
        assert!(a.1 == b.1, "{name}: metrics CSV differs between two runs");
    }
}

/// After disk A's max_ratio drops to 10% while B starts writing, the share
/// A loses is allocated at once by Redistribute, over a few periods by Linux
/// (A's completions past its cap stop counting), and only as far as B's
/// fraction of completions allows by ClipOnly (A keeps completing at full
/// speed, so its fraction stays high and is clipped to nobody).
#[test]
fn max_ratio_lowered_orders_the_unused_share() {
    let sc = builtin("max-ratio-lowered")
        .expect("exists")
        .expect("parses");
    let unused = |p: Policy| {
        let rec = run(&sc, p).expect("run");
        metrics(&sc, &rec)
            .unused_share
            .expect("writers were throttled")
    };
    let (clip, linux, redist) = (
        unused(Policy::ClipOnly),
        unused(Policy::Linux),
        unused(Policy::Redistribute),
    );
    assert!(redist < linux, "redistribute {redist} !< linux {linux}");
    assert!(linux <= clip, "linux {linux} !<= clip-only {clip}");
    // And by clear margins: Redistribute leaves (almost) nothing, ClipOnly
    // leaves most of the 90% A lost.
    assert!(redist < 0.01, "redistribute {redist}");
    assert!(linux > 0.02, "linux {linux}");
    assert!(clip > 0.3, "clip-only {clip}");

    // After the change, Redistribute settles at once, the others take seconds.
    let conv = |p: Policy| {
        let rec = run(&sc, p).expect("run");
        let m = metrics(&sc, &rec);
        let c = m
            .convergence
            .iter()
            .find(|c| c.at_ms == 20_000)
            .expect("change at 20 s");
        c.secs.expect("settles")
    };
    assert!(conv(Policy::Redistribute) < 1.0);
    assert!(conv(Policy::Linux) > 3.0);
}
