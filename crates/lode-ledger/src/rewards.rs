//! Integer reward arithmetic: exact `floor(a * b / c)` with a 256-bit
//! intermediate, the pro-rata split with carried dust, and the Gini
//! coefficient used by `lode ledger fairness`.
//!
//! ## Rounding rule
//! An epoch distributes `available = emission + dust_carried_in`. Each node
//! with effective weight `w_i` (sum `W`) receives `floor(available * w_i / W)`.
//! The remainder `available - sum(floor(...))` is strictly less than the
//! number of rewarded nodes (each floor loses < 1 base unit) and is carried to
//! the next epoch as dust: nothing is lost and nothing is created.

use crate::amount::Amount;

/// `floor(a * b / c)` computed exactly; `None` if `c == 0` or the quotient
/// does not fit in 128 bits.
pub fn mul_div_floor(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    if let Some(p) = a.checked_mul(b) {
        return Some(p / c);
    }
    let (hi, lo) = mul_wide(a, b);
    if hi >= c {
        return None;
    }
    // Long division of the 256-bit (hi, lo) by c, one bit at a time; the
    // running remainder r < c always, so (carry, r) holds r * 2 + bit exactly.
    let mut r = hi;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = r >> 127;
        r = (r << 1) | ((lo >> i) & 1);
        if carry == 1 || r >= c {
            r = r.wrapping_sub(c);
            q |= 1 << i;
        }
    }
    Some(q)
}

/// Full 256-bit product of two u128 as (high, low).
pub fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & M);
    let (b1, b0) = (b >> 64, b & M);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // middle = (p00 >> 64) + low64(p01) + low64(p10) < 3 * 2^64: no overflow.
    let middle = (p00 >> 64) + (p01 & M) + (p10 & M);
    let lo = (middle << 64) | (p00 & M);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (middle >> 64);
    (hi, lo)
}

/// Splits `available` pro rata to `weights`, flooring each share.
/// Returns the shares (same order) and the undistributed dust.
/// With `W = sum(weights) == 0` nothing is distributed.
pub fn split_pro_rata(available: Amount, weights: &[u128]) -> Option<(Vec<Amount>, Amount)> {
    let mut total: u128 = 0;
    for w in weights {
        total = total.checked_add(*w)?;
    }
    if total == 0 {
        return Some((vec![0; weights.len()], available));
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut paid: u128 = 0;
    for w in weights {
        let s = mul_div_floor(available, *w, total)?;
        paid = paid.checked_add(s)?;
        shares.push(s);
    }
    Some((shares, available.checked_sub(paid)?))
}

/// Gini coefficient of a distribution of non-negative amounts, in [0, 1)
/// (0 = everyone received the same). Computed as
/// `G = 2 * sum(i * x_(i)) / (n * sum(x)) - (n + 1) / n` over the ascending
/// order statistics `x_(1..n)`. This is a statistic for display, so it is a
/// float; no token amount is derived from it. Returns 0 for empty or all-zero input.
pub fn gini(values: &[Amount]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let mut v: Vec<Amount> = values.to_vec();
    v.sort_unstable();
    let total: f64 = v.iter().map(|x| *x as f64).sum();
    if total == 0.0 {
        return 0.0;
    }
    let weighted: f64 = v
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * (*x as f64))
        .sum();
    let n = n as f64;
    let g = 2.0 * weighted / (n * total) - (n + 1.0) / n;
    g.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (hi, lo) <= (hi2, lo2) for 256-bit values.
    fn le256(a: (u128, u128), b: (u128, u128)) -> bool {
        a.0 < b.0 || (a.0 == b.0 && a.1 <= b.1)
    }

    fn add256(a: (u128, u128), b: u128) -> (u128, u128) {
        let (lo, c) = a.1.overflowing_add(b);
        (a.0 + u128::from(c), lo)
    }

    #[test]
    fn known_values() {
        assert_eq!(mul_div_floor(10, 10, 3), Some(33));
        assert_eq!(
            mul_div_floor(u128::MAX, u128::MAX, u128::MAX),
            Some(u128::MAX)
        );
        assert_eq!(mul_div_floor(u128::MAX, 2, 2), Some(u128::MAX));
        assert_eq!(mul_div_floor(u128::MAX, 3, 2), None);
        assert_eq!(mul_div_floor(1, 1, 0), None);
        assert_eq!(mul_wide(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
    }

    proptest! {
        #[test]
        fn mul_div_is_exact_floor(a in any::<u128>(), b in any::<u128>(), c in 1..=u128::MAX) {
            let p = mul_wide(a, b);
            match mul_div_floor(a, b, c) {
                Some(q) => {
                    // q * c <= a * b < (q + 1) * c
                    let qc = mul_wide(q, c);
                    prop_assert!(le256(qc, p));
                    let next = add256(qc, c);
                    prop_assert!(!le256(next, p));
                }
                None => {
                    // The quotient needs more than 128 bits: a * b >= 2^128 * c.
                    prop_assert!(p.0 >= c);
                }
            }
        }

        #[test]
        fn split_conserves_and_dust_is_small(
            available in 0u128..(1u128 << 100),
            weights in proptest::collection::vec(0u128..(1u128 << 90), 0..40),
        ) {
            let (shares, dust) = split_pro_rata(available, &weights).unwrap();
            let paid: u128 = shares.iter().sum();
            prop_assert_eq!(paid + dust, available);
            let nonzero = weights.iter().filter(|w| **w > 0).count() as u128;
            if nonzero > 0 {
                prop_assert!(dust < nonzero.max(1), "dust {} with {} nodes", dust, nonzero);
            } else {
                prop_assert_eq!(dust, available);
            }
            // Monotone: more weight never earns less.
            for i in 0..weights.len() {
                for j in 0..weights.len() {
                    if weights[i] >= weights[j] {
                        prop_assert!(shares[i] >= shares[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn gini_known_values() {
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[5, 5, 5, 5]), 0.0);
        // One of four holds everything: G = (n - 1) / n = 0.75.
        assert!((gini(&[0, 0, 0, 100]) - 0.75).abs() < 1e-12);
        assert!((gini(&[1, 2, 3, 4]) - 0.25).abs() < 1e-12);
    }
}
