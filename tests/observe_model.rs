//! The observe glue: kernel samples in, the core's `Linux` model and `Redistribute`
//! counterfactual out. Synthetic samples with known completion histories.
#![cfg(feature = "std")]

use std::time::Duration;

use dirtylimit::bdi::Bdi;
use dirtylimit::observe::model::{Tracker, TrackerConfig};
use dirtylimit::observe::parse::{BdiKnobs, BdiStats, VmStat};
use dirtylimit::observe::sysfs::{BdiSample, Sample};

const T: u64 = 65_536; // pages: vm.dirty_bytes = 256 MiB

struct Dev {
    name: &'static str,
    written: u64, // pages, cumulative
    max_fine: u64,
    strict: bool,
}

fn dev(name: &'static str) -> Dev {
    Dev {
        name,
        written: 0,
        max_fine: 1_000_000,
        strict: false,
    }
}

fn sample(t_ms: u64, devs: &[Dev], dirty: u64) -> Sample {
    let mut vm = VmStat::default();
    vm.fields.insert("nr_dirty".into(), dirty);
    vm.fields.insert("nr_writeback".into(), 0);
    vm.fields.insert("nr_dirty_threshold".into(), T);
    vm.fields
        .insert("nr_dirty_background_threshold".into(), T / 8);
    Sample {
        t: Duration::from_millis(t_ms),
        vmstat: vm,
        bdis: devs
            .iter()
            .map(|d| BdiSample {
                name: d.name.into(),
                knobs: BdiKnobs {
                    min_ratio: 0,
                    max_ratio: d.max_fine / 10_000,
                    min_ratio_fine: 0,
                    max_ratio_fine: d.max_fine,
                    min_bytes: Some(0),
                    max_bytes: None,
                    strict_limit: d.strict,
                },
                stats: BdiStats {
                    dirty_thresh_kb: T * 4,
                    written_kb: d.written * 4,
                    ..BdiStats::default()
                },
                wb_count: Some(1),
                dirty_before: dirty,
                dirty_after: dirty,
            })
            .collect(),
    }
}

fn tracker_slots() -> (Vec<Bdi>, Vec<Bdi>) {
    (vec![Bdi::EMPTY; 8], vec![Bdi::EMPTY; 8])
}

#[test]
fn steady_rates_give_proportional_thresholds_and_idle_floors() {
    let (mut l, mut r) = tracker_slots();
    let mut tr = Tracker::new(&mut l, &mut r, TrackerConfig::default());
    let mut devs = [dev("7:0"), dev("7:1"), dev("7:2"), dev("0:40")];
    devs[3].strict = true;
    devs[3].max_fine = 10_000; // FUSE: strict, 1%
    let dirty = 4_000;
    let mut last = None;
    for s in 0..=60u64 {
        // 3 : 1 completions; 7:2 and the FUSE bdi idle.
        if s > 0 {
            devs[0].written += 3_000;
            devs[1].written += 1_000;
        }
        last = Some(tr.step(&sample(s * 1000, &devs, dirty)).unwrap());
    }
    let (rows, sum) = last.unwrap();
    let row = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
    let (a, b, idle, fuse) = (row("7:0"), row("7:1"), row("7:2"), row("0:40"));
    // Completions were fed: 3000 and 1000 pages per second.
    assert_eq!(a.written, 3_000);
    assert_eq!(b.written, 1_000);
    // Fractions 3/4 and 1/4 of T (the global count's start value 1 and integer halving make
    // it a hair less).
    let near = |x: u64, want: f64| (x as f64 - want).abs() / want < 0.01;
    assert!(near(a.linux, 0.75 * T as f64), "{}", a.linux);
    assert!(near(b.linux, 0.25 * T as f64), "{}", b.linux);
    assert!(a.active() && b.active() && !idle.active());
    // Idle bdis sit at the 6.13+ floor: (T − dirty)/8, strict: /100 (and its 1% cap).
    assert_eq!(idle.linux, (T - dirty) / 8);
    assert_eq!(fuse.linux, ((T - dirty) / 100).min(T / 100));
    // Nobody capped: Redistribute equals Linux here, up to the water level's rounding.
    assert!(
        a.redistribute.abs_diff(a.linux) <= 2,
        "{} {}",
        a.redistribute,
        a.linux
    );
    assert!(
        b.redistribute.abs_diff(b.linux) <= 2,
        "{} {}",
        b.redistribute,
        b.linux
    );
    // Unused share over the active bdis is ~0 for both.
    assert!(sum.unused_linux.unwrap().abs() < 0.01);
    assert_eq!(sum.active, vec!["7:0".to_string(), "7:1".to_string()]);
    // The kernel column is what the sample said (0 here), so the error is undefined.
    assert_eq!(a.kernel, 0);
    assert!(a.rel_err().is_none());
}

