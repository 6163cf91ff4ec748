//! Guest side of the global per-bdi threshold experiment (kernel-glue/wb-experiment.sh).
//!
//! Runs one scenario with buffered writers on ext4 mounts and samples, every 250 ms, each bdi's
//! debugfs stats (/sys/kernel/debug/bdi/MAJ:MIN/stats) and /proc/vmstat. Everything goes to
//! stdout as lines starting with `WBX`, parsed on the host by kernel-glue/wb-analyze.py:
//!
//! ```text
//! WBX S t_ms T_kB  A: thresh_kB writeback_kB reclaimable_kB written_kB  B: (same)  nr_dirty nr_writeback
//!       A_bytes B_bytes
//! WBX E t_ms event
//! WBX W writer phase bytes ms
//! ```
//!
//! `A_bytes`/`B_bytes`: what the writer on A and the second writer (on B or the FUSE mount) have
//! written so far, by their own count (cumulative over the boot): a writer's throughput over any
//! window of samples, independent of when it is told to stop. `W` lines: bytes written in a
//! phase and the phase's length, both read at the same instant.
//!
//! ```text
//! WBX fuse BDI max_ratio R strict_limit S
//! WBX sysctl VALUE ERRNO unchanged|changed
//! ```
//!
//! Usage:
//!   wbexp max-ratio-lowered MNT_A MNT_B BDI_A BDI_B PRE_S POST_S
//!       A written alone PRE_S s, then A.max_ratio = 10 and a writer on B starts; both run POST_S s.
//!   wbexp idle-min-ratio MNT_A BDI_A BDI_B SECS
//!       B.min_ratio = 30 and B idle, A written SECS s.
//!   wbexp fuse-beside-disk SERVER MNT_A MNT_F BDI_A PRE_S POST_S
//!       A FUSE mount of the in-memory server (`SERVER serve MNT_F --wbcache --discard`) at
//!       MNT_F with its stock bdi settings; A written alone PRE_S s, then a writer on the FUSE
//!       mount starts (event `switch`); both run POST_S s. The sample line's second bdi is the
//!       FUSE mount's (`WBX fuse BDI max_ratio R strict_limit S` names it).
//!   wbexp policy-switch MNT_A MNT_B BDI_A BDI_B PRE_S POST_S ROUNDS
//!       max-ratio-lowered ROUNDS times in one boot (booted with wb_dirty_policy=redistribute),
//!       the policy set before each round through vm.wb_dirty_redistribute in the order linux,
//!       redistribute, redistribute, linux, ...; each round starts with A.max_ratio = 100 and
//!       ends with both files written back. Events: `round-K-POLICY`, `switch-K`, `stop-K`;
//!       writer phases `pre-K` and `post-K`.
//!   wbexp slots ROUNDS NR
//!       ROUNDS times: add NR loop devices through /dev/loop-control, set a ratio on each, remove
//!       them (bdi registration and unregistration, slots taken, freed and running out).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The sampling interval.
const SAMPLE: Duration = Duration::from_millis(250);
/// Size of one write(2).
const CHUNK: usize = 1 << 20;
/// Each writer rewrites its file from the start after this many bytes, so the disk never fills;
/// far more than the dirty threshold, so a rewritten page was written back long before.
const WRAP: u64 = 384 << 20;

/// Cumulative bytes of the writer on A (`[0]`) and of the second writer (`[1]`), for the samples.
static WRITTEN: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

struct Writer {
    bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<()>,
}

/// Starts a writer on `path`; `which` is its column in the samples (0: A, 1: the second).
fn start_writer(path: String, which: usize) -> Writer {
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (b, s) = (bytes.clone(), stop.clone());
    let handle = thread::spawn(move || {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        let buf = vec![0x5au8; CHUNK];
        let mut off = 0u64;
        while !s.load(Ordering::Relaxed) {
            f.write_all_at(&buf, off)
                .unwrap_or_else(|e| panic!("write {path}: {e}"));
            off = (off + CHUNK as u64) % WRAP;
            b.fetch_add(CHUNK as u64, Ordering::Relaxed);
            WRITTEN[which].fetch_add(CHUNK as u64, Ordering::Relaxed);
        }
    });
    Writer {
        bytes,
        stop,
        handle,
    }
}

