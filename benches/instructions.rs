//! Instructions per call, counted by Valgrind's callgrind: deterministic, so
//! a ratio between policies is decided by one run on a busy machine, where
//! wall time is not. The operations and the fixture are those of the
//! criterion benches (`common::build`):
//!
//! * `query`: `Domain::wb_thresh` at the recompute's `T`;
//! * `query_t_moved`: the same at a `T` 1% above it;
//! * `completion`: `Domain::writeout_inc` of one page;
//! * `rollover`: one completion of 64 pages, then `tick` across a period
//!   boundary;
//! * `recompute`: `Domain::rebalance` (`Redistribute`'s water level, and
//!   `Lend`'s over the fixture's active set);
//! * `recompute_all_capped`: the same for `Redistribute` when every bdi ends
//!   at its cap.
//!
//! `Lend` sees the fixture's activity (the bdis that wrote in the last
//! period); between the completion chunks the ids of the chunk are reported
//! active, uncounted, as the criterion bench does. `rollover` reports no
//! activity, so under `Lend` every bdi is a lender after the first tick and
//! its figure is not comparable with `Redistribute`'s.
//!
//! ```text
//! cargo bench --bench instructions -- [--quick] [--out FILE]
//! ```
//!
//! The bench runs itself under `valgrind --tool=callgrind`, once per `n`,
//! with instrumentation off while fixtures are built; each operation runs
//! `K` times between two client requests that turn counting on and off,
//! and the count of an equal loop that makes no call is subtracted, so a
//! figure is the instructions of one call. It prints the table (and writes
//! it to `FILE` as markdown) and exits with status 1 when a
//! `Redistribute / Linux` ratio of a hot path (`query`, `query_t_moved`,
//! `completion`) is above 1.0 (`Lend / Linux` is reported beside it, not
//! gated: its completion is within a few instructions of Linux's, closer
//! than code layout moves both), 2 when it could not measure (with `--quick`
//! also when valgrind is missing; without it, a missing valgrind skips the
//! bench, so that a plain `cargo bench` still runs the others). `--quick`
//! measures n = 1, 64, 1024, 4096 with fewer calls; the default adds 4,
//! 16, 256 and 16384 (building the n = 16384 fixtures takes most of the
//! run: each add and setting recomputes); `--ns 64,1024` picks the n.

use dirtylimit::{Bdi, Domain, Policy};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod common;
use common::{build, build_all_capped, id_sequence, DIRTY, PERIOD, SEQ, T};

/// The operations, in table order; the first three are the hot paths whose
/// `Redistribute / Linux` ratio must stay at or below 1.0.
const OPS: [&str; 6] = [
    "query",
    "query_t_moved",
    "completion",
    "rollover",
    "recompute",
    "recompute_all_capped",
];
const HOT_OPS: usize = 3;

/// The policies measured, with the names used in the report.
const POLICIES: [(Policy, &str); 4] = [
    (Policy::ClipOnly, "clip_only"),
    (Policy::Linux, "linux"),
    (Policy::Redistribute, "redistribute"),
    (Policy::Lend, "lend"),
];

/// The policies with a water level (their `recompute` is measured) and a
/// ratio to Linux in the tables; the first one's hot-path ratios are the
/// gate.
const LEVELED: [Policy; 2] = [Policy::Redistribute, Policy::Lend];

/// A policy's name in the report (as in [`POLICIES`]).
fn pname(p: Policy) -> &'static str {
    POLICIES
        .iter()
        .find(|(q, _)| *q == p)
        .map_or("?", |(_, name)| name)
}

/// A policy as a column header: its title without the kernel version.
fn label(p: Policy) -> &'static str {
    let t = p.title();
    t.split(" (").next().unwrap_or(t)
}

const FULL_NS: [usize; 8] = [1, 4, 16, 64, 256, 1024, 4096, 16384];
const QUICK_NS: [usize; 4] = [1, 64, 1024, 4096];

