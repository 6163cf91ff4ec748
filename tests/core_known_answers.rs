//! Known-answer tests of the kernel formulas on worked examples, each
//! computed by hand from the kernel's integer arithmetic. The function each
//! case mirrors is named in the test name or comment.

use dirtylimit::bdi::LimitSum;
use dirtylimit::global_limits::{domain_dirty_limits, global_dirtyable_memory, MemInfo};
use dirtylimit::wb_thresh::wb_bg_thresh;
use dirtylimit::{Bdi, BytesMode, DirtyLimits, Domain, DomainConfig, Error, Policy, VmDirtyConfig};

#[test]
fn global_dirtyable_memory_floors_free_minus_reserve() {
    // free 100 - reserve 150 floors at 0; + file LRU 50 + 1.
    let m = MemInfo {
        free: 100,
        totalreserve: 150,
        file_lru: 50,
    };
    assert_eq!(global_dirtyable_memory(&m), 51);
    let m = MemInfo {
        free: 1000,
        totalreserve: 150,
        file_lru: 50,
    };
    assert_eq!(global_dirtyable_memory(&m), 901);
}

#[test]
fn domain_dirty_limits_ratio_bytes_rt_and_caps() {
    let cfg = VmDirtyConfig::default();
    // 20% -> 819/4096, 10% -> 409/4096 of 1,000,000 pages.
    let l = domain_dirty_limits(1_000_000, &cfg, None);
    assert_eq!((l.thresh, l.bg_thresh), (199_951, 99_853));
    // rt_or_dl_task: x += x/4 + dirty_limit/32 with dirty_limit 199,951:
    // 199,951 + 49,987 + 6,248 = 256,186; 99,853 + 24,963 + 6,248 = 131,064.
    let l = domain_dirty_limits(1_000_000, &cfg, Some(199_951));
    assert_eq!((l.thresh, l.bg_thresh), (256_186, 131_064));
    // UINT_MAX cap: 819 * 2^44 / 4096 = 819 * 2^32 pages > u32::MAX, and
    // bg (409 * 2^32) >= thresh -> thresh / 2.
    let l = domain_dirty_limits(1 << 44, &cfg, None);
    assert_eq!(
        (l.thresh, l.bg_thresh),
        (u64::from(u32::MAX), u64::from(u32::MAX) / 2)
    );
    // dirty_bytes rounds up to pages: 10 MiB + 1 byte -> 2561.
    let mut cfg = VmDirtyConfig::default();
    cfg.set_dirty_bytes((10 << 20) + 1).unwrap();
    assert_eq!(cfg.dirty_ratio, 0, "setting bytes clears the ratio");
    let l = domain_dirty_limits(1_000_000, &cfg, None);
    assert_eq!((l.thresh, l.bg_thresh), (2561, 1280));
    assert_eq!(cfg.set_dirty_ratio(101), Err(Error::RatioOutOfRange));
    assert_eq!(
        cfg.set_dirty_bytes(8191),
        Err(Error::RatioOutOfRange),
        "dirty_bytes_min is 2 pages"
    );
    assert_eq!(cfg.dirty_bytes, (10 << 20) + 1, "refused: unchanged");
}

#[test]
fn wb_bg_thresh_is_the_same_share_of_bg_thresh() {
    let lim = DirtyLimits {
        avail: 1_000_000,
        thresh: 200_000,
        bg_thresh: 100_000,
    };
    assert_eq!(wb_bg_thresh(1000, &lim), 500);
    assert_eq!(wb_bg_thresh(1001, &lim), 500);
    assert_eq!(wb_bg_thresh(5, &DirtyLimits { thresh: 0, ..lim }), 0);
}

const LIM: DirtyLimits = DirtyLimits {
    avail: 1_000_000,
    thresh: 200_000,
    bg_thresh: 100_000,
};

#[test]
fn bdi_set_max_bytes_snapshot_vs_resolve() {
    // 100 MiB = 25,600 pages; bdi_ratio_from_pages: 25,600 * 10^6 / 200,000 = 128,000 ppm.
    for (mode, at_400k, at_20k) in [
        (BytesMode::LinuxSnapshot, 51_200, 2_560), // the ratio sticks: 12.8% of the new T
        // the pages stick; at T = 20,000 the cap (20,000) no longer binds: 20,000 * 10/11
        (BytesMode::Resolve, 25_600, 18_181),
    ] {
        let mut slots = [Bdi::EMPTY; 2];
        let cfg = DomainConfig {
            bytes_mode: mode,
            idle_floor: false,
            ..DomainConfig::new(Policy::ClipOnly)
        };
        let mut d = Domain::new(&mut slots, cfg);
        let a = d.add_bdi().unwrap();
        d.set_max_bytes(a, 100 << 20, &LIM).unwrap();
        d.update_dirty_limit(LIM.thresh);
        assert_eq!(d.max_ratio_fine(a), Ok(128_000), "{mode:?}");
        d.writeout_inc(a, 10, 0); // alone: fraction 10/11
        assert_eq!(d.wb_thresh(a, 400_000, 400_000), at_400k, "{mode:?}");
        assert_eq!(d.wb_thresh(a, 20_000, 20_000), at_20k, "{mode:?}");
        // bdi_get_max_bytes at T = 200,000: 200,000 * 4096 * 128,000 / 10^6.
        assert_eq!(d.max_bytes(a, 200_000), Ok(104_857_600), "{mode:?}");
    }
}

