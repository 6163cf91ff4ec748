//! Guest scenarios on Linux 7.3 with FUSE built in. Each prints `DLTEST PASS|FAIL name: ...`
//! for its checks and `DLTEST NUM mode key value (...)` for its measurements.
//!
//! The same kernel runs them twice: booted with `fuse.dirty_limit=0` (mode `stock`: FUSE exactly
//! as upstream 7.3) only measurements are taken; booted with the option on (mode `ours`) the
//! checks run. Page counts of "everything FUSE holds" come from /proc/vmstat (`nr_dirty` +
//! `nr_writeback` against a baseline taken with nothing else writing), not from the glue.

use crate::util::*;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
/// Per-WRITE latency of the victim's "network-like" server (ms).
const VICTIM_LATENCY_MS: u64 = 250;
/// The victim's server window: `max_background` WRITEs of `server::MAX_WRITE` (128 KiB). With
/// `VICTIM_LATENCY_MS` it bounds the victim at 12 (the congestion threshold the server sets, 3/4
/// of it) to 16 WRITEs per 250 ms, 6-8 MiB/s, below what the guest's emulated CPU sustains even
/// when the shared host runs slow (10-18 MiB/s seen), so that the server, not the host's speed of
/// the moment, sets the victim's rate whenever its limit leaves room for the window (2 MiB under
/// writeback, a limit of some 6 MiB).
const VICTIM_WINDOW: u16 = 16;
/// The glue's default cap of one connection, percent of B.
const MAX_RATIO: u64 = 40;
/// Pages a task may dirty between two balance_dirty_pages() checks near its limit.
const TASK_OVERSHOOT: u64 = 8;

/// `dltest.slow=N` on the kernel command line: the debug kernel (lockdep + KASAN) runs about
/// N times slower under TCG. Time limits are then N times longer, and throughput ratios are
/// reported, not checked.
fn slow() -> u32 {
    fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .find_map(|w| w.strip_prefix("dltest.slow=")?.parse().ok())
        })
        .unwrap_or(1)
        .max(1)
}

/// One second, or `slow()` seconds on the debug kernel.
fn one_sec() -> Duration {
    Duration::from_secs(slow() as u64)
}

pub struct Report {
    pub failed: u32,
    pub passed: u32,
}

impl Report {
    pub fn check(&mut self, name: &str, ok: bool, detail: &str) {
        println!(
            "DLTEST {} {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

fn num(mode: &str, key: &str, val: impl std::fmt::Display, detail: &str) {
    println!("DLTEST NUM {mode} {key} {val} ({detail})");
}

// ------------------------------------------------------------------ system counters

fn vmstat(field: &str) -> u64 {
    let s = fs::read_to_string("/proc/vmstat").unwrap_or_default();
    s.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(field)).then(|| it.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// nr_dirty + nr_writeback, pages.
fn pinned() -> u64 {
    vmstat("nr_dirty") + vmstat("nr_writeback")
}

/// The global dirty threshold T, pages.
fn dirty_thresh() -> u64 {
    vmstat("nr_dirty_threshold")
}

fn param(name: &str) -> Option<u64> {
    read_u64(&format!("/sys/module/fuse/parameters/{name}"))
}

fn budget() -> u64 {
    param("dirty_limit_budget_pages").unwrap_or(0)
}

/// wb_stat_error(): what balance_dirty_pages() lets any bdi hold (WB_STAT_BATCH per CPU).
fn wb_stat_error() -> u64 {
    let cpus = fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| s.trim().rsplit('-').next()?.parse::<u64>().ok())
        .map_or(1, |n| n + 1);
    let ilog2 = 63 - cpus.leading_zeros() as u64;
    cpus * 8 * (1 + ilog2)
}

fn sync_all() {
    // SAFETY: plain syscall.
    unsafe { libc::sync() };
}

/// Registers a pid the D-state monitor must not count (writers of a deliberately stalled mount).
fn exempt(pid: i32) {
    use std::io::Write;
    if let Ok(mut f) = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open("/tmp/dl_exempt")
    {
        let _ = writeln!(f, "{pid}");
    }
}

// ------------------------------------------------------------------ mounts

pub struct Mount {
    pub dir: String,
    pub child: Child,
    pub conn: u64,
}

fn is_mounted(dir: &str) -> bool {
    fs::read_to_string("/proc/mounts")
        .map(|s| s.lines().any(|l| l.split_whitespace().nth(1) == Some(dir)))
        .unwrap_or(false)
}

/// Mounts an in-memory server at `dir` with writeback cache and the given server options.
pub fn mount(dir: &str, opts: &[&str]) -> Mount {
    let _ = fs::create_dir_all(dir);
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .arg("serve")
        .arg(dir)
        .arg("--wbcache")
        .args(opts)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn server");
    let t0 = Instant::now();
    while !is_mounted(dir) && t0.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(10));
    }
    // the first access waits for INIT
    let _ = fs::metadata(format!("{dir}/."));
    let conn = conn_id(dir).unwrap_or(0);
    Mount {
        dir: dir.to_string(),
        child,
        conn,
    }
}

pub fn unmount(mut m: Mount) {
    let c = std::ffi::CString::new(m.dir.clone()).expect("no NUL");
    // SAFETY: plain syscall with a valid path.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let _ = m.child.kill();
    let _ = m.child.wait();
}

fn abort(conn: u64) {
    let _ = write_str(&ctl_path(conn, "abort"), "1");
}

fn stall(m: &Mount) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(m.child.id() as i32, libc::SIGUSR1) };
}