impl Writer {
    /// Bytes written so far.
    fn written(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The values of the named `key:   value` lines of a debugfs bdi stats file, in kB.
fn bdi_stats(bdi: &str) -> [u64; 5] {
    let text = fs::read_to_string(format!("/sys/kernel/debug/bdi/{bdi}/stats")).unwrap_or_default();
    let keys = [
        "BdiDirtyThresh:",
        "BdiWriteback:",
        "BdiReclaimable:",
        "BdiWritten:",
        "DirtyThresh:",
    ];
    let mut out = [0u64; 5];
    for line in text.lines() {
        for (i, k) in keys.iter().enumerate() {
            if let Some(rest) = line.strip_prefix(k) {
                out[i] = rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    out
}

fn vmstat() -> (u64, u64) {
    let text = fs::read_to_string("/proc/vmstat").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    };
    (get("nr_dirty "), get("nr_writeback "))
}

/// Samples both bdis every [`SAMPLE`] until stopped.
fn start_sampler(t0: Instant, a: String, b: String) -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = thread::spawn(move || {
        let mut next = Instant::now();
        while !s.load(Ordering::Relaxed) {
            let t = t0.elapsed().as_millis();
            let (sa, sb) = (bdi_stats(&a), bdi_stats(&b));
            let (dirty, wb) = vmstat();
            let (wa, wb2) = (
                WRITTEN[0].load(Ordering::Relaxed),
                WRITTEN[1].load(Ordering::Relaxed),
            );
            let line = format!(
                "WBX S {t} {} {} {} {} {} {} {} {} {} {dirty} {wb} {wa} {wb2}\n",
                sa[4], sa[0], sa[1], sa[2], sa[3], sb[0], sb[1], sb[2], sb[3]
            );
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
            next += SAMPLE;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    });
    (stop, h)
}

fn event(t0: Instant, what: &str) {
    println!("WBX E {} {what}", t0.elapsed().as_millis());
}

fn set_bdi(bdi: &str, knob: &str, value: u32) {
    let path = format!("/sys/class/bdi/{bdi}/{knob}");
    fs::write(&path, format!("{value}\n")).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

fn max_ratio_lowered(args: &[String]) {
    let [ma, mb, ba, bb, pre, post] = args else {
        panic!("max-ratio-lowered MNT_A MNT_B BDI_A BDI_B PRE_S POST_S");
    };
    let pre = Duration::from_secs(pre.parse().expect("PRE_S"));
    let post = Duration::from_secs(post.parse().expect("POST_S"));
    a_then_second(ma, ba, mb, bb, "B", pre, post, || {
        set_bdi(ba, "max_ratio", 10)
    });
}

/// Writer A alone for `pre` (sampling bdis `ba` and `bb`), then `at_switch`, then a second
/// writer on `mb` beside A for `post`; prints both writers' bytes (the second labelled `label`).
#[allow(clippy::too_many_arguments)]
fn a_then_second(
    ma: &str,
    ba: &str,
    mb: &str,
    bb: &str,
    label: &str,
    pre: Duration,
    post: Duration,
    at_switch: impl FnOnce(),
) {
    let t0 = Instant::now();
    let (sstop, sh) = start_sampler(t0, ba.to_string(), bb.to_string());
    event(t0, "a-start");
    let wa = start_writer(format!("{ma}/f"), 0);
    thread::sleep(pre);
    let (a_pre, t_switch) = (wa.written(), t0.elapsed());
    at_switch();
    event(t0, "switch");
    let wb = start_writer(format!("{mb}/f"), 1);
    thread::sleep(post);
    // Both counts and the time at one instant: the rates do not depend on how long the
    // writers take to stop.
    let (b_bytes, a_all, t_end) = (wb.written(), wa.written(), t0.elapsed());
    wb.finish();
    wa.finish();
    event(t0, "stop");
    sstop.store(true, Ordering::Relaxed);
    let _ = sh.join();
    println!("WBX W A pre {a_pre} {}", t_switch.as_millis());
    println!(
        "WBX W A post {} {}",
        a_all - a_pre,
        (t_end - t_switch).as_millis()
    );
    println!(
        "WBX W {label} post {b_bytes} {}",
        (t_end - t_switch).as_millis()
    );
}

fn idle_min_ratio(args: &[String]) {
    let [ma, ba, bb, secs] = args else {
        panic!("idle-min-ratio MNT_A BDI_A BDI_B SECS");
    };
    let secs = Duration::from_secs(secs.parse().expect("SECS"));
    set_bdi(bb, "min_ratio", 30);
    let t0 = Instant::now();
    let (sstop, sh) = start_sampler(t0, ba.clone(), bb.clone());
    event(t0, "a-start");
    let wa = start_writer(format!("{ma}/f"), 0);
    thread::sleep(secs);
    let (a, t) = (wa.written(), t0.elapsed());
    wa.finish();
    event(t0, "stop");
    sstop.store(true, Ordering::Relaxed);
    let _ = sh.join();
    println!("WBX W A run {a} {}", t.as_millis());
}

/// The policy of round `k` of `policy-switch`: linux, redistribute, redistribute, linux, ...
/// (each policy runs first in half of the pairs).
fn round_policy(k: u32) -> &'static str {
    if matches!(k % 4, 0 | 3) {
        "linux"
    } else {
        "redistribute"
    }
}

fn policy_switch(args: &[String]) {
    let [ma, mb, ba, bb, pre, post, rounds] = args else {
        panic!("policy-switch MNT_A MNT_B BDI_A BDI_B PRE_S POST_S ROUNDS");
    };
    let pre = Duration::from_secs(pre.parse().expect("PRE_S"));
    let post = Duration::from_secs(post.parse().expect("POST_S"));
    let rounds: u32 = rounds.parse().expect("ROUNDS");
    let knob = "/proc/sys/vm/wb_dirty_redistribute";
    if fs::metadata(knob).is_err() {
        println!("WBX FAIL no {knob} (a kernel without the runtime switch, or booted with linux)");
        return;
    }
    // Values other than 0 and 1 are refused and change nothing.
    for bad in ["2", "-1", "abc"] {
        let before = fs::read_to_string(knob).unwrap_or_default();
        let err = fs::write(knob, format!("{bad}\n")).err();
        let after = fs::read_to_string(knob).unwrap_or_default();
        println!(
            "WBX sysctl {bad} {} {}",
            err.and_then(|e| e.raw_os_error()).unwrap_or(0),
            if before == after {
                "unchanged"
            } else {
                "changed"
            }
        );
    }
    let t0 = Instant::now();
    let (sstop, sh) = start_sampler(t0, ba.clone(), bb.clone());
    for k in 0..rounds {
        let policy = round_policy(k);
        let on = if policy == "redistribute" { "1" } else { "0" };
        fs::write(knob, format!("{on}\n")).unwrap_or_else(|e| panic!("write {knob}: {e}"));
        set_bdi(ba, "max_ratio", 100);
        event(t0, &format!("round-{k}-{policy}"));
        let t_start = t0.elapsed();
        let wa = start_writer(format!("{ma}/f"), 0);
        thread::sleep(pre);
        let (a_pre, t_switch) = (wa.written(), t0.elapsed());
        set_bdi(ba, "max_ratio", 10);
        event(t0, &format!("switch-{k}"));
        let wb = start_writer(format!("{mb}/f"), 1);
        thread::sleep(post);
        let (b_bytes, a_all, t_end) = (wb.written(), wa.written(), t0.elapsed());
        wb.finish();
        wa.finish();
        event(t0, &format!("stop-{k}"));
        println!(
            "WBX W A pre-{k} {a_pre} {}",
            (t_switch - t_start).as_millis()
        );
        println!(
            "WBX W A post-{k} {} {}",
            a_all - a_pre,
            (t_end - t_switch).as_millis()
        );
        println!(
            "WBX W B post-{k} {b_bytes} {}",
            (t_end - t_switch).as_millis()
        );
        // B's pages written back before the next round, so that its A-alone phase ages B's
        // completions as the first round's did.
        // SAFETY: sync(2) takes no arguments.
        unsafe { libc::sync() };
    }
    event(t0, "stop");
    sstop.store(true, Ordering::Relaxed);
    let _ = sh.join();
}

/// The `MAJ:MIN` of the filesystem mounted at `dir`, from /proc/self/mountinfo: the name of a
/// FUSE mount's bdi (no stat: that would wait for the server's INIT reply).
fn mount_dev(dir: &str) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(4) == Some(&dir)).then(|| f[2].to_string())
    })
}

