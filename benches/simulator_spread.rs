//! Spread of the simulator's run time: whole runs of the built-in scenarios
//! (`sim::run`, as in the `simulator` bench) timed one by one with the
//! thread's CPU time, and per scenario and policy the fastest run, the 10th
//! percentile and the median in device-steps per second, with the runs
//! counted in bins of 10⁶ device-steps/s.
//!
//! Criterion's median in the `simulator` bench tells how fast the machine
//! ran the code while the bench ran. On a machine whose speed changes under
//! a run (a virtual machine whose cores the host shares), the runs of one
//! binary fall into clusters, and a median of ten samples tells which
//! cluster was the more common then; the fastest runs tell what the code
//! costs with a core to itself. Instructions per run (callgrind) are the
//! figure that does not move at all (docs/performance.md).
//!
//! ```text
//! cargo bench --bench simulator_spread -- [SECONDS_PER_RUN_SET] [SCENARIO_FILTER]
//! ```
//!
//! The defaults are 2 s per scenario and policy and every scenario.

use dirtylimit::sim;
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::{policies, thread_cpu_time};

/// Bins of the histogram, 10⁶ device-steps/s wide; the last holds the rest.
const BINS: usize = 24;

fn main() {
    // `cargo bench` passes `--bench`; every other argument is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: f64 = match args.first() {
        Some(s) => s
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .expect("SECONDS_PER_RUN_SET: a number of seconds, 0 or more"),
        None => 2.0,
    };
    let filter = args.get(1).map_or("", String::as_str);
    let budget = Duration::from_secs_f64(secs);
    let scenarios = sim::all_builtin().expect("built-in scenarios parse");
    println!("device-steps/s (10^6): fastest, 10th percentile, median; runs per 10^6 bin from 0");
    for sc in scenarios.iter().filter(|sc| sc.name.contains(filter)) {
        let device_steps = (sc.devices.len() as u64 * sc.steps()) as f64;
        for (policy, name) in policies() {
            // At least one run, however short the budget.
            let mut rates = Vec::new();
            let start = thread_cpu_time();
            loop {
                let t0 = thread_cpu_time();
                black_box(sim::run(black_box(sc), policy).expect("run"));
                let dt = (thread_cpu_time() - t0).as_secs_f64();
                rates.push(device_steps / dt / 1e6);
                if thread_cpu_time() - start >= budget {
                    break;
                }
            }
            // Fastest first.
            rates.sort_by(|a, b| b.total_cmp(a));
            let mut bins = [0usize; BINS];
            for r in &rates {
                bins[(*r as usize).min(BINS - 1)] += 1;
            }
            let last = bins.iter().rposition(|&n| n > 0).unwrap_or(0);
            println!(
                "{:24} {:12} {:6.2} {:6.2} {:6.2}  ({} runs) {:?}",
                sc.name,
                name,
                rates[0],
                rates[rates.len() / 10],
                rates[rates.len() / 2],
                rates.len(),
                &bins[..=last]
            );
        }
    }
}