fn ctl(conn: u64, file: &str) -> u64 {
    read_u64(&ctl_path(conn, file)).unwrap_or(0)
}

/// The bdi of a FUSE mount in /sys/class/bdi (anonymous device, major 0).
fn bdi_dir(m: &Mount) -> String {
    format!("/sys/class/bdi/0:{}", m.conn)
}

// ------------------------------------------------------------------ writers

/// Counters shared with a forked writer process.
#[repr(C)]
struct Shared {
    pages: AtomicU64,
    stop: AtomicBool,
    /// stop writing but keep the file open and mapped
    pause: AtomicBool,
}

pub struct Writer {
    pid: i32,
    shared: &'static Shared,
}

impl Writer {
    fn pages(&self) -> u64 {
        self.shared.pages.load(Ordering::Relaxed)
    }
}

fn shared_page() -> &'static Shared {
    // SAFETY: a fresh anonymous shared mapping, zero-filled (a valid `Shared`), never unmapped.
    unsafe {
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
    }
}

#[derive(Clone, Copy, PartialEq)]
enum How {
    /// MAP_SHARED stores, one page at a time
    Mmap,
    /// write(2) of 64 KiB at a time
    Write,
}

/// A forked process that keeps dirtying a `size`-byte file until asked to stop (a process, not a
/// thread: a fault on an aborted connection raises SIGBUS, which must only kill the writer).
fn writer(path: &str, size: usize, how: How) -> Writer {
    let shared = shared_page();
    let path = std::ffi::CString::new(path).expect("no NUL");
    // SAFETY: the child uses only async-signal-safe calls and memory it owns, and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain syscalls on memory and fds owned by this child; it never returns.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o666);
            if fd < 0 {
                libc::_exit(3);
            }
            libc::ftruncate(fd, size as libc::off_t);
            let mut round = 0u8;
            if how == How::Mmap {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                if p == libc::MAP_FAILED {
                    libc::_exit(4);
                }
                let p = p as *mut u8;
                'outer: loop {
                    round = round.wrapping_add(1);
                    for pg in 0..size / PAGE {
                        if shared.stop.load(Ordering::Relaxed) {
                            break 'outer;
                        }
                        while shared.pause.load(Ordering::Relaxed)
                            && !shared.stop.load(Ordering::Relaxed)
                        {
                            libc::usleep(10_000);
                        }
                        std::ptr::write_bytes(p.add(pg * PAGE), round, PAGE);
                        shared.pages.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else {
                let buf = [0x5au8; 65536];
                'outer2: loop {
                    for off in (0..size).step_by(buf.len()) {
                        if shared.stop.load(Ordering::Relaxed) {
                            break 'outer2;
                        }
                        let r = libc::pwrite(
                            fd,
                            buf.as_ptr() as *const libc::c_void,
                            buf.len(),
                            off as i64,
                        );
                        if r <= 0 {
                            libc::_exit(5);
                        }
                        shared
                            .pages
                            .fetch_add(r as u64 / PAGE as u64, Ordering::Relaxed);
                    }
                }
            }
            libc::_exit(0);
        }
    }
    Writer { pid, shared }
}

