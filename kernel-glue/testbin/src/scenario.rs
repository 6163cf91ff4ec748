//! Guest scenarios: servers + MAP_SHARED writers + fusectl sampling. Prints `DLTEST PASS|FAIL|NUM` lines.
//!
//! Slack: every bound is checked with `SLACK_CONN` pages per live connection. It covers the
//! 8-page progress reserve the glue grants a connection whose FUSE-wide budget is exhausted,
//! the pages concurrently-faulting writers may dirty between the check and the fault (one per
//! writer), and sampling skew between the fusectl files read one after another.

use crate::util::*;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const SLACK_CONN: u64 = 32;
const PAGE: usize = 4096;

struct Report {
    failed: bool,
}
impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: &str) {
        println!(
            "DLTEST {} {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            self.failed = true;
        }
    }
}

struct Mount {
    dir: String,
    child: Child,
    conn: u64,
}

fn is_mounted(dir: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|s| s.lines().any(|l| l.split_whitespace().nth(1) == Some(dir)))
        .unwrap_or(false)
}

fn mount(dir: &str, stall_now: bool) -> Mount {
    let _ = std::fs::create_dir_all(dir);
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.arg("serve").arg(dir).arg("--wbcache");
    if stall_now {
        cmd.arg("--stall-now");
    }
    let child = cmd.stdin(Stdio::null()).spawn().expect("spawn server");
    let t0 = Instant::now();
    while !is_mounted(dir) && t0.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(20));
    }
    let conn = conn_id(dir).unwrap_or(0);
    Mount {
        dir: dir.to_string(),
        child,
        conn,
    }
}

fn unmount(mut m: Mount) {
    let c = std::ffi::CString::new(m.dir.clone()).expect("no NUL");
    // SAFETY: plain syscall with a valid path.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let _ = m.child.kill();
    let _ = m.child.wait();
}

fn abort(conn: u64) {
    let _ = write_str(&ctl_path(conn, "abort"), "1");
}

/// Counters shared with a forked writer process: pages dirtied, stop request.
#[repr(C)]
struct Shared {
    pages: AtomicU64,
    stop: AtomicBool,
}

struct Writer {
    pid: i32,
    shared: &'static Shared,
}

impl Writer {
    fn pages(&self) -> u64 {
        self.shared.pages.load(Ordering::Relaxed)
    }
}

/// A forked process that keeps dirtying every page of a `size`-byte MAP_SHARED file, one page
/// at a time, until asked to stop. A process, not a thread: a fault on an aborted connection
/// raises SIGBUS, which must only kill the writer.
fn writer(path: &str, size: usize) -> Writer {
    // SAFETY: a fresh anonymous shared mapping, large enough for `Shared`, zero-filled (a valid
    // `Shared`); it is never unmapped, so the `'static` reference stays valid.
    let shared: &'static Shared = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED, "mmap shared counters");
        &*(p as *const Shared)
    };
    let path = std::ffi::CString::new(path).expect("no NUL");
    // SAFETY: the orchestrator is single-threaded (servers and writers are processes), so the
    // child may use anything; it leaves with _exit and never returns into the caller.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Everything file-related happens in the child: a close(2) in the parent would flush
        // (FUSE waits for in-flight writes there, which a stalled server never answers).
        let p = path.to_string_lossy().into_owned();
        let fd = match open_rw(&p, true) {
            Ok(fd) => fd,
            // SAFETY: leaving the child.
            Err(_) => unsafe { libc::_exit(3) },
        };
        ftruncate(fd, size as u64);
        let m = match Mapping::new(fd, size) {
            Ok(m) => m,
            // SAFETY: leaving the child.
            Err(_) => unsafe { libc::_exit(4) },
        };
        let mut round = 0u8;
        'outer: loop {
            round = round.wrapping_add(1);
            for pg in 0..size / PAGE {
                if shared.stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                // SAFETY: the page lies inside our live mapping of a file at least `size` long.
                unsafe { std::ptr::write_bytes(m.ptr.add(pg * PAGE), round, PAGE) };
                shared.pages.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(m);
        close(fd);
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    Writer { pid, shared }
}

/// Stop a writer and reap it, killing it after `secs`. Returns (exited in time, exit status).
fn stop_writer(w: Writer, secs: u64) -> (bool, i32) {
    w.shared.stop.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(w.pid, &mut st, libc::WNOHANG) };
        if r == w.pid {
            return (true, st);
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(w.pid, libc::SIGKILL);
                libc::waitpid(w.pid, &mut st, 0);
            }
            return (false, st);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Clone, Copy, Default, Debug)]
