//! Scaling with the number of bdis:
//!
//! * `recompute/<n>`: `Domain::rebalance` (`Redistribute`'s water level,
//!   what `tick` does on a period boundary) on the fixture's mix;
//! * `recompute_all_capped/<n>`: the same when every bdi with completions
//!   ends up at its cap, so the heap is popped `n` times (the worst case);
//! * `rollover/<policy>/<n>`: one completion, then `tick` across a period
//!   boundary (`writeout_period()`): the global count halves, and local
//!   counts age lazily when next read (`ClipOnly`, `Linux`) or all at once
//!   in the recompute (`Redistribute`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dirtylimit::{Bdi, Domain, DomainConfig, Policy};
use std::hint::black_box;

mod common;
use common::{build, id_sequence, policies, CpuTime, PERIOD, SCALE_NS, SEQ, T};

fn recompute(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("recompute");
    for &n in &SCALE_NS {
        let mut slots = vec![Bdi::EMPTY; n];
        let (mut d, _, _) = build(&mut slots, Policy::Redistribute, n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| d.rebalance()));
        black_box(d.capped_count());
    }
    g.finish();

    let mut g = c.benchmark_group("recompute_all_capped");
    for &n in &SCALE_NS {
        let mut slots = vec![Bdi::EMPTY; n];
        let mut d = Domain::new(&mut slots, DomainConfig::new(Policy::Redistribute));
        d.update_dirty_limit(T);
        let ids: Vec<_> = (0..n).map(|_| d.add_bdi().expect("slot")).collect();
        // caps of 1..=20 ppm sum to at most 20 * n ppm = 33% of T at n = 16384:
        // the pool outlasts them all, so every bdi is capped, in an order the
        // heap has to find (room / count differs per bdi).
        for (i, &id) in ids.iter().enumerate() {
            d.set_max_ratio_fine(id, 1 + (i as u32 * 7919) % 20)
                .expect("max_ratio_fine");
            d.writeout_inc(id, 1 + (i as u64 * 104_729) % 1000, 0);
        }
        d.rebalance();
        assert_eq!(d.capped_count() as usize, n, "every bdi capped");
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
