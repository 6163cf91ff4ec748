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

/// A ratio in ppm: the bounds, anything, small ones, whole percents.
pub fn ppm() -> impl proptest::strategy::Strategy<Value = u32> {
    use proptest::prelude::*;
    prop_oneof![
        Just(0u32),
        Just(1_000_000),
        0u32..1_000_001,
        0u32..20_000,
        (0u32..=100).prop_map(|p| p * 10_000)
    ]
}

/// A completion count: none, small, large, the u32 edge.
pub fn count() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    prop_oneof![
        Just(0u64),
        1u64..100,
        1u64..1_000_000,
        Just(u64::from(u32::MAX))
    ]
}