struct Sample {
    thresh: u64,
    dirty: u64,
    wb: u64,
}
impl Sample {
    fn usage(&self) -> u64 {
        self.dirty + self.wb
    }
}

fn sample(conn: u64) -> Sample {
    Sample {
        thresh: read_u64(&ctl_path(conn, "dirty_thresh")).unwrap_or(0),
        dirty: read_u64(&ctl_path(conn, "dirty_pages")).unwrap_or(0),
        wb: read_u64(&ctl_path(conn, "writeback_pages")).unwrap_or(0),
    }
}

fn budget() -> u64 {
    read_u64("/sys/module/fuse/parameters/dirty_budget_pages").unwrap_or(0)
}

/// Dirty + writeback pages over all FUSE connections, summed by the module under its lock.
fn budget_used() -> u64 {
    read_u64("/sys/module/fuse/parameters/dirty_budget_used").unwrap_or(0)
}

fn throttle_waits() -> u64 {
    read_u64("/sys/module/fuse/parameters/dirty_throttle_waits").unwrap_or(0)
}

/// Sum of dirty+writeback over every live FUSE connection in fusectl.
fn fuse_total() -> (u64, u64) {
    let mut sum = 0;
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir("/sys/fs/fuse/connections") {
        for e in rd.flatten() {
            if let Ok(c) = e.file_name().to_string_lossy().parse::<u64>() {
                sum += sample(c).usage();
                n += 1;
            }
        }
    }
    (sum, n)
}

fn pinned_meminfo_pages() -> u64 {
    (meminfo_kb("WritebackTmp") + meminfo_kb("Dirty")) / 4
}

/// Single-mount mmap write throughput: a 32 MiB MAP_SHARED file rewritten for `secs`, the final
/// munmap (which writes everything back) included in the time.
fn throughput(ours: bool, secs: u64) -> f64 {
    let m = mount("/mnt/tput", false);
    let t0 = Instant::now();
    let w = writer("/mnt/tput/f", 32 << 20);
    thread::sleep(Duration::from_secs(secs));
    let pages = w.pages();
    let (ok, _) = stop_writer(w, 60);
    let el = t0.elapsed().as_secs_f64();
    let mbps = pages as f64 * PAGE as f64 / el / 1e6;
    let thr = if ours { sample(m.conn).thresh } else { 0 };
    println!(
        "DLTEST NUM {} single_mount_mmap_write_MBps {:.2} (pages {pages}, {:.1}s incl. final writeback{})",
        if ours { "ours" } else { "stock" },
        mbps,
        el,
        if ours { format!(", dirty_thresh {thr}") } else { String::new() }
    );
    if !ok {
        println!("DLTEST FAIL throughput: writer did not finish");
    }
    unmount(m);
    mbps
}