/// Set in the environment of the process that runs under callgrind.
const CHILD_ENV: &str = "DIRTYLIMIT_INSTRUCTIONS_CHILD";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    match parent(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("instructions: {e}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// Valgrind client requests (valgrind.h, callgrind.h), x86-64 only.

/// `VG_USERREQ_TOOL_BASE('C','T')`: callgrind's requests follow in this order.
const CALLGRIND_BASE: usize = (b'C' as usize) << 24 | (b'T' as usize) << 16;
const TOGGLE_COLLECT: usize = CALLGRIND_BASE + 2;
const DUMP_STATS_AT: usize = CALLGRIND_BASE + 3;
const START_INSTRUMENTATION: usize = CALLGRIND_BASE + 4;
const STOP_INSTRUMENTATION: usize = CALLGRIND_BASE + 5;
/// `VG_USERREQ__RUNNING_ON_VALGRIND`.
const RUNNING_ON_VALGRIND: usize = 0x1001;

/// One client request with one argument; returns `0` when not under Valgrind.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn client_request(request: usize, arg: usize) -> usize {
    let args: [usize; 6] = [request, arg, 0, 0, 0, 0];
    let mut result: usize = 0;
    // SAFETY: Valgrind's "special instruction" sequence (valgrind.h,
    // `__SPECIAL_INSTRUCTION_PREAMBLE` + `xchgq %rbx,%rbx`): the rotations
    // of rdi add up to 128 bits and the exchange is of rbx with itself, so
    // natively it changes nothing (rdi is still declared clobbered). Under
    // Valgrind the tool reads the six words at rax, which point to `args`,
    // live for the whole statement, and writes its answer to rdx.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") result,
            inout("rdi") 0usize => _,
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(_request: usize, _arg: usize) -> usize {
    0
}

// ---------------------------------------------------------------------------
// The process under callgrind: measures every operation at one n.

/// Counts `k` runs of `f` (given the run's index) under the dump name `name`.
#[inline(never)]
fn measure(name: &str, k: usize, mut f: impl FnMut(usize)) {
    let cname = std::ffi::CString::new(name).expect("no NUL in names");
    client_request(TOGGLE_COLLECT, 0);
    for i in 0..k {
        f(black_box(i));
    }
    client_request(TOGGLE_COLLECT, 0);
    client_request(DUMP_STATS_AT, cname.as_ptr() as usize);
}

/// `spec` is `n,k`: measure at `n` bdis, hot paths `k` calls each.
fn child(spec: &str) -> ExitCode {
    let parsed = spec
        .split_once(',')
        .and_then(|(n, k)| Some((n.parse::<usize>().ok()?, k.parse::<usize>().ok()?)));
    let Some((n, k)) = parsed else {
        eprintln!("instructions: bad {CHILD_ENV}={spec:?}");
        return ExitCode::from(2);
    };
    if client_request(RUNNING_ON_VALGRIND, 0) == 0 {
        eprintln!("instructions: the measuring process is not running under valgrind");
        return ExitCode::from(2);
    }
    let k_slow = slow_calls(n);
    let mut sink = 0u64;

    // Every fixture is built before instrumentation starts (building is
    // O(n^2) for Redistribute: each add and setting recomputes), and
    // instrumentation then stays on: callgrind's dumps are only consistent
    // when it is not stopped and started again.
    let mut store: Vec<Vec<Bdi>> = (0..POLICIES.len() + 1)
        .map(|_| vec![Bdi::EMPTY; n])
        .collect();
    let mut store = store.iter_mut();
    let mut fixtures = Vec::new();
    for (policy, pname) in POLICIES {
        let slots = store.next().expect("slots");
        let (d, ids, now) = build(slots, policy, n);
        fixtures.push((policy, pname, d, ids, now));
    }
    let mut all_capped = build_all_capped(store.next().expect("slots"), n);
    client_request(START_INSTRUMENTATION, 0);

    // The loop alone: what every measured loop costs besides its call.
    let seq = id_sequence(&fixtures[0].3, n, true);
    measure("baseline/hot", k, |i| {
        black_box(seq[i % SEQ]);
    });
    measure("baseline/slow", k_slow, |i| {
        black_box(seq[i % SEQ]);
    });

    for (policy, pname, d, ids, now) in &mut fixtures {
        let now = *now;
        for (op, thresh) in [("query", T), ("query_t_moved", T + T / 100)] {
            let seq = id_sequence(ids, n, true);
            let d = &*d;
            measure(&format!("{op}/{pname}/{n}/hot"), k, |i| {
                sink ^= d.wb_thresh(black_box(seq[i % SEQ]), black_box(thresh), black_box(DIRTY));
            });
        }
        if LEVELED.contains(policy) {
            // Before the completions below change the fixture.
            measure(&format!("recompute/{pname}/{n}/slow"), k_slow, |_| {
                d.rebalance();
            });
        }

        // Completions in chunks; between chunks, not counted, `tick`
        // recomputes a level that went stale (as the kernel's next tick
        // would): a stale level skips the completion path's check.
        let seq = id_sequence(ids, n, false);
        let chunk = 256;
        let cname = std::ffi::CString::new(format!("completion/{pname}/{n}/hot")).expect("no NUL");
        for c in 0..k.div_ceil(chunk) {
            client_request(TOGGLE_COLLECT, 0);
            for i in c * chunk..((c + 1) * chunk).min(k) {
                completion(d, black_box(seq[i % SEQ]), now);
            }
            client_request(TOGGLE_COLLECT, 0);
            // Lend: the bdis that completed stay active (others ignore it).
            for i in c * chunk..((c + 1) * chunk).min(k) {
                d.note_active(seq[i % SEQ]);
            }
            d.tick(now);
        }
        client_request(DUMP_STATS_AT, cname.as_ptr() as usize);

        let mut t = now;
        measure(&format!("rollover/{pname}/{n}/slow"), k_slow, |i| {
            d.writeout_inc(black_box(seq[i % SEQ]), 64, t);
            t += PERIOD;
            sink ^= u64::from(d.tick(black_box(t)));
        });
    }
    measure(
        &format!("recompute_all_capped/redistribute/{n}/slow"),
        k_slow,
        |_| {
            all_capped.rebalance();
        },
    );
    client_request(STOP_INSTRUMENTATION, 0);
    black_box(sink);
    ExitCode::SUCCESS
}

/// Calls per figure of the O(n) operations.
fn slow_calls(n: usize) -> usize {
    (4 * SEQ / n).clamp(2, 64)
}

/// One completion, not inlined into the chunk loop (as in the measured loop
/// of the other operations, the call is part of what is counted).
#[inline(never)]
fn completion(d: &mut Domain<'_>, id: dirtylimit::BdiId, now: u64) {
    d.writeout_inc(id, black_box(1), now);
}

// ---------------------------------------------------------------------------
// The driver: runs the child under callgrind for each n, reads the dumps.

struct Args {
    quick: bool,
    ns: Option<Vec<usize>>,
    out: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        ns: None,
        out: None,
    };
    let mut it = args.iter();
    while let Some(s) = it.next() {
        match s.as_str() {
            "--quick" => a.quick = true,
            "--out" => a.out = Some(it.next().ok_or("--out needs a file")?.into()),
            "--ns" => {
                let list = it.next().ok_or("--ns needs a list such as 1,64")?;
                let ns = list
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<usize>, _>>();
                a.ns = Some(ns.map_err(|e| format!("--ns {list}: {e}"))?);
            }
            // cargo bench passes --bench to every bench target
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench instructions -- [--quick] [--ns N,N,...] [--out FILE]"
                );
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {s:?} (try --help)")),
        }
    }
    Ok(a)
}

