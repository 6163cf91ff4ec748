//! Shared helpers for the core's integration tests.
#![allow(dead_code)]

use proptest::test_runner::Config;

/// Proptest cases: 10,000 by default, more with DIRTYLIMIT_PROPTEST_CASES.
pub fn cases() -> Config {
    let n = std::env::var("DIRTYLIMIT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    Config {
        cases: n,
        max_global_rejects: n,
        failure_persistence: None,
        ..Config::default()
    }
}