fn reap(pid: i32, within: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        // -1: not (or no longer) our child, i.e. already reaped
        if r == pid || r == -1 {
            return true;
        }
        if t0.elapsed() > within {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Stops a writer (asks, then SIGKILL after `secs`) and reaps it. True if it left in time.
fn stop_writer(w: Writer, secs: u64) -> bool {
    w.shared.stop.store(true, Ordering::Relaxed);
    if reap(w.pid, Duration::from_secs(secs)) {
        return true;
    }
    kill_writer(&w);
    reap(w.pid, Duration::from_secs(3600));
    false
}

fn kill_writer(w: &Writer) {
    // SAFETY: killing our own child.
    unsafe { libc::kill(w.pid, libc::SIGKILL) };
}

/// Pages per second a writer dirties over `secs`.
/// (WRITE bytes, WRITE requests) the server of `m` received so far.
fn server_stats(m: &Mount) -> (u64, u64) {
    let s =
        fs::read_to_string(format!("{}/{}", m.dir, crate::server::STATS_NAME)).unwrap_or_default();
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn server_bytes(m: &Mount) -> u64 {
    server_stats(m).0
}

/// Pages per second that reach the server of `m` over `secs` (what was written back, not what
/// was dirtied in the page cache: rewriting pages already dirty costs nothing).
fn rate(m: &Mount, secs: f64) -> f64 {
    let b0 = server_bytes(m);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(secs));
    (server_bytes(m) - b0) as f64 / PAGE as f64 / t0.elapsed().as_secs_f64()
}

fn mib_s(pages_per_s: f64) -> f64 {
    pages_per_s * PAGE as f64 / (1 << 20) as f64
}

// ------------------------------------------------------------------ scenarios

/// A file larger than any dirty window, streamed through by the throughput writers.
const STREAM: usize = 2 << 30;

/// The victim's throughput: a fresh latency mount, an mmap writer streaming through a file the
/// server discards, the rate reaching the server over 6 s after 2 s.
fn victim_rate(dir: &str) -> (f64, Mount, Writer) {
    let m = mount(
        dir,
        &[
            "--discard",
            "--latency-ms",
            &VICTIM_LATENCY_MS.to_string(),
            "--max-background",
            &VICTIM_WINDOW.to_string(),
        ],
    );
    let w = writer(&format!("{dir}/f"), STREAM, How::Mmap);
    thread::sleep(Duration::from_secs(2));
    (rate(&m, 6.0), m, w)
}

/// X earns its largest share, then stalls while its writer keeps dirtying; Y starts after.
pub fn earn_then_stall(mode: &str, r: &mut Report) {
    let ours = mode == "ours";
    sync_all();
    let (solo, m, w) = victim_rate("/mnt/ysolo");
    stop_writer(w, 30);
    unmount(m);
    sync_all();
    thread::sleep(Duration::from_millis(500));
    let base = pinned();
    let x = mount("/mnt/x", &[]);
    let wx = writer("/mnt/x/f", 64 << 20, How::Mmap);
    exempt(wx.pid);
    // earn: until X's limit stops growing (ours) or 6 s
    let t0 = Instant::now();
    let (mut best, mut since, mut b_earn) = (0, Instant::now(), 0);
    while t0.elapsed() < Duration::from_secs(12) {
        thread::sleep(Duration::from_millis(200));
        if !ours {
            if t0.elapsed() > Duration::from_secs(6) {
                break;
            }
            continue;
        }
        let l = ctl(x.conn, "limit_pages");
        b_earn = b_earn.max(budget());
        if l > best + best / 50 {
            best = l;
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(1500)
            && t0.elapsed() > Duration::from_secs(3)
        {
            break;
        }
    }
    let x_limit = if ours { ctl(x.conn, "limit_pages") } else { 0 };
    // B in pages moves with T; X's page limit was set at the B of its time
    let b_max = budget().max(b_earn);
    stall(&x);
    thread::sleep(Duration::from_secs(3));
    let b = budget();
    let x_pinned = pinned().saturating_sub(base);
    let x_usage_before = if ours { ctl(x.conn, "usage_pages") } else { 0 };
    let (after, y, wy) = victim_rate("/mnt/y");
    let x_usage = if ours {
        ctl(x.conn, "usage_pages").max(x_usage_before)
    } else {
        0
    };
    let t = dirty_thresh();
    let ratio = after / solo.max(1e-9);
    num(
        mode,
        "victim_solo_MiBps",
        format!("{:.2}", mib_s(solo)),
        &format!("Y alone, {VICTIM_LATENCY_MS} ms per WRITE, window {VICTIM_WINDOW} WRITEs"),
    );
    num(
        mode,
        "victim_after_stall_MiBps",
        format!("{:.2}", mib_s(after)),
        &format!("{:.0}% of solo", ratio * 100.0),
    );
    num(
        mode,
        "stalled_pinned_pages",
        x_pinned.max(x_usage),
        &format!(
            "vmstat delta; T {t}, 1% of T {}{}",
            t / 100,
            if ours {
                format!(", B {b}, X limit before stall {x_limit}, X usage_pages {x_usage}")
            } else {
                String::new()
            }
        ),
    );
    // SIGKILL of X's writer, throttled or waiting on a stalled page
    kill_writer(&wx);
    let killed = reap(wx.pid, one_sec());
    if ours {
        let bound = b_max * MAX_RATIO / 100 + wb_stat_error() + TASK_OVERSHOOT;
        ratio_check(
            r,
            "earn-then-stall-victim",
            ratio,
            &format!(
                "Y after X stalled: {:.2} MiB/s = {:.0}% of solo {:.2} MiB/s",
                mib_s(after),
                ratio * 100.0,
                mib_s(solo)
            ),
        );
        r.check(
            "earn-then-stall-bound",
            x_pinned.max(x_usage) <= bound,
            &format!(
                "X pins {} pages (vmstat), bound max B * {MAX_RATIO}% + slack = {bound}",
                x_pinned.max(x_usage)
            ),
        );
        r.check(
            "earn-then-stall-sigkill",
            killed,
            &format!("SIGKILL ends X's writer within {} s", slow()),
        );
    } else {
        num(mode, "stalled_writer_sigkill_exits_within_1s", killed, "");
    }
    abort(x.conn);
    if !killed {
        reap(wx.pid, Duration::from_secs(3600));
    }
    stop_writer(wy, 30);
    unmount(y);
    unmount(x);
}

/// Writes `bytes` to a new file at `path` (mmap stores or 64 KiB write(2) calls) and syncs it:
/// MiB/s from the first store to the return of the sync, what a `cp` followed by `sync` sees.
/// Timing the whole write including the sync measures the rate data leaves the page cache, the
/// same for every setup, instead of the first seconds of a cache filling up.
fn timed_write(path: &str, bytes: usize, how: How) -> f64 {
    let c = std::ffi::CString::new(path).expect("no NUL");
    let t0 = Instant::now();
    // SAFETY: plain syscalls on an fd and a mapping this function owns; the mapping is only
    // touched inside its bounds and unmapped before the fd is closed.
    unsafe {
        let fd = libc::open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        );
        if fd < 0 {
            return 0.0;
        }
        let mut ok = true;
        if how == How::Mmap {
            ok &= libc::ftruncate(fd, bytes as libc::off_t) == 0;
            match Mapping::new_at(fd, bytes, 0) {
                Ok(m) => {
                    for pg in 0..bytes / PAGE {
                        std::ptr::write_bytes(m.ptr.add(pg * PAGE), 0x5a, PAGE);
                    }
                    ok &= m.msync(libc::MS_SYNC) == 0;
                }
                Err(_) => ok = false,
            }
        } else {
            let buf = [0x5au8; 65536];
            let mut off = 0;
            while ok && off < bytes {
                ok = libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) > 0;
                off += buf.len();
            }
        }
        ok &= libc::fsync(fd) == 0;
        libc::close(fd);
        if !ok {
            return 0.0;
        }
    }
    bytes as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64()
}

/// A write(2) disk writer on ext2 over virtio-blk (whose writes QEMU throttles: run.sh's
/// `DISK_BPS`; the guest's init keeps the disk's queue shallow): MiB/s of `timed_write()` of
/// 128 MiB (1/N of it on a kernel N times slower; syncfs of the disk only: sync(2) would wait
/// for stalled FUSE mounts, fsync does not).
fn disk_rate() -> f64 {
    if !is_mounted("/mnt/disk") {
        return 0.0;
    }
    let r = timed_write("/mnt/disk/f", (128 << 20) / slow() as usize, How::Write);
    let _ = fs::remove_file("/mnt/disk/f");
    if let Ok(f) = fs::File::open("/mnt/disk") {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an fd we own.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
    r
}

/// The mean of `n` runs of `disk_rate()`: one run takes a few seconds and moves by tens of
/// percent between runs under TCG.
fn disk_rates(n: usize) -> f64 {
    (0..n).map(|_| disk_rate()).sum::<f64>() / n as f64
}

/// A victim's throughput against its own reference: checked (>= 80%) on the plain kernel; on a
/// kernel slowed by `dltest.slow` (lockdep, KASAN) only reported, like the healthy comparison.
fn ratio_check(r: &mut Report, name: &str, ratio: f64, detail: &str) {
    if slow() > 1 {
        reported_only("ours", name, ratio, detail);
    } else {
        r.check(name, ratio >= 0.8, &format!("{detail} (>= 80%)"));
    }
}

/// A throughput ratio on a kernel slowed by `dltest.slow`: a number, not a check.
fn reported_only(mode: &str, name: &str, ratio: f64, detail: &str) {
    let detail = format!("{detail}; reported only, dltest.slow={}", slow());
    num(mode, name, format!("{ratio:.2}"), &detail);
}

/// 64 mounts stall one after another, a writer each; the sum FUSE holds stays within B + slack,
/// and a disk writer beside them keeps the throughput it has without them. Its reference brackets
/// the stalled windows in time: the mean of the runs before the stalls (the same mounts idle) and
/// after the mounts are gone, so that a drift of the guest's speed during the boot cancels
/// instead of deciding the ratio.
pub fn many_stalled(mode: &str, n: usize, r: &mut Report) {
    let ours = mode == "ours";
    // n idle mounts (healthy servers waiting for requests): the disk writer's reference is
    // measured with every server process present, so that only the stalls differ
    let ms: Vec<Mount> = (0..n)
        .map(|i| mount(&format!("/mnt/s{i}"), &["--discard"]))
        .collect();
    sync_all();
    thread::sleep(Duration::from_millis(500));
    let disk_solo = disk_rates(3);
    sync_all();
    thread::sleep(Duration::from_millis(500));
    let base = pinned();
    // one after another: a writer dirties for 300 ms against its healthy server, then the
    // server stops answering WRITE while the writer keeps dirtying
    let mut ws = Vec::new();
    let mut max_sum = 0u64;
    for m in &ms {
        let w = writer(&format!("{}/f", m.dir), 4 << 20, How::Mmap);
        exempt(w.pid);
        ws.push(w);
        thread::sleep(Duration::from_millis(300));
        stall(m);
        max_sum = max_sum.max(pinned().saturating_sub(base));
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        thread::sleep(Duration::from_millis(100));
        max_sum = max_sum.max(pinned().saturating_sub(base));
    }
    let b = budget();
    let t = dirty_thresh();
    let big = if ours {
        ms.iter()
            .filter(|m| ctl(m.conn, "limit_pages") >= 2 * wb_stat_error())
            .count() as u64
    } else {
        0
    };
    let slack = n as u64 * TASK_OVERSHOOT + big * wb_stat_error();
    num(
        mode,
        &format!("pinned_pages_{n}_stalled_mounts"),
        max_sum,
        &format!(
            "max vmstat delta; T {t}, 1% of T {}{}",
            t / 100,
            if ours {
                format!(", B {b}, slack {slack}")
            } else {
                String::new()
            }
        ),
    );
    let disk_beside = disk_rates(3);
    if ours {
        r.check(
            "many-stalled-within-budget",
            max_sum <= b + slack,
            &format!("{n} stalled mounts pin at most {max_sum} pages (vmstat), B {b} + slack {slack} ({n} x {TASK_OVERSHOOT} + {big} x {})", wb_stat_error()),
        );
    }
    // SIGKILL every writer: each must leave within 1 s (ours)
    for w in &ws {
        kill_writer(w);
    }
    let t1 = Instant::now();
    let mut alive = 0;
    for w in &ws {
        if !reap(
            w.pid,
            one_sec()
                .saturating_sub(t1.elapsed())
                .max(Duration::from_millis(50)),
        ) {
            alive += 1;
        }
    }
    if ours {
        r.check(
            "many-stalled-sigkill",
            alive == 0,
            &format!(
                "{alive} of {n} killed writers still alive after {} s",
                slow()
            ),
        );
    } else {
        num(mode, "killed_stalled_writers_alive_after_1s", alive, "");
    }
    for m in &ms {
        abort(m.conn);
    }
    for w in ws {
        reap(w.pid, Duration::from_secs(3600));
    }
    for m in ms {
        unmount(m);
    }
    // the reference's second half: as many runs after the mounts are gone
    let disk_after = disk_rates(3);
    let solo = (disk_solo + disk_after) / 2.0;
    let dratio = disk_beside / solo.max(1e-9);
    num(
        mode,
        "disk_writer_solo_MiBps",
        format!("{solo:.1}"),
        &format!("mean of {disk_solo:.1} before the stalls, {n} idle mounts present, and {disk_after:.1} after the mounts were gone"),
    );
    num(
        mode,
        "disk_writer_beside_stalled_MiBps",
        format!("{:.1}", disk_beside),
        &format!("{:.0}% of solo", dratio * 100.0),
    );
    if ours {
        ratio_check(
            r,
            "many-stalled-disk-writer",
            dratio,
            &format!(
                "disk writer {:.1} MiB/s beside {n} stalled mounts, {:.1} solo ({:.0}%)",
                disk_beside,
                solo,
                dratio * 100.0
            ),
        );
    }
}

/// New connections join the budget (`true`) or stay stock: `fuse.dirty_limit` at run time.
fn set_dirty_limit(on: bool) -> bool {
    write_str(
        "/sys/module/fuse/parameters/dirty_limit",
        if on { "1" } else { "0" },
    )
    .is_ok()
}

/// The three ways a healthy mount can be set up, measured side by side in one boot.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// A connection of the budget (`fuse.dirty_limit=1` when it is mounted).
    Ours,
    /// Stock 7.3: strictlimit and max_ratio 1%.
    Stock,
    /// Stock with strictlimit off and max_ratio 100 (what lifting FUSE's limit would give).
    Unrestricted,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Ours => "ours",
            Setup::Stock => "stock",
            Setup::Unrestricted => "unrestricted",
        }
    }
}

