//! The hand-written 128/64 division against Rust's `u128` arithmetic.

mod core_common;

use dirtylimit::mul_div::{div128, div_round_up, div_wide, mul_div, scale_down};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..1 << 32,
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u32..64).prop_map(|s| (1u64 << s).wrapping_sub(1)),
        Just(u64::MAX),
        Just(0),
    ]
}

proptest! {
    #![proptest_config(core_common::cases())]

    #[test]
    fn mul_div_is_exact(a in word(), b in word(), c in word()) {
        let want = if c == 0 {
            u64::MAX
        } else {
            u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX)
        };
        prop_assert_eq!(mul_div(a, b, c), want);
    }

    #[test]
    fn div128_is_exact(hi in word(), lo in word(), d in word()) {
        let n = (u128::from(hi) << 64) | u128::from(lo);
        let want = if d == 0 { None } else { u64::try_from(n / u128::from(d)).ok() };
        prop_assert_eq!(div128(hi, lo, d), want);
    }

    #[test]
    fn div_round_up_is_ceiling(n in word(), d in 1u64..) {
        let want = u128::from(n).div_ceil(u128::from(d));
        prop_assert_eq!(u128::from(div_round_up(n, d)), want);
    }

    #[test]
    fn div_wide_is_exact(hi in word(), lo in word(), d in word()) {
        let n = (u128::from(hi) << 64) | u128::from(lo);
        let want = if d == 0 { u128::MAX } else { n / u128::from(d) };
        prop_assert_eq!(div_wide(n, d), want);
    }

    /// Never above the exact `v * a / b`, and exact while `b` fits in 64 bits.
    #[test]
    fn scale_down_never_rounds_up(v in word(), a in word(), b_hi in word(), b_lo in word()) {
        let b = ((u128::from(b_hi) << 64) | u128::from(b_lo)).max(u128::from(a)).max(1);
        let exact = u128::from(v) * u128::from(a) / b;
        let got = u128::from(scale_down(v, a, b));
        prop_assert!(got <= exact, "{} > {}", got, exact);
        if b_hi == 0 || b <= u128::from(u64::MAX) {
            prop_assert_eq!(got, exact);
        }
    }
}
