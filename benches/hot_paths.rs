//! The two hot paths, every policy on the same inputs:
//!
//! * `query/<policy>/<n>`: `Domain::wb_thresh` (`__wb_calc_thresh`), at the
//!   `T` of the last recompute, as `balance_dirty_pages()` asks it every few
//!   dirtied pages;
//! * `query_t_moved/<policy>/<n>`: the same at a `T` 1% above it (the
//!   kernel's `thresh` moves between two `update_dirty_limit` calls, and
//!   `Redistribute` then resolves its committed share from the aggregates);
//! * `completion/<policy>/<n>`: `Domain::writeout_inc` of one page
//!   (`__wb_writeout_add` for one folio), no period boundary in between.
//!
//! Every iteration visits the next id of a fixed sequence (see
//! `common::id_sequence`), so the figures include the cost of reaching a
//! bdi's slot among `n`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dirtylimit::Bdi;
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::{build, id_sequence, policies, thread_cpu_time, CpuTime, DIRTY, HOT_NS, SEQ, T};

fn query(c: &mut Criterion<CpuTime>) {
    for (group, thresh) in [("query", T), ("query_t_moved", T + T / 100)] {
        let mut g = c.benchmark_group(group);
        for &n in &HOT_NS {
            for (policy, name) in policies() {
                let mut slots = vec![Bdi::EMPTY; n];
                let (d, ids, _) = build(&mut slots, policy, n);
                let seq = id_sequence(&ids, n, true);
                let mut k = 0usize;
                g.bench_function(BenchmarkId::new(name, n), |b| {
                    b.iter(|| {
                        k = (k + 1) % SEQ;
                        d.wb_thresh(black_box(seq[k]), black_box(thresh), black_box(DIRTY))
                    })
                });
            }
        }
        g.finish();
    }
}

fn completion(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("completion");
    for &n in &HOT_NS {
        for (policy, name) in policies() {
            let mut slots = vec![Bdi::EMPTY; n];
            let (mut d, ids, now) = build(&mut slots, policy, n);
            let seq = id_sequence(&ids, n, false);
            let mut stale_chunks = 0u64;
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| {
                    // Timed in chunks of SEQ completions; between chunks,
                    // untimed, `tick` recomputes a level that went stale
                    // (Redistribute), as the next tick in the kernel would:
                    // a stale level skips the completion path's check, which
                    // would flatter the figure.
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let m = left.min(SEQ as u64) as usize;
                        let start = thread_cpu_time();
                        for &id in &seq[..m] {
                            d.writeout_inc(black_box(id), black_box(1), black_box(now));
                        }
                        total += thread_cpu_time().saturating_sub(start);
                        if d.water_level_state().stale() {
                            stale_chunks += 1;
                        }
                        // Lend: the bdis that completed stay active.
                        for &id in &seq[..m] {
                            d.note_active(id);
                        }
                        d.tick(now);
                        left -= m as u64;
                    }
                    total
                })
            });
            if stale_chunks > 0 {
                eprintln!("note: completion/{name}/{n}: level went stale in {stale_chunks} chunks of {SEQ}");
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion(2, 50);
    targets = query, completion
}
criterion_main!(benches);