/// Rounds of the healthy-throughput comparison: each measures ours and unrestricted back to
/// back, in an order that alternates per round, so that a slow phase of the (shared, TCG)
/// machine hits both alike; stock, far below and steady, is measured in the first round only.
/// One round on a kernel N times slower (its numbers are reported, not checked).
fn healthy_rounds() -> usize {
    if slow() > 1 {
        1
    } else {
        6
    }
}

/// Per-WRITE latency of the healthy mount's server: long enough that its window, not the guest's
/// (emulated) CPU, bounds the throughput of a mount the dirty limit does not hold back.
const HEALTHY_LATENCY_MS: u64 = 400;
/// The healthy server's window, `max_background` WRITEs of `server::MAX_WRITE` (128 KiB) in
/// flight: throughput is then at most window / 400 ms whatever the limit, and a limit keeps
/// below it when its writeback share is smaller than the window. That share is about a third of
/// the limit (a strictlimit bdi keeps half its limit dirty for background writeback, and the
/// writer is held around three quarters of it): about 10 MiB for one connection at its cap in the
/// 1 GiB guest (40% of B = 16% of T). Measured, ours against unrestricted: write(2) 91-93% with
/// 12 MiB and 96-98% with 8 MiB; mmap 96-102% with 12 MiB and 90-91% with 8 MiB (the faulting
/// writer does not fill the smaller window). Each writer runs against the window it fills.
fn healthy_window(how: How) -> u16 {
    match how {
        How::Mmap => 96,
        How::Write => 64,
    }
}

