//! Exact 64×64/64 arithmetic without 128-bit division.
//!
//! The kernel computes `a * b / c` with 64-bit intermediates (`div64_u64`,
//! `div_u64`) and simply overflows when `a * b` does not fit. We keep the
//! product exact in 128 bits (a 64×64 multiply is one `mul` instruction on
//! x86-64) but never divide a `u128`: the kernel has no `__udivti3`, and
//! neither may this crate when it is linked into the kernel. Instead the
//! 128/64 division is done by hand with 64/64 divisions (Knuth's algorithm D
//! on 32-bit digits, as in Hacker's Delight `divlu`). Results that do not fit
//! in 64 bits saturate instead of wrapping or panicking.

use num_traits::{CheckedRem, PrimInt};

const B: u64 = 1 << 32;

/// Divides the 128-bit value `hi:lo` by `d`, or `None` when the quotient
/// does not fit in 64 bits (that is `hi >= d`, which includes `d == 0`).
pub fn div128(hi: u64, lo: u64, d: u64) -> Option<u64> {
    if hi >= d {
        return None;
    }
    if hi == 0 {
        return lo.checked_div(d);
    }
    // Normalise so that the divisor's top bit is set (d > hi > 0, so d != 0).
    let s = d.leading_zeros();
    let v = d << s;
    let (vn1, vn0) = (v >> 32, v & 0xffff_ffff);
    let un32 = if s == 0 {
        hi
    } else {
        (hi << s) | (lo >> (64 - s))
    };
    let un10 = lo << s;
    let (un1, un0) = (un10 >> 32, un10 & 0xffff_ffff);

    let q1 = quotient_digit(un32, un1, vn1, vn0);
    // un21 = un32:un1 - q1 * v, which fits in 64 bits by construction.
    let un21 = un32
        .wrapping_mul(B)
        .wrapping_add(un1)
        .wrapping_sub(q1.wrapping_mul(v));
    let q0 = quotient_digit(un21, un0, vn1, vn0);
    Some(q1.wrapping_mul(B).wrapping_add(q0))
}

/// One step of algorithm D: the 32-bit quotient digit of `(u:next) / (vn1:vn0)`.
/// The `q < B` test short-circuits before `q * vn0`, so no product overflows.
fn quotient_digit(u: u64, next: u64, vn1: u64, vn0: u64) -> u64 {
    let mut q = u.checked_div(vn1).unwrap_or(0);
    let mut rhat = u - q.wrapping_mul(vn1);
    while q >= B || q.wrapping_mul(vn0) > rhat.wrapping_mul(B).wrapping_add(next) {
        q = q.wrapping_sub(1);
        rhat = rhat.wrapping_add(vn1);
        if rhat >= B {
            break;
        }
    }
    q
}

/// `floor(a * b / c)` computed exactly, saturating at `u64::MAX` when the
/// quotient does not fit or `c == 0`.
#[inline]
pub fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    let (hi, lo) = ((p >> 64) as u64, p as u64);
    if hi == 0 {
        return lo.checked_div(c).unwrap_or(u64::MAX);
    }
    div128(hi, lo, c).unwrap_or(u64::MAX)
}

/// `n / d` for a 128-bit `n`, by two 64-bit steps (no `u128` division);
/// `u128::MAX` when `d == 0`.
pub fn div_wide(n: u128, d: u64) -> u128 {
    let (hi, lo) = ((n >> 64) as u64, n as u64);
    let (Some(q_hi), Some(r)) = (hi.checked_div(d), hi.checked_rem(d)) else {
        return u128::MAX;
    };
    // r < d, so the low quotient fits in 64 bits.
    let q_lo = div128(r, lo, d).unwrap_or(u64::MAX);
    (u128::from(q_hi) << 64) | u128::from(q_lo)
}

/// `v * a / b` for `a <= b` with a 128-bit `b`, never more than the exact
/// value: when `b` does not fit in 64 bits both are shifted right and the
/// divisor rounded up.
pub fn scale_down(v: u64, a: u64, b: u128) -> u64 {
    match u64::try_from(b) {
        Ok(b) => mul_div(v, a, b),
        Err(_) => {
            // 2 <= s <= 65, so that (b >> s) + 1 fits in 64 bits.
            let s = 65 - b.leading_zeros();
            let a = a.checked_shr(s).unwrap_or(0);
            mul_div(v, a, ((b >> s) as u64) + 1)
        }
    }
}

/// The kernel's `DIV_ROUND_UP(n, d)`, for any primitive unsigned integer;
/// `d == 0` gives the type's maximum rather than a trap.
#[inline]
pub fn div_round_up<T: PrimInt + CheckedRem>(n: T, d: T) -> T {
    match (n.checked_div(&d), n.checked_rem(&d)) {
        (Some(q), Some(r)) if r.is_zero() => q,
        (Some(q), Some(_)) => q + T::one(),
        _ => T::max_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_u128_on_edges() {
        let vals = [
            0u64,
            1,
            2,
            3,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &a in &vals {
            for &b in &vals {
                for &c in &vals {
                    let want = if c == 0 {
                        u64::MAX
                    } else {
                        let q = (a as u128 * b as u128) / c as u128;
                        if q > u64::MAX as u128 {
                            u64::MAX
                        } else {
                            q as u64
                        }
                    };
                    assert_eq!(mul_div(a, b, c), want, "{a} * {b} / {c}");
                }
            }
        }
    }

    #[test]
    fn div_round_up_works() {
        assert_eq!(div_round_up(4096u64, 4096), 1);
        assert_eq!(div_round_up(4097u64, 4096), 2);
        assert_eq!(div_round_up(0u64, 4096), 0);
        assert_eq!(div_round_up(5u32, 0), u32::MAX);
        assert_eq!(div_round_up(u64::MAX, 4096), (u64::MAX >> 12) + 1);
    }
}
