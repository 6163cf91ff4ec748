//! Simulator throughput: `simulator/<policy>/<scenario>` is one
//! whole run of a built-in scenario (`sim::run`: set-up, every step, the
//! recording), with throughput in device-steps (devices × steps per run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dirtylimit::sim;
use std::hint::black_box;

mod common;
use common::{policies, CpuTime};

fn simulator(c: &mut Criterion<CpuTime>) {
    let scenarios = sim::all_builtin().expect("built-in scenarios parse");
    let mut g = c.benchmark_group("simulator");
    for sc in &scenarios {
        let device_steps = sc.devices.len() as u64 * sc.steps();
        g.throughput(Throughput::Elements(device_steps));
        for (policy, name) in policies() {
            g.bench_function(BenchmarkId::new(name, &sc.name), |b| {
                b.iter(|| sim::run(black_box(sc), policy).expect("run"))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion(3, 10);
    targets = simulator
}
criterion_main!(benches);
