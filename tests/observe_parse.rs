//! Parsing of the kernel's files on samples captured from this machine (Linux 6.18, x86_64,
//! 2 CPUs, 24 GiB): see tests/data/observe/README.md for how each tree was taken.
#![cfg(feature = "std")]

use std::path::PathBuf;

use dirtylimit::observe::parse::{self, kb_to_pages};
use dirtylimit::observe::sysfs::{self, KernelPaths};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/observe")
        .join(name)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const VDA_WRITING: &str = "host-6.18-vda-writing";

#[test]
fn vmstat_of_a_writing_host() {
    let v = parse::parse_vmstat(&read(data(VDA_WRITING).join("proc/vmstat"))).unwrap();
    // Every line of the file became a field.
    let lines = read(data(VDA_WRITING).join("proc/vmstat")).lines().count();
    assert_eq!(v.fields.len(), lines);
    assert_eq!(v.nr_dirty().unwrap(), 153_708);
    assert_eq!(v.nr_writeback().unwrap(), 0);
    assert_eq!(v.global_dirty().unwrap(), 153_708);
    assert_eq!(v.dirty_limits().unwrap(), (1_203_077, 600_804));
    // vm.dirty_ratio = 20, dirty_background_ratio = 10 on this host, in the kernel's
    // per-PAGE_SIZE precision: thresh = 819·avail/4096, bg = 409·avail/4096, so
    // thresh − 2·bg = avail/4096 = thresh/819 (± rounding).
    let (t, bg) = v.dirty_limits().unwrap();
    assert!((t - 2 * bg).abs_diff(t / 819) <= 2, "{t} {bg}");
    // The zone counter of the same pages agrees with the node counter (both in pages).
    assert_eq!(v.get("nr_zone_write_pending"), Some(153_708));
}

#[test]
fn stats_of_the_writing_disk() {
    let s = parse::parse_bdi_stats(&read(
        data(VDA_WRITING).join("sys/kernel/debug/bdi/254:0/stats"),
    ))
    .unwrap();
    assert_eq!(s.writeback_kb, 36);
    assert_eq!(s.reclaimable_kb, 630_528);
    assert_eq!(s.bdi_dirty_thresh_kb, 4_812_488);
    assert_eq!(s.dirty_thresh_kb, 4_812_488);
    assert_eq!(s.background_thresh_kb, 2_403_304);
    assert_eq!(s.dirtied_kb, 2_836_404);
    assert_eq!(s.written_kb, 1_960_620);
    assert_eq!(s.write_bandwidth_kbps, 3040);
    assert_eq!(s.b_dirty, 8395);
    assert_eq!(s.bdi_list, 1);
    assert_eq!(s.state, 5);
    // The only writer has fraction ~1: its threshold is the whole DirtyThresh (max_ratio 100).
    assert_eq!(s.bdi_dirty_thresh_pages(), s.dirty_thresh_pages());
    assert_eq!(s.written_pages(), 1_960_620 / 4);
    // kB values are whole pages.
    for kb in [s.writeback_kb, s.reclaimable_kb, s.dirtied_kb, s.written_kb] {
        assert_eq!(kb % 4, 0);
    }
}

#[test]
fn wb_stats_has_one_root_wb() {
    let text = read(data(VDA_WRITING).join("sys/kernel/debug/bdi/254:0/wb_stats"));
    let wbs = parse::parse_wb_stats(&text).unwrap();
    assert_eq!(wbs.len(), 1, "cgroup v1 here: only the root wb");
    let wb = wbs[0];
    assert_eq!(wb.cg_ino, 1);
    assert_eq!(wb.state, 5);
    // wb_stats was read right after stats: the counters only grow.
    let s = parse::parse_bdi_stats(&read(
        data(VDA_WRITING).join("sys/kernel/debug/bdi/254:0/stats"),
    ))
    .unwrap();
    assert!(wb.written_kb >= s.written_kb);
    assert!(wb.dirtied_kb >= s.dirtied_kb);
    assert!(kb_to_pages(wb.dirty_thresh_kb) > 0);
}

#[test]
fn knobs_and_the_sample_reader() {
    let paths = KernelPaths::at(data(VDA_WRITING));
    let names = sysfs::list_bdis(&paths).unwrap();
    assert_eq!(
        names,
        ["7:0", "7:1", "7:2", "7:3", "7:4", "7:5", "7:6", "7:7", "253:0", "254:0"]
    );
    let k = sysfs::read_knobs(&paths, "254:0").unwrap().unwrap();
    assert_eq!(k.min_ratio, 0);
    assert_eq!(k.max_ratio, 100);
    assert_eq!(k.min_ratio_fine, 0);
    assert_eq!(k.max_ratio_fine, 1_000_000);
    assert!(!k.strict_limit);
    // max_bytes is derived by the kernel from max_ratio and the current limit: 100% of
    // roughly DirtyThresh (the limit moved between the two reads).
    let max_bytes = k.max_bytes.unwrap();
    let thresh_bytes = 4_812_488u64 * 1024;
    assert!(
        max_bytes.abs_diff(thresh_bytes) < thresh_bytes / 50,
        "{max_bytes}"
    );
    assert!(sysfs::read_knobs(&paths, "no-such-bdi").unwrap().is_none());

    let sample = sysfs::read_sample(&paths, std::time::Duration::ZERO).unwrap();
    assert_eq!(sample.bdis.len(), 10);
    assert_eq!(sample.dirty_thresh(), Some(4_812_356 / 4)); // 7:0 comes first
    let vda = sample.bdi("254:0").unwrap();
    assert_eq!(vda.wb_count, Some(1));
    assert_eq!(vda.stats.written_kb, 1_960_620);
}