#[test]
fn lowering_max_ratio_leaves_share_unused_in_linux_not_in_redistribute() {
    let (mut l, mut r) = tracker_slots();
    let mut tr = Tracker::new(&mut l, &mut r, TrackerConfig::default());
    let mut devs = [dev("7:0"), dev("7:1")];
    let mut t = 0;
    for _ in 0..=40 {
        devs[0].written += 3_000;
        devs[1].written += 1_000;
        tr.step(&sample(t, &devs, 0)).unwrap();
        t += 1000;
    }
    // max_ratio of 7:0 lowered to 10%: the kernel's knob changes, the tracker applies it.
    devs[0].max_fine = 100_000;
    devs[0].written += 3_000;
    devs[1].written += 1_000;
    let (rows, sum) = tr.step(&sample(t, &devs, 0)).unwrap();
    let a = rows.iter().find(|r| r.name == "7:0").unwrap();
    let b = rows.iter().find(|r| r.name == "7:1").unwrap();
    assert_eq!(a.max_ratio_fine, 100_000);
    assert_eq!(a.linux, T / 10);
    assert_eq!(a.redistribute, T / 10);
    // Linux: B still has its ~25% fraction; Redistribute gives it the rest of the pool.
    assert!(b.linux < T * 3 / 10, "{}", b.linux);
    assert!(
        b.redistribute + a.redistribute >= T - 2,
        "{} {}",
        b.redistribute,
        a.redistribute
    );
    let (ul, ur) = (sum.unused_linux.unwrap(), sum.unused_redistribute.unwrap());
    assert!(ul > 0.6, "{ul}");
    assert!(ur.abs() < 0.001, "{ur}");
}

#[test]
fn following_kernel_periods_ages_at_the_kernel_boundaries() {
    // A completes 1000 pages in (0, 1 s], B 1000 pages in (1 s, 2 s].
    let run = |boundaries: &[f64], follow: bool| {
        let (mut l, mut r) = tracker_slots();
        let mut tr = Tracker::new(&mut l, &mut r, TrackerConfig::default());
        if follow {
            tr.follow_kernel_periods();
        }
        let mut devs = [dev("7:0"), dev("7:1")];
        tr.step_with_boundaries(&sample(0, &devs, 0), &[]).unwrap();
        devs[0].written = 1000;
        tr.step_with_boundaries(&sample(1000, &devs, 0), &[])
            .unwrap();
        devs[1].written = 1000;
        let (rows, _) = tr
            .step_with_boundaries(&sample(2000, &devs, 0), boundaries)
            .unwrap();
        (rows[0].linux, rows[1].linux)
    };
    // No period boundary in the kernel: equal shares (global count 1 + 2000).
    let (a, b) = run(&[], true);
    assert_eq!(a, b);
    assert_eq!(a, T * 1000 / 2001);
    // The kernel's writeout_period() ran at 1.5 s. B's second is fed in 32 slices, 15 of them
    // (1000·15/32 = 468 pages) before 1.5 s: those and A's 1000 were halved with the global
    // count: global (1 + 1000 + 468) >> 1 = 734, then + 532; A 500, B 234 + 532.
    let before = 1000 * 15 / 32;
    let global = ((1 + 1000 + before) >> 1) + (1000 - before);
    let (a, b) = run(&[1.5], true);
    assert_eq!(a, T * 500 / global);
    assert_eq!(b, T * ((before >> 1) + 1000 - before) / global);
    assert!(b > a);
    // A free-running model clock armed at the first completion (t ≈ 0) has no boundary
    // before 3 s: it ignores the kernel's.
    let (a, b) = run(&[1.5], false);
    assert_eq!(a, b);
}