/// Bytes each healthy-throughput run writes (and syncs): 1.3 times T (T is about 195 MiB in
/// the 1 GiB guest), so that each run is mostly steady state rather than the first T or so that a
/// large limit lets the page cache absorb. Stock, at a small fraction of the rate and steady,
/// writes a sixteenth of it.
const HEALTHY_BYTES: usize = 256 << 20;

/// One latency mount set up as `setup`: MiB/s of `timed_write()` of `healthy_bytes(setup)`.
fn healthy_rate(setup: Setup, how: How) -> f64 {
    let window = healthy_window(how).to_string();
    set_dirty_limit(setup == Setup::Ours);
    let m = mount(
        "/mnt/h",
        &[
            "--discard",
            "--latency-ms",
            &HEALTHY_LATENCY_MS.to_string(),
            "--max-background",
            &window,
        ],
    );
    if setup == Setup::Unrestricted {
        let d = bdi_dir(&m);
        let _ = write_str(&format!("{d}/strict_limit"), "0");
        let _ = write_str(&format!("{d}/max_ratio"), "100");
    }
    let r = timed_write("/mnt/h/f", healthy_bytes(setup), how);
    unmount(m);
    r
}

/// What one healthy run of `setup` writes.
fn healthy_bytes(setup: Setup) -> usize {
    let all = HEALTHY_BYTES / slow() as usize;
    if setup == Setup::Stock {
        all / 16
    } else {
        all
    }
}