/// The 6.13+ idle-device floor, seen in the real data: every bdi that never wrote (fraction 0)
/// reports `BdiDirtyThresh = (DirtyThresh - dirty) / 8` for a global dirty count between the
/// vmstat read just before and the one just after the stats files (the host was writing, so
/// `nr_dirty` grew from 153,708 to 187,388 pages meanwhile). Bdis read later saw more dirty
/// pages, so their floors are lower.
#[test]
fn idle_bdis_sit_at_the_idle_floor() {
    let root = data(VDA_WRITING);
    let before = parse::parse_vmstat(&read(root.join("proc/vmstat")))
        .unwrap()
        .global_dirty()
        .unwrap();
    let after = parse::parse_vmstat(&read(root.join("proc/vmstat.after")))
        .unwrap()
        .global_dirty()
        .unwrap();
    assert!(before < after);
    let paths = KernelPaths::at(&root);
    let mut idle = 0;
    let mut last_dirty_lo = 0;
    // The capture read the bdis in the shell's glob order.
    let mut names = sysfs::list_bdis(&paths).unwrap();
    names.sort();
    for name in names {
        let s = sysfs::read_stats(&paths, &name).unwrap().unwrap();
        if s.written_kb != 0 {
            continue;
        }
        idle += 1;
        let t = s.dirty_thresh_pages();
        let w = s.bdi_dirty_thresh_pages();
        // floor((t - d) / 8) == w  <=>  t - 8w - 7 <= d <= t - 8w
        let d_hi = t - 8 * w;
        let d_lo = d_hi - 7;
        assert!(
            d_hi >= before && d_lo <= after,
            "{name}: implied dirty {d_lo}..={d_hi} outside {before}..={after}"
        );
        assert!(d_lo + 7 >= last_dirty_lo, "{name}: dirty went down");
        last_dirty_lo = d_lo;
    }
    assert_eq!(idle, 9);
}

const CROSSCHECK: &str = "host-6.18-crosscheck-fuse";

/// The cross-check's capture: byte limits, a capped loop device, and a FUSE bdi.
#[test]
fn crosscheck_capture_limits_caps_and_fuse() {
    let paths = KernelPaths::at(data(CROSSCHECK));
    let s = sysfs::read_sample(&paths, std::time::Duration::ZERO).unwrap();
    assert_eq!(s.bdis.len(), 11, "10 block bdis + the FUSE mount");
    // vm.dirty_bytes = 256 MiB: thresh = DIV_ROUND_UP(bytes, PAGE_SIZE), no ratio rounding;
    // background 32 MiB.
    let (t, bg) = s.vmstat.dirty_limits().unwrap();
    assert_eq!((t, bg), (65_536, 8_192));
    for b in &s.bdis {
        assert_eq!(b.stats.dirty_thresh_pages(), t, "{}", b.name);
        assert_eq!(b.stats.background_thresh_pages(), bg, "{}", b.name);
    }
    // FUSE: strict_limit and max_ratio 1% are set by the kernel (fuse_bdi_init).
    let fuse = s.bdi("0:39").unwrap();
    assert!(fuse.knobs.strict_limit);
    assert_eq!(
        (fuse.knobs.max_ratio, fuse.knobs.max_ratio_fine),
        (1, 10_000)
    );
    assert!(fuse.stats.written_kb > 0);
    // Its threshold is between the strict idle floor (thresh − dirty)/100 and its cap
    // thresh·1%; the dirty count was between the two vmstat reads.
    let dirty_after = parse::parse_vmstat(&read(data(CROSSCHECK).join("proc/vmstat.after")))
        .unwrap()
        .global_dirty()
        .unwrap();
    let w = fuse.stats.bdi_dirty_thresh_pages();
    assert!(w >= (t - dirty_after) / 100, "{w}");
    assert!(w <= t / 100, "{w}");
    // Loop device A: max_ratio lowered to 10%, clipped exactly at thresh·100000/10^6.
    let a = s.bdi("7:0").unwrap();
    assert_eq!(a.knobs.max_ratio_fine, 100_000);
    assert_eq!(a.stats.bdi_dirty_thresh_pages(), t * 100_000 / 1_000_000);
    // Loop device B, the main writer: the biggest share, below thresh.
    let b = s.bdi("7:1").unwrap();
    let max = s
        .bdis
        .iter()
        .map(|x| x.stats.bdi_dirty_thresh_pages())
        .max();
    assert_eq!(Some(b.stats.bdi_dirty_thresh_pages()), max);
    assert!(b.stats.bdi_dirty_thresh_pages() < t);
    // Unattached loop devices are at the non-strict idle floor.
    let idle = s.bdi("7:5").unwrap();
    let f = idle.stats.bdi_dirty_thresh_pages();
    assert!(f <= (t - s.vmstat.global_dirty().unwrap()) / 8 && f >= (t - dirty_after) / 8);
}

#[test]
fn kernel_release_and_idle_floor() {
    assert_eq!(sysfs::parse_release("6.18.44-fc-v657\n"), Some((6, 18)));
    assert_eq!(sysfs::parse_release("6.1.0-56-amd64"), Some((6, 1)));
    assert_eq!(sysfs::parse_release("6.13-rc1"), Some((6, 13)));
    assert_eq!(sysfs::parse_release("garbage"), None);
    // Captured trees have no osrelease: taken as 6.13+.
    assert!(sysfs::kernel_has_idle_floor(&KernelPaths::at(data(
        VDA_WRITING
    ))));
    // This host: 6.18.
    if let Ok(r) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let v = sysfs::parse_release(&r).unwrap();
        assert_eq!(
            sysfs::kernel_has_idle_floor(&KernelPaths::host()),
            v >= (6, 13)
        );
    }
}