/// Instructions per call, by (op, policy name, n).
type Counts = BTreeMap<(String, String, usize), f64>;

fn parent(args: &[String]) -> Result<bool, String> {
    let args = parse_args(args)?;
    if !cfg!(target_arch = "x86_64") {
        return Err("the client requests are written for x86-64 only".into());
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        if args.quick {
            return Err("valgrind not found; install it (Debian: valgrind)".into());
        }
        // A plain `cargo bench` runs every bench target: skip, don't fail.
        eprintln!(
            "instructions: valgrind not found, nothing measured (install it: Debian valgrind)"
        );
        return Ok(true);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = std::env::temp_dir().join(format!("dirtylimit-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (ns, k): (&[usize], usize) = match (&args.ns, args.quick) {
        (Some(ns), quick) => (ns, if quick { 1024 } else { SEQ }),
        (None, true) => (&QUICK_NS, 1024),
        (None, false) => (&FULL_NS, SEQ),
    };
    let mut counts = Counts::new();
    for &n in ns {
        let started = std::time::Instant::now();
        let got = run_child(&exe, &dir, n, k);
        eprintln!(
            "instructions: n = {n} measured in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        counts.extend(got?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (md, ok) = report(&counts, ns, k, args.quick);
    print!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("instructions: wrote {}", out.display());
    }
    if !ok {
        eprintln!("instructions: a Redistribute / Linux ratio is above 1.0");
    }
    Ok(ok)
}

fn run_child(exe: &Path, dir: &Path, n: usize, k: usize) -> Result<Counts, String> {
    let out_file = dir.join(format!("callgrind.{n}"));
    let status = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--instr-atstart=no",
            "--collect-atstart=no",
            "--compress-strings=no",
            "--compress-pos=no",
            "--quiet",
        ])
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(exe)
        .env(CHILD_ENV, format!("{n},{k}"))
        .status()
        .map_err(|e| format!("cannot run valgrind ({e}); install it (Debian: valgrind)"))?;
    if !status.success() {
        return Err(format!("the measuring run at n = {n} failed: {status}"));
    }
    // One file per dump: callgrind.<n>.<k>, each with its trigger and totals.
    let mut raw: BTreeMap<String, u64> = BTreeMap::new();
    let prefix = format!("callgrind.{n}.");
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        let name = p.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if !name.starts_with(&prefix) {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let trigger = text
            .lines()
            .find_map(|l| l.strip_prefix("desc: Trigger: Client Request: "))
            .map(str::to_owned);
        let total = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("totals: ")
                    .or_else(|| l.strip_prefix("summary: "))
            })
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        if let (Some(t), Some(c)) = (trigger, total) {
            raw.insert(t, c);
        }
    }
    let k_slow = slow_calls(n);
    let base = |kind: &str| raw.get(&format!("baseline/{kind}")).copied();
    let (Some(b_hot), Some(b_slow)) = (base("hot"), base("slow")) else {
        return Err(format!("no baseline dumps at n = {n} in {}", dir.display()));
    };
    let mut counts = Counts::new();
    for (name, &c) in &raw {
        let parts: Vec<&str> = name.split('/').collect();
        let [op, policy, _, kind] = parts[..] else {
            continue;
        };
        let (calls, b) = if kind == "hot" {
            (k, b_hot)
        } else {
            (k_slow, b_slow)
        };
        let per_call = c.saturating_sub(b) as f64 / calls as f64;
        counts.insert((op.to_owned(), policy.to_owned(), n), per_call);
    }
    Ok(counts)
}