/// Healthy throughput of one latency mount, mmap and write(2): ours vs stock vs unrestricted in
/// the same boot (`fuse.dirty_limit` switched between mounts). Ours must be within 10% of
/// unrestricted, and stock must be more than 10% below it (else the comparison shows nothing).
pub fn healthy(mode: &str, r: &mut Report) {
    let setups = [Setup::Ours, Setup::Unrestricted, Setup::Stock];
    let was = fs::read_to_string("/sys/module/fuse/parameters/dirty_limit")
        .is_ok_and(|s| s.trim() == "Y");
    for how in [How::Mmap, How::Write] {
        let what = if how == How::Mmap { "mmap" } else { "write" };
        let mut runs: [Vec<f64>; 3] = Default::default();
        for round in 0..healthy_rounds() {
            let order: &[usize] = match (round, round % 2) {
                (0, _) => &[0, 1, 2],
                (_, 0) => &[0, 1],
                _ => &[1, 0],
            };
            for &k in order {
                runs[k].push(healthy_rate(setups[k], how));
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let t = dirty_thresh();
        for (k, setup) in setups.iter().enumerate() {
            let each: Vec<String> = runs[k].iter().map(|x| format!("{x:.1}")).collect();
            num(
                setup.name(),
                &format!("healthy_{what}_MiBps"),
                format!("{:.2}", mean(&runs[k])),
                &format!(
                    "one mount, {HEALTHY_LATENCY_MS} ms per WRITE, window {} WRITEs, {} MiB written and synced, T {t}, mean of {} runs: {}",
                    healthy_window(how),
                    healthy_bytes(*setup) >> 20,
                    runs[k].len(),
                    each.join(" ")
                ),
            );
        }
        let (o, u, st) = (mean(&runs[0]), mean(&runs[1]), mean(&runs[2]));
        // Ours within 10% of unrestricted: both bounded by the server's window, stock by its 1%.
        let bar = 0.9;
        let ratio = o / u.max(1e-9);
        let detail = format!(
            "ours {o:.1} MiB/s vs unrestricted {u:.1} ({:.0}%), stock {st:.1} ({:.0}%)",
            100.0 * ratio,
            100.0 * st / u.max(1e-9)
        );
        let name = format!("healthy-throughput-{what}");
        if slow() > 1 {
            reported_only(mode, &name, ratio, &detail);
        } else {
            r.check(
                &name,
                o >= bar * u && st < 0.9 * u,
                &format!(
                    "{detail}: ours >= {:.0}%, stock < 90% (the comparison can tell)",
                    100.0 * bar
                ),
            );
        }
    }
    set_dirty_limit(was);
}

/// Floors and caps: root only, -EINVAL leaves them unchanged.
pub fn unprivileged(r: &mut Report) {
    let dir = "/mnt/u";
    let _ = fs::create_dir_all(dir);
    let dev = std::ffi::CString::new("/dev/fuse").expect("no NUL");
    // SAFETY: plain syscall.
    let fd = unsafe { libc::open(dev.as_ptr(), libc::O_RDWR) };
    let opts = format!("fd={fd},rootmode=40000,user_id=1000,group_id=1000");
    let rc = raw_mount(dir, &opts);
    let conn = conn_id(dir).unwrap_or(0);
    let maxp = ctl_path(conn, "max_ratio");
    let minp = ctl_path(conn, "min_ratio");
    let before = read_u64(&maxp);
    // as the mount owner: uid/gid 1000, no supplementary groups, no capabilities
    let as_owner = |path: &str, val: &str| -> String {
        let exe = std::env::current_exe().expect("current_exe");
        let out = Command::new(exe)
            .args(["asuser", "1000", path, val])
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let owner_max = as_owner(&maxp, "90");
    let owner_min = as_owner(&minp, "50");
    let after_owner = (read_u64(&maxp), read_u64(&minp));
    let eperm = owner_max == "EPERM" && owner_min == "EPERM";
    r.check(
        "unprivileged-owner-eperm",
        rc == 0 && eperm && after_owner == (before, Some(0)),
        &format!("mount {rc}; owner (uid 1000) writing max_ratio: '{owner_max}', min_ratio: '{owner_min}'; max_ratio {before:?} -> {:?}, min_ratio {:?}", after_owner.0, after_owner.1),
    );
    let root_ok = write_str(&maxp, "30").is_ok() && read_u64(&maxp) == Some(30);
    let root_min = write_str(&minp, "10").is_ok() && read_u64(&minp) == Some(10);
    r.check(
        "unprivileged-root-ok",
        root_ok && root_min,
        "root sets max_ratio 30 and min_ratio 10",
    );
    let e1 = write_str(&maxp, "101").err().and_then(|e| e.raw_os_error());
    let e2 = write_str(&minp, "40").err().and_then(|e| e.raw_os_error());
    let e3 = write_str(&maxp, "abc").err().and_then(|e| e.raw_os_error());
    let unchanged = read_u64(&maxp) == Some(30) && read_u64(&minp) == Some(10);
    r.check(
        "unprivileged-einval-unchanged",
        e1 == Some(libc::EINVAL) && e2 == Some(libc::EINVAL) && e3 == Some(libc::EINVAL) && unchanged,
        &format!("max_ratio=101: {e1:?}, min_ratio=40 above max 30: {e2:?}, max_ratio=abc: {e3:?}; values unchanged: {unchanged}"),
    );
    raw_umount(dir);
    // SAFETY: closing our fd ends the connection.
    unsafe { libc::close(fd) };
}

fn raw_mount(dir: &str, opts: &str) -> i32 {
    let src = std::ffi::CString::new("dltest").expect("no NUL");
    let tgt = std::ffi::CString::new(dir).expect("no NUL");
    let ty = std::ffi::CString::new("fuse").expect("no NUL");
    let o = std::ffi::CString::new(opts).expect("no NUL");
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            ty.as_ptr(),
            0,
            o.as_ptr() as *const libc::c_void,
        )
    };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

fn raw_umount(dir: &str) {
    let tgt = std::ffi::CString::new(dir).expect("no NUL");
    // SAFETY: valid path.
    unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH) };
}

