//! Shared fixture of the benches: a domain of `n` bdis with a realistic mix
//! of settings and a spread of completion fractions, built the same way for
//! every policy so that the policies are measured on the same inputs.
//!
//! Bdi `i`, by `i % 8`:
//!
//! | `i % 8` | settings                                   | writes                  |
//! |---------|--------------------------------------------|-------------------------|
//! | 0       | none                                       | heavy (a local disk)    |
//! | 1       | `max_ratio` 1% (FUSE default)              | heavy: at its cap       |
//! | 2       | `min_ratio_fine`: 30% of `T` spread over these | Zipf                |
//! | 3       | `max_ratio_fine` 500 ppm (rounds to 0/1024 in Linux) | light         |
//! | 4..=7   | none                                       | Zipf                    |
//!
//! "Zipf": bdi `i` writes `1 + 2^20 / rank(i)` pages per period, with
//! `rank` a fixed pseudo-random permutation, so fractions span six orders of
//! magnitude. The history covers four periods; in each, a third of the bdis
//! write nothing, so counts are aged lazily (the `Linux` and `ClipOnly`
//! queries shift a count that missed periods; `Redistribute` ages every
//! bdi when it recomputes at the boundary).

#![allow(dead_code)] // each bench uses a part

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
use dirtylimit::{Bdi, BdiId, Domain, DomainConfig, Policy};
use std::time::Duration;

/// The policies in report order, with the names used in benchmark ids
/// ([`Policy::name`]).
pub fn policies() -> impl Iterator<Item = (Policy, &'static str)> {
    Policy::ALL.into_iter().map(|p| (p, p.name()))
}

/// Device counts of the hot-path benches.
pub const HOT_NS: [usize; 5] = [1, 4, 64, 1024, 16384];

/// Device counts of the scaling benches (powers of 4).
pub const SCALE_NS: [usize; 8] = [1, 4, 16, 64, 256, 1024, 4096, 16384];

/// The domain threshold `T` in pages (about 7.6 GiB: 20% of ~38 GiB dirtyable).
pub const T: u64 = 2_000_000;

/// Global dirty pages at query time: between the background and the hard
/// limit, so the 6.13+ idle floor is computed (and is below most shares).
pub const DIRTY: u64 = T * 3 / 4;

/// Period length (ms), the kernel's 3 s.
pub const PERIOD: u64 = 3000;

/// Length of the id sequences the hot-path benches cycle through.
pub const SEQ: usize = 4096;

/// A small deterministic generator (xorshift64*), so fixtures are the same in every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pages bdi `i` of `n` writes in a period of the fixture's history.
pub fn weights(n: usize) -> Vec<u64> {
    // rank: a pseudo-random permutation of 1..=n
    let mut rank: Vec<u64> = (1..=n as u64).collect();
    let mut rng = Rng::new(0x5eed_0000 + n as u64);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rank.swap(i, j);
    }
    (0..n)
        .map(|i| match i % 8 {
            0 | 1 => 1 << 20,
            3 => 64,
            _ => 1 + (1 << 20) / rank[i],
        })
        .collect()
}

/// A built domain over `slots` (which must hold `n` free slots), the live
/// ids, and the time of the last tick (just after the last period boundary).
pub fn build(slots: &mut [Bdi], policy: Policy, n: usize) -> (Domain<'_>, Vec<BdiId>, u64) {
    let mut d = Domain::new(slots, DomainConfig::new(policy));
    d.update_dirty_limit(T);
    let ids: Vec<BdiId> = (0..n).map(|_| d.add_bdi().expect("slot")).collect();
    let n_min = ids.iter().enumerate().filter(|(i, _)| i % 8 == 2).count() as u32;
    let min_ppm = 300_000u32
        .checked_div(n_min)
        .map_or(0, |p| p.clamp(1, 50_000));
    for (i, &id) in ids.iter().enumerate() {
        match i % 8 {
            1 => d.set_max_ratio(id, 1).expect("max_ratio"),
            2 => d.set_min_ratio_fine(id, min_ppm).expect("min_ratio"),
            3 => d.set_max_ratio_fine(id, 500).expect("max_ratio_fine"),
            _ => {}
        }
    }
    let w = weights(n);
    let mut now = 0;
    for p in 0..4u64 {
        for (i, &id) in ids.iter().enumerate() {
            if (i as u64 + p) % 3 != 0 {
                // at a few instants within the period
                d.writeout_inc(id, w[i], now + (i as u64 % 7) * 100);
                // Lend: the bdis that write in a period are the active ones
                // (a third idle); the other policies ignore it.
                d.note_active(id);
            }
        }
        now += PERIOD;
        d.tick(now);
    }
    (d, ids, now)
}

/// Ids to cycle through in the hot-path benches, drawn by write weight
/// (the busy bdis are queried and complete most). With `uniform_half`, every
/// other id is drawn uniformly instead, so that every kind of bdi in the mix
/// is visited at every `n` (queries; completions keep the fixture's
/// distribution, so that fractions stay where the fixture put them).
pub fn id_sequence(ids: &[BdiId], n: usize, uniform_half: bool) -> Box<[BdiId; SEQ]> {
    let w = weights(n);
    let total: u64 = w.iter().sum();
    let mut rng = Rng::new(0xbeef + n as u64);
    let mut seq = Box::new([BdiId(0); SEQ]);
    for (k, s) in seq.iter_mut().enumerate() {
        let i = if k % 2 == 0 || !uniform_half {
            let mut r = rng.below(total);
            let mut i = 0;
            while r >= w[i] {
                r -= w[i];
                i += 1;
            }
            i
        } else {
            rng.below(n as u64) as usize
        };
        *s = ids[i];
    }
    seq
}

/// Criterion measurement: CPU time of the benchmarking thread
/// (`CLOCK_THREAD_CPUTIME_ID`), not wall time. The machines this project
/// runs on have 2 cores shared with builds; time spent preempted is not
/// charged to the code under test, so medians and ratios stay comparable
/// under load (cache and memory contention from the other core still count).
pub struct CpuTime;

/// The calling thread's CPU time.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, i: Duration) -> Duration {
        thread_cpu_time().saturating_sub(i)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

/// Formats nanoseconds as criterion's wall-time formatter does.
struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1.0 {
            (1e3, "ps")
        } else if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(&self, typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let per_iter = match *t {
            Throughput::Elements(e) | Throughput::ElementsAndBytes { elements: e, .. } => e,
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => b,
            Throughput::Bits(b) => b,
        } as f64;
        let rate = per_iter * 1e9 / typical;
        let (div, unit) = if rate < 1e3 {
            (1.0, " elem/s")
        } else if rate < 1e6 {
            (1e3, "Kelem/s")
        } else if rate < 1e9 {
            (1e6, "Melem/s")
        } else {
            (1e9, "Gelem/s")
        };
        for v in values {
            *v = per_iter * 1e9 / *v / div;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// The benches' criterion: CPU time, short warm-up, `secs` of measurement.
pub fn criterion(secs: u64, samples: usize) -> Criterion<CpuTime> {
    Criterion::default()
        .with_measurement(CpuTime)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(secs))
        .sample_size(samples)
}