/// Fast + stalled mounts with MAP_SHARED writers.
fn stall_scenario(ours: bool, r: &mut Report) {
    let tag = if ours { "ours" } else { "stock" };
    let fast = mount("/mnt/fast", false);
    let slow = mount("/mnt/slow", false);
    let wf = writer("/mnt/fast/f", 16 << 20);
    let ws = writer("/mnt/slow/f", 16 << 20);
    thread::sleep(Duration::from_secs(3));
    // Stall the slow server's WRITE replies from now on.
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(slow.child.id() as i32, libc::SIGUSR1) };
    let b = budget();
    let t0 = Instant::now();
    let mut worst_slow_over = 0i64; // max(usage - max(thresh so far, previous usage))
    let mut worst_total_over = 0i64;
    let mut max_slow_thresh = 0u64;
    let mut prev_slow_usage = 0u64;
    let mut prev_slow_thresh = 0u64;
    let mut first_fast = None;
    let mut last_fast = Sample::default();
    let mut fast_pages_mid = 0;
    let mut max_pinned = 0u64;
    let mut i = 0;
    while t0.elapsed() < Duration::from_secs(9) {
        let s = sample(slow.conn);
        let f = sample(fast.conn);
        let (tot_files, n) = fuse_total();
        let tot = if ours { budget_used() } else { tot_files };
        max_pinned = max_pinned.max(pinned_meminfo_pages());
        if ours {
            max_slow_thresh = max_slow_thresh.max(s.thresh);
            // Pages already pinned cannot be given back while the server is stalled, so the bound is:
            // never above the largest threshold granted, and no growth while above the current one.
            // Between two samples the usage may have grown while the previous threshold held.
            let cap = if s.usage() > s.thresh.max(prev_slow_thresh) + SLACK_CONN {
                prev_slow_usage
            } else {
                max_slow_thresh
            };
            worst_slow_over = worst_slow_over.max(s.usage() as i64 - (cap + SLACK_CONN) as i64);
            prev_slow_usage = prev_slow_usage.max(s.usage());
            prev_slow_thresh = s.thresh;
            let b_now = budget();
            worst_total_over = worst_total_over.max(tot as i64 - (b_now + SLACK_CONN * n) as i64);
            if first_fast.is_none() {
                first_fast = Some(f);
            }
            last_fast = f;
        }
        if i % 10 == 0 {
            println!(
                "  {tag} t={:.1}s slow: thr {} dirty {} wb {} | fast: thr {} dirty {} wb {} | fuse total {} (files {}) B {} | fast pages {}",
                t0.elapsed().as_secs_f64(),
                s.thresh, s.dirty, s.wb, f.thresh, f.dirty, f.wb, tot, tot_files, b,
                wf.pages()
            );
        }
        if i == 45 {
            fast_pages_mid = wf.pages();
        }
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
    let fast_pages_end = wf.pages();
    let s_before = sample(slow.conn);
    println!(
        "DLTEST NUM {tag} stalled_pinned_pages {} (max dirty+writeback of all FUSE per /proc/meminfo: {max_pinned})",
        s_before.usage()
    );
    if ours {
        r.check(
            "stalled-within-thresh",
            worst_slow_over <= 0,
            &format!("stalled conn usage exceeded its bound by at most {worst_slow_over} pages beyond slack {SLACK_CONN} (max thresh {max_slow_thresh})"),
        );
        r.check(
            "fuse-sum-within-budget",
            worst_total_over <= 0,
            &format!("sum over FUSE exceeded B={b} + slack by at most {worst_total_over} pages"),
        );
        let ff = first_fast.unwrap_or_default();
        r.check(
            "fast-thresh-grows",
            last_fast.thresh > ff.thresh,
            &format!(
                "fast dirty_thresh {} -> {} while the stalled one decayed to {}",
                ff.thresh, last_fast.thresh, s_before.thresh
            ),
        );
        r.check(
            "fast-keeps-writing",
            fast_pages_end > fast_pages_mid,
            &format!(
                "fast writer dirtied {} pages in the second half of the stall",
                fast_pages_end - fast_pages_mid
            ),
        );
    }
    // Abort the stalled connection: its pinned pages must be released.
    ws.shared.stop.store(true, Ordering::Relaxed);
    abort(slow.conn);
    let (ok_s, st_s) = stop_writer(ws, 20);
    let t1 = Instant::now();
    let mut after = sample(slow.conn);
    while t1.elapsed() < Duration::from_secs(5) && after.wb > 0 {
        thread::sleep(Duration::from_millis(100));
        after = sample(slow.conn);
    }
    let (ok_f, _) = stop_writer(wf, 60);
    if ours {
        r.check(
            "abort-releases",
            ok_s && after.wb == 0,
            &format!(
                "after abort: stalled writer exited={ok_s} (status {st_s:#x}), writeback_pages {} -> {} in {:.1}s",
                s_before.wb,
                after.wb,
                t1.elapsed().as_secs_f64()
            ),
        );
        r.check(
            "fast-writer-exits",
            ok_f,
            "fast writer stopped and unmapped",
        );
    } else {
        println!(
            "  stock: after abort writer exited={ok_s} fast exited={ok_f} WritebackTmp {} kB",
            meminfo_kb("WritebackTmp")
        );
    }
    unmount(fast);
    unmount(slow);
}

/// Many mounts whose servers never answer WRITE, one MAP_SHARED writer each.
fn many_mounts(ours: bool, n: usize, r: &mut Report) {
    let tag = if ours { "ours" } else { "stock" };
    let mut ms = Vec::new();
    let mut ws = Vec::new();
    for i in 0..n {
        let d = format!("/mnt/m{i}");
        ms.push(mount(&d, true));
        ws.push(writer(&format!("{d}/f"), 8 << 20));
    }
    thread::sleep(Duration::from_secs(5));
    let (tot_files, live) = fuse_total();
    let tot = if ours { budget_used() } else { tot_files };
    let pinned = pinned_meminfo_pages();
    let b = budget();
    if ours {
        println!("DLTEST NUM {tag} pinned_pages_{n}_stalled_mounts {tot} (module sum; fusectl files {tot_files}; meminfo Dirty+WritebackTmp {pinned}; B {b})");
        r.check(
            "many-mounts-within-budget",
            tot <= b + SLACK_CONN * live,
            &format!(
                "{n} stalled mounts pin {tot} pages, B {b}, slack {}",
                SLACK_CONN * live
            ),
        );
    } else {
        println!("DLTEST NUM {tag} pinned_pages_{n}_stalled_mounts {pinned} (meminfo Dirty+WritebackTmp)");
    }
    for w in &ws {
        w.shared.stop.store(true, Ordering::Relaxed);
    }
    for m in &ms {
        abort(m.conn);
    }
    let mut all = true;
    for w in ws {
        all &= stop_writer(w, 20).0;
    }
    if ours {
        r.check("many-mounts-abort", all, "every writer exited after abort");
    }
    println!("  writers stopped: all={all}");
    for m in ms {
        unmount(m);
    }
}

