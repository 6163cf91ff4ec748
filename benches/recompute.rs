//! Scaling with the number of bdis:
//!
//! * `recompute/<n>`: `Domain::rebalance` (`Redistribute`'s water level,
//!   what `tick` does on a period boundary) on the fixture's mix;
//! * `recompute_all_capped/<n>`: the same when every bdi with completions
//!   ends up at its cap (all `n` candidates are capped: the worst case);
//! * `recompute_lend/<n>`: `Lend`'s recompute (the active set, then the
//!   water level over it) on the fixture's mix, whose last period's writers
//!   are active (two thirds);
//! * `rollover/<policy>/<n>`: one completion, then `tick` across a period
//!   boundary (`writeout_period()`): the global count halves, and local
//!   counts age lazily when next read (`ClipOnly`, `Linux`) or all at once
//!   in the recompute (`Redistribute`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dirtylimit::{Bdi, Policy};
use std::hint::black_box;

mod common;
use common::{build, build_all_capped, id_sequence, policies, CpuTime, PERIOD, SCALE_NS, SEQ};

fn recompute(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("recompute");
    for &n in &SCALE_NS {
        let mut slots = vec![Bdi::EMPTY; n];
        let (mut d, _, _) = build(&mut slots, Policy::Redistribute, n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| d.rebalance()));
        black_box(d.capped_count());
    }
    g.finish();

    let mut g = c.benchmark_group("recompute_lend");
    for &n in &SCALE_NS {
        let mut slots = vec![Bdi::EMPTY; n];
        let (mut d, _, _) = build(&mut slots, Policy::Lend, n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| d.rebalance()));
        black_box(d.capped_count());
    }
    g.finish();

    let mut g = c.benchmark_group("recompute_all_capped");
    for &n in &SCALE_NS {
        let mut slots = vec![Bdi::EMPTY; n];
        let mut d = build_all_capped(&mut slots, n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| d.rebalance()));
    }
    g.finish();
}

fn rollover(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("rollover");
    for &n in &SCALE_NS {
        for (policy, name) in policies() {
            let mut slots = vec![Bdi::EMPTY; n];
            let (mut d, ids, mut now) = build(&mut slots, policy, n);
            let seq = id_sequence(&ids, n, false);
            let mut k = 0usize;
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    k = (k + 1) % SEQ;
                    d.writeout_inc(seq[k], 64, now);
                    now += PERIOD;
                    black_box(d.tick(black_box(now)))
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion(2, 30);
    targets = recompute, rollover
}
criterion_main!(benches);