fn fuse_conns() -> usize {
    fs::read_dir("/sys/fs/fuse/connections")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Mount failure after bdi init, umount -l with dirty pages, server killed with dirty pages,
/// abort through fusectl, SIGKILL of a throttled writer: all end, counters return to zero.
pub fn lifetime(r: &mut Report) {
    sync_all();
    thread::sleep(Duration::from_millis(300));
    let base = pinned();
    let conns0 = fuse_conns();
    // mounts racing on one /dev/fuse fd: the losers fail after their bdi was set up; rounds
    // until that happened a few times (it is a race: how often it is lost varies by kernel)
    let mut fails = 0;
    let mut oks = 0;
    let mut rounds = 0;
    const MAX_ROUNDS: usize = 400;
    const WANT_FAILS: usize = 8;
    const RACERS: usize = 4;
    while rounds < MAX_ROUNDS && fails < WANT_FAILS {
        let i = rounds;
        rounds += 1;
        let dev = std::ffi::CString::new("/dev/fuse").expect("no NUL");
        // SAFETY: plain syscall.
        let fd = unsafe { libc::open(dev.as_ptr(), libc::O_RDWR) };
        let opts = format!("fd={fd},rootmode=40000,user_id=0,group_id=0");
        let go = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|k| {
                let d = format!("/mnt/r{i}-{k}");
                let _ = fs::create_dir_all(&d);
                let (go, o) = (go.clone(), opts.clone());
                thread::spawn(move || {
                    go.wait();
                    (raw_mount(&d, &o), d)
                })
            })
            .collect();
        for t in racers {
            let (rc, d) = t.join().unwrap_or((-1, String::new()));
            if rc == 0 {
                oks += 1;
                raw_umount(&d);
            } else {
                fails += 1;
            }
        }
        // SAFETY: closing our fd.
        unsafe { libc::close(fd) };
    }
    // umount -l with dirty pages (slow server), then the writer and the server go
    let m = mount("/mnt/l1", &["--latency-ms", "300"]);
    let w = writer("/mnt/l1/f", 16 << 20, How::Mmap);
    thread::sleep(Duration::from_secs(2));
    raw_umount("/mnt/l1");
    thread::sleep(Duration::from_secs(1));
    let lazy_ok = stop_writer(w, 20);
    let mut c = m.child;
    let _ = c.kill();
    let _ = c.wait();
    // server killed with dirty pages
    let m = mount("/mnt/l2", &["--latency-ms", "300"]);
    let w = writer("/mnt/l2/f", 16 << 20, How::Mmap);
    thread::sleep(Duration::from_secs(2));
    let mut c = m.child;
    let _ = c.kill();
    let _ = c.wait();
    let killed_ok = stop_writer(w, 20);
    raw_umount("/mnt/l2");
    // abort through fusectl with a stalled server and a throttled writer, then SIGKILL it
    let m = mount("/mnt/l3", &["--stall-after-ms", "500"]);
    let w = writer("/mnt/l3/f", 16 << 20, How::Mmap);
    exempt(w.pid);
    thread::sleep(Duration::from_secs(3));
    kill_writer(&w);
    let sigkill_ok = reap(w.pid, one_sec());
    abort(m.conn);
    if !sigkill_ok {
        reap(w.pid, Duration::from_secs(3600));
    }
    unmount(m);
    // everything written back or dropped
    sync_all();
    let t0 = Instant::now();
    let mut left = pinned().saturating_sub(base);
    while left > wb_stat_error() && t0.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(200));
        left = pinned().saturating_sub(base);
    }
    let t1 = Instant::now();
    while fuse_conns() > conns0 && t1.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(100));
    }
    // A second mount of an installed fd shares its superblock; only a mount that loses the race
    // fails, after its bdi was set up (the failure path that must detach).
    r.check(
        "lifetime-racing-mounts",
        fails >= 1 && oks + fails == RACERS * rounds,
        &format!("{rounds} rounds of {RACERS} mounts racing on one fd (until {WANT_FAILS} lost, at most {MAX_ROUNDS}): {oks} mounted, {fails} failed after bdi setup, all unmounted"),
    );
    r.check(
        "lifetime-umount-lazy",
        lazy_ok,
        "umount -l with dirty pages: writer finished",
    );
    r.check(
        "lifetime-server-killed",
        killed_ok,
        "server killed with dirty pages: writer finished",
    );
    r.check(
        "lifetime-sigkill-throttled",
        sigkill_ok,
        &format!(
            "SIGKILL of a throttled writer on a stalled mount: gone within {} s",
            slow()
        ),
    );
    r.check(
        "lifetime-counters-zero",
        left <= wb_stat_error() && fuse_conns() == conns0,
        &format!("dirty+writeback back to baseline +{left} pages, fusectl connections {} (before {conns0})", fuse_conns()),
    );
}