/// The markdown report, and whether every hot-path ratio is at most 1.0.
fn report(c: &Counts, ns: &[usize], k: usize, quick: bool) -> (String, bool) {
    let mut md = String::new();
    let mut ok = true;
    let get = |op: &str, p: &str, n: usize| c.get(&(op.to_owned(), p.to_owned(), n)).copied();
    let _ = writeln!(
        md,
        "# Instructions per call\n\n\
         Generated by `cargo bench --bench instructions{}` (callgrind, {}; {} calls per hot-path \
         figure, the loop's own instructions subtracted). Deterministic for a given build: these \
         decide the \"≤ 1.0× Linux\" targets. Fixture: `benches/common` (`build`, \
         `build_all_capped`).\n",
        if quick { " -- --quick" } else { "" },
        rustc_version(),
        k
    );
    let _ = writeln!(
        md,
        "## Targets\n\n| target | worst ratio to Linux | |\n|---|---:|---|"
    );
    for p in LEVELED {
        let title = label(p);
        for op in &OPS[..HOT_OPS] {
            let worst = ns
                .iter()
                .filter_map(|&n| Some(get(op, pname(p), n)? / get(op, "linux", n)?))
                .fold(0.0f64, f64::max);
            let met = worst <= 1.0;
            let verdict = match (p == LEVELED[0], met) {
                (true, true) => "met",
                (true, false) => "**missed**",
                (false, true) => "met (reported, not gated)",
                (false, false) => "missed (reported, not gated)",
            };
            if p == LEVELED[0] {
                ok &= met;
            }
            let _ = writeln!(
                md,
                "| `{op}` {title} ≤ 1.0× Linux, every n | {worst:.3}× | {verdict} |"
            );
        }
    }
    let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
    for op in OPS {
        let _ = writeln!(md, "\n## `{op}`\n");
        if OPS[..HOT_OPS].contains(&op) || op == "rollover" {
            let mut head = String::from("| n |");
            for (p, _) in POLICIES {
                let _ = write!(head, " {} |", label(p));
            }
            for p in LEVELED {
                let _ = write!(head, " {} / Linux |", label(p));
            }
            let _ = writeln!(
                md,
                "{head}\n|---:|{}",
                "---:|".repeat(POLICIES.len() + LEVELED.len())
            );
            for &n in ns {
                let mut row = format!("| {n} |");
                for (_, name) in POLICIES {
                    let _ = write!(row, " {} |", f(get(op, name, n)));
                }
                for p in LEVELED {
                    let ratio = match (get(op, pname(p), n), get(op, "linux", n)) {
                        (Some(r), Some(l)) if l > 0.0 => {
                            let q = r / l;
                            if q > 1.0 && op != "rollover" {
                                format!("**{q:.3}×**")
                            } else {
                                format!("{q:.3}×")
                            }
                        }
                        _ => "–".into(),
                    };
                    let _ = write!(row, " {ratio} |");
                }
                let _ = writeln!(md, "{row}");
            }
        } else {
            let leveled: &[Policy] = if op == "recompute" {
                &LEVELED
            } else {
                &LEVELED[..1]
            };
            let mut head = String::from("| n |");
            for &p in leveled {
                let _ = write!(head, " {} | per bdi |", label(p));
            }
            let _ = writeln!(md, "{head}\n|---:|{}", "---:|---:|".repeat(leveled.len()));
            for &n in ns {
                let mut row = format!("| {n} |");
                for &p in leveled {
                    match get(op, pname(p), n) {
                        Some(v) => {
                            let _ = write!(row, " {v:.0} | {:.1} |", v / n as f64);
                        }
                        None => row.push_str(" – | – |"),
                    }
                }
                let _ = writeln!(md, "{row}");
            }
        }
    }
    (md, ok)
}

fn rustc_version() -> String {
    Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("rustc ?".into(), |s| s.trim().to_owned())
}