fn fuse_beside_disk(args: &[String]) {
    let [server, ma, mf, ba, pre, post] = args else {
        panic!("fuse-beside-disk SERVER MNT_A MNT_F BDI_A PRE_S POST_S");
    };
    let pre = Duration::from_secs(pre.parse().expect("PRE_S"));
    let post = Duration::from_secs(post.parse().expect("POST_S"));
    let _ = fs::create_dir_all(mf);
    let mut child = std::process::Command::new(server)
        .args(["serve", mf, "--wbcache", "--discard"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {server}: {e}"));
    let t_mount = Instant::now();
    let bf = loop {
        if let Some(d) = mount_dev(mf) {
            break d;
        }
        if t_mount.elapsed() > Duration::from_secs(20) {
            println!("WBX FAIL no FUSE mount at {mf}");
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        thread::sleep(Duration::from_millis(10));
    };
    // the first access waits for the server's INIT reply
    let _ = fs::metadata(format!("{mf}/."));
    let knob = |k: &str| {
        fs::read_to_string(format!("/sys/class/bdi/{bf}/{k}"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    println!(
        "WBX fuse {bf} max_ratio {} strict_limit {}",
        knob("max_ratio"),
        knob("strict_limit")
    );
    a_then_second(ma, ba, mf, &bf, "F", pre, post, || {});
    let c = std::ffi::CString::new(mf.as_str()).expect("no NUL");
    // SAFETY: a plain syscall with a valid NUL-terminated path.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let _ = child.kill();
    let _ = child.wait();
}

/// `LOOP_CTL_ADD` / `LOOP_CTL_REMOVE` of <linux/loop.h>.
const LOOP_CTL_ADD: libc::c_ulong = 0x4C80;
const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;
/// First loop device number used, above the ones created at boot.
const FIRST_LOOP: i32 = 64;

fn slots(args: &[String]) {
    let [rounds, nr] = args else {
        panic!("slots ROUNDS NR");
    };
    let rounds: u32 = rounds.parse().expect("ROUNDS");
    let nr: i32 = nr.parse().expect("NR");
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .expect("open /dev/loop-control");
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&ctl);
    let (mut added, mut ratios) = (0u32, 0u32);
    for _ in 0..rounds {
        for i in FIRST_LOOP..FIRST_LOOP + nr {
            // SAFETY: a plain ioctl on our own descriptor with an integer argument.
            if unsafe { libc::ioctl(fd, LOOP_CTL_ADD, i) } == i {
                added += 1;
            }
            let bdi = fs::read_to_string(format!("/sys/block/loop{i}/dev")).unwrap_or_default();
            let bdi = bdi.trim();
            if !bdi.is_empty()
                && fs::write(format!("/sys/class/bdi/{bdi}/max_ratio"), "50\n").is_ok()
                && fs::write(format!("/sys/class/bdi/{bdi}/min_ratio"), "1\n").is_ok()
            {
                ratios += 1;
            }
        }
        for i in FIRST_LOOP..FIRST_LOOP + nr {
            // SAFETY: as above.
            unsafe { libc::ioctl(fd, LOOP_CTL_REMOVE, i) };
        }
    }
    println!(
        "WBX slots added {added} ratios {ratios} of {}",
        rounds * nr as u32
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: wbexp max-ratio-lowered|idle-min-ratio|fuse-beside-disk|policy-switch|slots ...");
        std::process::exit(2);
    };
    println!("WBX scenario {cmd}");
    match cmd.as_str() {
        "max-ratio-lowered" => max_ratio_lowered(rest),
        "idle-min-ratio" => idle_min_ratio(rest),
        "fuse-beside-disk" => fuse_beside_disk(rest),
        "policy-switch" => policy_switch(rest),
        "slots" => slots(rest),
        _ => {
            eprintln!("wbexp: unknown scenario {cmd}");
            std::process::exit(2);
        }
    }
    println!("WBX END {cmd}");
}
