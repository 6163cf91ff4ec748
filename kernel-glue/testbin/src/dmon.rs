//! D-state monitor: every 500 ms, every task in state D (uninterruptible or killable sleep) is
//! noted with its context-switch count; one seen in D for more than 5 s without a context switch
//! in between (one sleep, not a writer throttled over and over) is reported once as
//! `DLTEST DSTATE`, unless its process is listed in /tmp/dl_exempt (writers of a deliberately
//! stalled mount, which the scenarios kill and check themselves).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::{Duration, Instant};

fn exempt() -> HashSet<u32> {
    fs::read_to_string("/tmp/dl_exempt")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Voluntary + involuntary context switches of a task.
fn switches(tgid: u32, tid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{tgid}/task/{tid}/status"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// (tgid, tid, comm) of every task in state D.
fn d_tasks() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Ok(tgid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(tasks) = fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(tid) = t.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            // "pid (comm) S ...": the state follows the last ')'
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            if stat[close + 1..].trim_start().starts_with('D') {
                let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
                out.push((tgid, tid, comm));
            }
        }
    }
    out
}

pub fn main(_args: &[String]) -> i32 {
    let mut since: HashMap<u32, (Instant, u64)> = HashMap::new();
    let mut reported: HashSet<u32> = HashSet::new();
    loop {
        let now = Instant::now();
        let d = d_tasks();
        let ex = exempt();
        since.retain(|tid, _| d.iter().any(|(_, t, _)| t == tid));
        for (tgid, tid, comm) in d {
            let sw = switches(tgid, tid);
            let e = since.entry(tid).or_insert((now, sw));
            if e.1 != sw {
                *e = (now, sw);
            }
            let t0 = e.0;
            if now - t0 > Duration::from_secs(5) && !ex.contains(&tgid) && reported.insert(tid) {
                let stack = fs::read_to_string(format!("/proc/{tgid}/task/{tid}/stack"))
                    .unwrap_or_default();
                println!(
                    "DLTEST DSTATE {tid} ({comm}) in D for more than 5 s: {}",
                    stack.lines().take(8).collect::<Vec<_>>().join(" | ")
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
