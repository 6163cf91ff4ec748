//! Simulator invariants, checked at every step of every built-in scenario
//! under every policy: page conservation, and the hard limit.

use dirtylimit::policy::Policy;
use dirtylimit::sim::{all_builtin, Scenario, Sim};

fn scenarios() -> Vec<Scenario> {
    let mut v = all_builtin().expect("built-in scenarios parse");
    v.push(
        Scenario::from_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/scenarios/example.toml"
        )))
        .expect("example scenario parses"),
    );
    v
}

/// dirtied = dirty + under writeback + written, per device and in total, at
/// every step; the writers' own counts add up to the same total.
#[test]
fn pages_are_conserved_at_every_step() {
    for sc in scenarios() {
        for p in Policy::ALL {
            let mut slots = Sim::slots(&sc);
            let mut sim = Sim::new(&sc, p, &mut slots).expect("scenario sets up");
            let mut steps = 0u64;
            while !sim.done() {
                sim.step().expect("step");
                steps += 1;
                for i in 0..sim.n_devices() {
                    let c = sim.device_counts(i);
                    assert_eq!(
                        c.dirtied,
                        c.dirty + c.writeback + c.written,
                        "{} {:?} device {i} at {} ms: {c:?}",
                        sc.name,
                        p,
                        sim.now()
                    );
                }
                let (total, by_writers) = sim.counts();
                assert_eq!(total.dirtied, total.dirty + total.writeback + total.written);
                assert_eq!(
                    total.dirtied,
                    by_writers,
                    "{} {:?} at {} ms",
                    sc.name,
                    p,
                    sim.now()
                );
                assert_eq!(sim.global_dirty(), total.dirty + total.writeback);
            }
            assert_eq!(steps, sc.steps());
            // The run did something: pages were dirtied and written.
            let (total, _) = sim.counts();
            assert!(
                total.dirtied > 0 && total.written > 0,
                "{} {:?}: {total:?}",
                sc.name,
                p
            );
        }
    }
}

/// Global dirty + writeback never exceeds the hard limit by more than what
/// the writers dirtied in the last step. A strictlimit bdi below its own
/// freerun ceiling is not throttled at all, whatever the global count
/// (domain_dirty_freerun() looks at the wb alone), so its pages are allowed
/// on top: that is the kernel's behaviour, not a simulator leak.
#[test]
fn global_dirty_stays_within_one_step_of_the_hard_limit() {
    for sc in scenarios() {
        for p in Policy::ALL {
            let mut slots = Sim::slots(&sc);
            let mut sim = Sim::new(&sc, p, &mut slots).expect("scenario sets up");
            let mut worst = i64::MIN;
            while !sim.done() {
                sim.step().expect("step");
                let strict_pages: u64 = (0..sim.n_devices())
                    .filter(|&i| sim.device_strict(i))
                    .map(|i| {
                        let c = sim.device_counts(i);
                        c.dirty + c.writeback
                    })
                    .sum();
                let allowed = sim.hard_limit() + sim.last_step_dirtied() + strict_pages;
                let over = sim.global_dirty() as i64 - allowed as i64;
                worst = worst.max(over);
                assert!(
                    sim.global_dirty() <= allowed,
                    "{} {:?} at {} ms: global dirty {} > hard limit {} + last step {} + strict {}",
                    sc.name,
                    p,
                    sim.now(),
                    sim.global_dirty(),
                    sim.hard_limit(),
                    sim.last_step_dirtied(),
                    strict_pages
                );
            }
            assert!(
                worst < 0,
                "{} {:?}: never below the bound? {worst}",
                sc.name,
                p
            );
        }
    }
}

/// Scenarios without strictlimit devices stay under the hard limit plus one
/// step, with no allowance at all.
#[test]
fn without_strictlimit_the_hard_limit_holds_to_one_step() {
    let mut checked = 0;
    for sc in scenarios() {
        let any_strict = sc.devices.iter().any(|d| {
            d.settings
                .iter()
                .any(|a| matches!(a, dirtylimit::sim::scenario::Action::StrictLimit(true)))
        });
        if any_strict {
            continue;
        }
        for p in Policy::ALL {
            let rec = dirtylimit::sim::run(&sc, p).expect("run");
            assert!(
                rec.peak_over_limit <= rec.max_step_dirtied as i64,
                "{} {:?}: peak over hard limit {} pages > one step {}",
                sc.name,
                p,
                rec.peak_over_limit,
                rec.max_step_dirtied
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} runs checked");
}