fn fsx_run(ours: bool, ops: u64, r: &mut Report) {
    let tag = if ours { "ours" } else { "stock" };
    // B small: the budget is computed from a 4 MiB dirty threshold (1024 pages), 5% of it.
    let p = "/sys/module/fuse/parameters/";
    let old = read_u64(&format!("{p}dirty_budget_ratio"));
    if ours {
        let _ = write_str(&format!("{p}vm_dirty_bytes"), &(4u64 << 20).to_string());
        let _ = write_str(&format!("{p}dirty_budget_ratio"), "5");
    }
    let w0 = throttle_waits();
    let m = mount("/mnt/fsx", false);
    // Two fsx processes on two files of the same mount (both vCPUs, one shared budget), each
    // with half of the operations.
    let exe = std::env::current_exe().expect("current_exe");
    let kids: Vec<_> = (0..2u64)
        .map(|k| {
            Command::new(&exe)
                .arg("fsx")
                .arg(format!("/mnt/fsx/file{k}"))
                .arg((ops / 2 + ops % 2 * (1 - k)).to_string())
                .arg((12345 + 1000 * k).to_string())
                .arg((1u64 << 20).to_string())
                .arg((16u64 << 10).to_string())
                .spawn()
                .expect("spawn fsx")
        })
        .collect();
    let mut rc = 0;
    for mut k in kids {
        rc |= k.wait().map(|s| s.code().unwrap_or(1)).unwrap_or(1);
    }
    let w1 = throttle_waits();
    let b = budget();
    unmount(m);
    if let (true, Some(o)) = (ours, old) {
        let _ = write_str(&format!("{p}dirty_budget_ratio"), &o.to_string());
        let _ = write_str(&format!("{p}vm_dirty_bytes"), "0");
    }
    if ours {
        r.check(
            "fsx-integrity",
            rc == 0 && w1 > w0,
            &format!(
                "{ops} ops, exit {rc}, B {b} pages, throttle waits during run {}",
                w1 - w0
            ),
        );
    } else {
        r.check(
            &format!("fsx-integrity-{tag}"),
            rc == 0,
            &format!("{ops} ops on stock fuse.ko, exit {rc}"),
        );
    }
}

/// `fsxbench OPS`: fsx timing with the default and with a small budget (tuning aid).
pub fn fsxbench(args: &[String]) -> i32 {
    let ops: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let p = "/sys/module/fuse/parameters/";
    for (bytes, ratio) in [(0u64, 10u32), (4 << 20, 5)] {
        let _ = write_str(&format!("{p}vm_dirty_bytes"), &bytes.to_string());
        let _ = write_str(&format!("{p}dirty_budget_ratio"), &ratio.to_string());
        let w0 = throttle_waits();
        let m = mount("/mnt/fsxb", false);
        let t = Instant::now();
        let rc = crate::fsx::main(&[
            "/mnt/fsxb/file".into(),
            ops.to_string(),
            "777".into(),
            (1u64 << 20).to_string(),
            (16u64 << 10).to_string(),
        ]);
        println!(
            "fsxbench: B {} pages: {ops} ops in {:.1}s, rc {rc}, waits {}",
            budget(),
            t.elapsed().as_secs_f64(),
            throttle_waits() - w0
        );
        unmount(m);
    }
    let _ = write_str(&format!("{p}vm_dirty_bytes"), "0");
    let _ = write_str(&format!("{p}dirty_budget_ratio"), "10");
    0
}

/// `scenario ours|stock [FSX_OPS]`
pub fn main(args: &[String]) -> i32 {
    let ours = args.first().map(|s| s == "ours").unwrap_or(false);
    let ops: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut r = Report { failed: false };
    let _ = std::fs::create_dir_all("/mnt");
    let t0 = Instant::now();
    let stage = |name: &str| println!("  [{:.1}s] {name}", t0.elapsed().as_secs_f64());
    throughput(ours, 4);
    stage("throughput done");
    if ours {
        // (on the stock module only the README numbers are measured)
        stall_scenario(ours, &mut r);
        stage("stall scenario done");
    }
    many_mounts(ours, 12, &mut r);
    stage("many mounts done");
    if ours {
        fsx_run(ours, ops, &mut r);
        stage("fsx done");
    }
    i32::from(r.failed)
}