#[test]
fn vanished_bdis_and_counter_resets_are_tolerated() {
    let (mut l, mut r) = tracker_slots();
    let mut tr = Tracker::new(&mut l, &mut r, TrackerConfig::default());
    let mut devs = vec![dev("7:0"), dev("0:40")];
    devs[0].written = 500;
    devs[1].written = 900;
    tr.step(&sample(0, &devs, 0)).unwrap();
    devs[1].written = 1000;
    tr.step(&sample(1000, &devs, 0)).unwrap();
    // The FUSE mount goes away; a new one reuses the name with a fresh counter.
    let gone = devs.pop().unwrap();
    let (rows, _) = tr.step(&sample(2000, &devs, 0)).unwrap();
    assert_eq!(rows.len(), 1);
    devs.push(Dev {
        written: 10,
        ..gone
    });
    let (rows, _) = tr.step(&sample(3000, &devs, 0)).unwrap();
    let f = rows.iter().find(|r| r.name == "0:40").unwrap();
    assert_eq!(f.written, 0, "a new bdi's first sample is its baseline");
    assert_eq!(f.age, 0);
    // More bdis than slots: a clear error, not a panic.
    let (mut l2, mut r2) = (vec![Bdi::EMPTY; 1], vec![Bdi::EMPTY; 1]);
    let mut small = Tracker::new(&mut l2, &mut r2, TrackerConfig::default());
    let err = small
        .step(&sample(0, &[dev("7:0"), dev("7:1")], 0))
        .unwrap_err();
    assert!(format!("{err}").contains("7:1"), "{err}");
}

#[test]
fn seeding_from_the_kernel_starts_at_its_fractions() {
    let (mut l, mut r) = tracker_slots();
    let mut tr = Tracker::new(
        &mut l,
        &mut r,
        TrackerConfig {
            seed_from_kernel: true,
            ..TrackerConfig::default()
        },
    );
    let mut devs = [dev("7:0"), dev("7:1"), dev("7:2")];
    // The kernel's global count is 10,000 (unknown to the tracker): 7:0 has 6,000, 7:1 3,000,
    // 7:2 (at its idle floor T/8) the rest.
    let kernel = |s: &mut Sample, a: f64, b: f64| {
        s.bdis[0].stats.bdi_dirty_thresh_kb = (a * T as f64) as u64 * 4;
        s.bdis[1].stats.bdi_dirty_thresh_kb = (b * T as f64) as u64 * 4;
        s.bdis[2].stats.bdi_dirty_thresh_kb = T / 8 * 4;
    };
    let mut s0 = sample(0, &devs, 0);
    kernel(&mut s0, 0.6, 0.3);
    let (rows, _) = tr.step(&s0).unwrap();
    assert_eq!(rows[0].linux, T / 8, "nothing fed yet");
    // An idle interval shows nothing about the global count: still unseeded.
    let mut s1 = sample(1000, &devs, 0);
    kernel(&mut s1, 0.6, 0.3);
    let (rows, _) = tr.step(&s1).unwrap();
    assert_eq!(rows[0].linux, T / 8);
    // 1,000 pages complete on 7:0; the kernel's fractions move to 7000/11000 and 3000/11000.
    devs[0].written = 1000;
    let mut s2 = sample(2000, &devs, 0);
    kernel(&mut s2, 7000.0 / 11000.0, 3000.0 / 11000.0);
    let (rows, _) = tr.step(&s2).unwrap();
    let near = |x: u64, want: f64| (x as f64 - want).abs() / want < 0.005;
    assert!(
        near(rows[0].linux, T as f64 * 7.0 / 11.0),
        "{}",
        rows[0].linux
    );
    assert!(
        near(rows[1].linux, T as f64 * 3.0 / 11.0),
        "{}",
        rows[1].linux
    );
    assert_eq!(rows[2].linux, T / 8);
    // Without seeding, 7:0 has all the completions the model saw.
    let (mut l2, mut r2) = tracker_slots();
    let mut plain = Tracker::new(&mut l2, &mut r2, TrackerConfig::default());
    plain.step(&s0).unwrap();
    plain.step(&s1).unwrap();
    let (rows, _) = plain.step(&s2).unwrap();
    assert!(rows[0].linux > T * 99 / 100, "{}", rows[0].linux);
}