#[test]
fn bdi_set_min_bytes_validation() {
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Linux));
    let a = d.add_bdi().unwrap();
    // bdi_check_pages_limit: more than dirtyable memory.
    assert_eq!(
        d.set_min_bytes(a, (LIM.avail + 1) << 12, &LIM),
        Err(Error::BytesAboveDirtyable)
    );
    // bdi_ratio_from_pages with a 0 threshold.
    let zero = DirtyLimits { thresh: 0, ..LIM };
    assert_eq!(d.set_min_bytes(a, 4096, &zero), Err(Error::NoDirtyThresh));
    // Within dirtyable memory but above T: a ratio over 100%.
    assert_eq!(
        d.set_min_bytes(a, 300_000 << 12, &LIM),
        Err(Error::RatioOutOfRange)
    );
    // 20,000 pages of 200,000 = 100,000 ppm.
    d.set_min_bytes(a, 20_000 << 12, &LIM).unwrap();
    assert_eq!(d.min_ratio_fine(a), Ok(100_000));
    assert_eq!(
        d.sum_min(),
        LimitSum {
            ppm: 100_000,
            pages: 0
        }
    );
}

#[test]
fn linux_wb_calc_thresh_with_min_ratio_and_strict_idle_floor() {
    // T = 100,000; A min 10% with 300 completions, B 100 (global 1 + 400).
    // Pool 100,000 * 900,000 / 10^6 = 90,000. A: 90,000 * 300 / 401 = 67,331
    // + 10,000 = 77,331; B: 90,000 * 100 / 401 = 22,443.
    let mut slots = [Bdi::EMPTY; 3];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Linux));
    let (a, b, c) = (
        d.add_bdi().unwrap(),
        d.add_bdi().unwrap(),
        d.add_bdi().unwrap(),
    );
    d.set_min_ratio(a, 10).unwrap();
    d.writeout_inc(a, 300, 0);
    d.writeout_inc(b, 100, 0);
    assert_eq!(d.wb_thresh(a, 100_000, 100_000), 77_331);
    assert_eq!(d.wb_thresh(b, 100_000, 100_000), 22_443);
    // Idle floor (6.13+): C has no completions; dirty 20,000 ->
    // (100,000 - 20,000) / 8 = 10,000, or / 100 = 800 with strict_limit.
    assert_eq!(d.wb_thresh(c, 100_000, 20_000), 10_000);
    d.set_strict_limit(c, true).unwrap();
    assert_eq!(d.wb_thresh(c, 100_000, 20_000), 800);
    // ... then clipped: max_ratio 0.5% = 500 pages.
    d.set_max_ratio_fine(c, 5_000).unwrap();
    assert_eq!(d.wb_thresh(c, 100_000, 20_000), 500);
    assert_eq!(d.wb_thresh(c, 100_000, 100_000), 0, "no floor at the limit");
}

#[test]
fn pre_6_13_formula_has_no_idle_floor() {
    let mut slots = [Bdi::EMPTY; 1];
    let cfg = DomainConfig {
        idle_floor: false,
        ..DomainConfig::new(Policy::Linux)
    };
    let mut d = Domain::new(&mut slots, cfg);
    let c = d.add_bdi().unwrap();
    assert_eq!(d.wb_thresh(c, 100_000, 0), 0);
}

#[test]
fn redistribute_reacts_at_the_next_tick_linux_in_periods() {
    // FUSE capped at 1% completes 90%: Linux stops counting it past 1/1024
    // steps of its cap (max_prop_frac = 10), ClipOnly loses the clipped
    // share, Redistribute gives it to the SSD.
    let t = 100_000;
    let mut got = vec![];
    for policy in Policy::ALL {
        let mut slots = [Bdi::EMPTY; 2];
        let mut d = Domain::new(&mut slots, DomainConfig::new(policy));
        let (fuse, ssd) = (d.add_bdi().unwrap(), d.add_bdi().unwrap());
        d.set_max_ratio(fuse, 1).unwrap();
        d.update_dirty_limit(t);
        d.writeout_inc(fuse, 9_000, 0);
        d.writeout_inc(ssd, 1_000, 0);
        d.note_active(fuse); // Lend only
        d.note_active(ssd);
        d.tick(1);
        got.push((d.wb_thresh(fuse, t, t), d.wb_thresh(ssd, t, t)));
    }
    // ClipOnly: 100,000 * 9,000 / 10,001 clipped to 1,000; 100,000 * 1,000 / 10,001.
    // Linux: 1 of fuse's events counted (ceil(10/1014)): 100,000/1,002 = 99 and
    //        100,000 * 1,000 / 1,002 = 99,800.
    // Lend: none of fuse's events counted, exactly (1% of a global count
    //       of 1 is below one event), so the SSD has all of T.
    assert_eq!(
        got,
        vec![(1_000, 9_999), (99, 99_800), (1_000, 99_000), (0, 100_000)]
    );
}

#[test]
fn a_bdi_alone_at_its_cap_makes_room_at_the_next_tick() {
    // The SSD writes alone: its share is all of T, which is also its cap.
    // Then a second bdi completes as much: at the next tick (no period
    // boundary) the two share T equally: 100,000 * 1,000 / 2,000 each.
    let t = 100_000;
    let mut slots = [Bdi::EMPTY; 2];
    let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Redistribute));
    let (ssd, usb) = (d.add_bdi().unwrap(), d.add_bdi().unwrap());
    d.update_dirty_limit(t);
    d.writeout_inc(ssd, 1_000, 0);
    d.tick(10);
    assert_eq!(d.wb_thresh(ssd, t, t), t);
    d.writeout_inc(usb, 1_000, 20);
    d.tick(30);
    assert_eq!(
        (d.wb_thresh(ssd, t, t), d.wb_thresh(usb, t, t)),
        (50_000, 50_000)
    );
}