/// A writer on mount B while mount A holds dirty pages and stays idle (kupdate off).
pub fn no_kupdate_stall(r: &mut Report) {
    let old = fs::read_to_string("/proc/sys/vm/dirty_writeback_centisecs").unwrap_or_default();
    let _ = write_str("/proc/sys/vm/dirty_writeback_centisecs", "0");
    let a = mount("/mnt/ka", &[]);
    // small enough to stay below A's background threshold: nothing writes it back
    let wa = writer("/mnt/ka/f", 256 << 10, How::Mmap);
    thread::sleep(Duration::from_secs(1));
    wa.shared.pause.store(true, Ordering::Relaxed);
    // A's writer stays alive with its dirty mapping (it only stops writing)
    thread::sleep(Duration::from_millis(300));
    let held = ctl(a.conn, "usage_pages");
    let b = mount("/mnt/kb", &[]);
    let wb = writer("/mnt/kb/f", 32 << 20, How::Mmap);
    // B must reach 256 pages within one (slowed) second; watch for three.
    let window = 3 * one_sec();
    let t0 = Instant::now();
    let mut first = None;
    while t0.elapsed() < window {
        if wb.pages() >= 256 && first.is_none() {
            first = Some(t0.elapsed());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let done = wb.pages();
    r.check(
        "no-kupdate-stall",
        first.is_some_and(|d| d <= one_sec()),
        &format!(
            "A holds {held} dirty pages idle, kupdate off: B dirtied 256 pages after {first:?}, {done} in {} s",
            window.as_secs()
        ),
    );
    stop_writer(wb, 30);
    stop_writer(wa, 30);
    unmount(b);
    unmount(a);
    let _ = write_str("/proc/sys/vm/dirty_writeback_centisecs", old.trim());
}

/// fsx: two processes on the same file (head region fixed, tail region truncated), with a small
/// B and a third writer on the mount so that the connection sits at its limit.
pub fn fsx_run(ops: u64, r: &mut Report) {
    let old = param("dirty_limit_ratio").unwrap_or(10);
    let _ = write_str("/sys/module/fuse/parameters/dirty_limit_ratio", "1");
    let m = mount("/mnt/fsx", &[]);
    let maxlen = 1u64 << 20;
    let file = "/mnt/fsx/file";
    if let Ok(fd) = open_rw(file, true) {
        ftruncate(fd, maxlen);
        close(fd);
    }
    let pressure = writer("/mnt/fsx/pressure", 8 << 20, How::Mmap);
    let exe = std::env::current_exe().expect("current_exe");
    let kids: Vec<_> = ["head", "tail"]
        .iter()
        .enumerate()
        .map(|(k, role)| {
            Command::new(&exe)
                .arg("fsx")
                .arg(file)
                .arg((ops / 2).to_string())
                .arg((12345 + 1000 * k).to_string())
                .arg(maxlen.to_string())
                .arg((16u64 << 10).to_string())
                .arg(role)
                .spawn()
                .expect("spawn fsx")
        })
        .collect();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (stop2, conn) = (stop.clone(), m.conn);
    let sampler = thread::spawn(move || {
        let mut at_limit = 0u64;
        let mut samples = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            let (u, l) = (ctl(conn, "usage_pages"), ctl(conn, "limit_pages"));
            samples += 1;
            if l > 0 && u * 10 >= l * 9 {
                at_limit += 1;
            }
            thread::sleep(Duration::from_millis(50));
        }
        (at_limit, samples)
    });
    let mut rc = 0;
    for mut k in kids {
        rc |= k.wait().map(|s| s.code().unwrap_or(1)).unwrap_or(1);
    }
    stop.store(true, Ordering::Relaxed);
    let (at_limit, samples) = sampler.join().unwrap_or((0, 0));
    let lim = ctl(m.conn, "limit_pages");
    stop_writer(pressure, 60);
    unmount(m);
    let _ = write_str(
        "/sys/module/fuse/parameters/dirty_limit_ratio",
        &old.to_string(),
    );
    r.check(
        "fsx-two-processes-same-file",
        rc == 0 && at_limit > 0,
        &format!("{ops} ops in two processes on one file, exit {rc}; connection at >= 90% of its limit ({lim} pages) in {at_limit} of {samples} samples"),
    );
}

/// `asuser UID FILE VALUE`: drop to uid/gid UID (no groups, so no capabilities) and write VALUE
/// to FILE; prints `ok` or the errno name.
pub fn asuser(args: &[String]) -> i32 {
    let (Some(uid), Some(path), Some(val)) = (
        args.first().and_then(|s| s.parse::<u32>().ok()),
        args.get(1),
        args.get(2),
    ) else {
        eprintln!("usage: asuser UID FILE VALUE");
        return 2;
    };
    // SAFETY: plain syscalls changing this process's credentials.
    let rc = unsafe {
        libc::setgroups(0, std::ptr::null())
            | libc::setresgid(uid, uid, uid)
            | libc::setresuid(uid, uid, uid)
    };
    if rc != 0 {
        println!("setuid failed");
        return 1;
    }
    match write_str(path, val) {
        Ok(()) => println!("ok"),
        Err(e) => match e.raw_os_error() {
            Some(libc::EPERM) => println!("EPERM"),
            Some(libc::EACCES) => println!("EACCES"),
            Some(libc::EINVAL) => println!("EINVAL"),
            _ => println!("{e}"),
        },
    }
    0
}

/// `scenario MODE TEST...` with MODE `stock` or `ours`; tests: earn, many, healthy, unrestricted,
/// unpriv, lifetime, kupdate, fsx:OPS.
pub fn main(args: &[String]) -> i32 {
    let mode = args
        .first()
        .map(String::as_str)
        .unwrap_or("ours")
        .to_string();
    let mut r = Report {
        failed: 0,
        passed: 0,
    };
    let _ = fs::create_dir_all("/mnt");
    let t0 = Instant::now();
    for t in &args[1..] {
        println!("  [{:.1}s] {mode}: {t}", t0.elapsed().as_secs_f64());
        match t.split(':').next().unwrap_or("") {
            "earn" => earn_then_stall(&mode, &mut r),
            "many" => many_stalled(&mode, 64, &mut r),
            "healthy" => healthy(&mode, &mut r),
            "unpriv" => unprivileged(&mut r),
            "lifetime" => lifetime(&mut r),
            "kupdate" => no_kupdate_stall(&mut r),
            "fsx" => fsx_run(
                t.split(':')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(20_000),
                &mut r,
            ),
            other => {
                r.check("scenario", false, &format!("unknown test {other}"));
            }
        }
    }
    println!("  [{:.1}s] {mode}: done", t0.elapsed().as_secs_f64());
    i32::from(r.failed > 0)
}
