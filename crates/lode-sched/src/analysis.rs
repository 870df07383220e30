//! The probability models behind the scheduler's verification rules, as code, so
//! that tests compare simulations with the same expressions the design document
//! derives (`docs/design/lode-sched.md`, "False acceptance").
//!
//! Floating point is fine here: these are analysis figures, never amounts.

/// Long-run behaviour of an intermittent cheater under adaptive replication.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheaterRates {
    /// Wrong results accepted per result the cheater returns.
    pub far_per_result: f64,
    /// Share of the cheater's wrong results that are accepted.
    pub accepted_per_wrong: f64,
    /// Expected results per cycle (rebuild trust, cheat until caught).
    pub results_per_cycle: f64,
    /// Expected wrong results accepted per cycle.
    pub false_per_cycle: f64,
}

/// Intermittent cheater: honest while untrusted (it rebuilds CV from 0 to `t`
/// with `t` verified results), then wrong with probability `e` on every result
/// while trusted. A result is checked (compared with other replicas) with
/// probability `p_c = v + (1 − v)/min(c, cap)` at CV `c`, where `v` is the share of
/// its results that are verification replicas of other nodes' units (always
/// checked). A checked wrong result resets CV to 0; a checked right one raises it.
///
/// With `s_k = (1 − e)^k` the probability of reaching CV `t + k`:
/// * results per cycle `U = t + Σ_k s_k / p_{t+k}`
/// * false accepts per cycle `F = Σ_k s_k · e · (1 − v)(1 − 1/c)/p_{t+k}`
/// * `FAR = F / U`; wrong results per cycle `W = Σ_k s_k · e / p_{t+k}`.
///
/// Summed numerically until `s_k < 1e-15` (exact to that precision).
pub fn intermittent_cheater(t: u32, e: f64, v: f64, cap: u32) -> CheaterRates {
    assert!(e > 0.0 && e <= 1.0 && (0.0..=1.0).contains(&v) && t >= 1);
    let mut u_sum = f64::from(t);
    let (mut f_sum, mut w_sum) = (0.0, 0.0);
    let mut s = 1.0;
    let mut k: u64 = 0;
    while s > 1e-15 {
        let c = (u64::from(t) + k).min(u64::from(cap.max(1))) as f64;
        let primary_unchecked = (1.0 - v) * (1.0 - 1.0 / c);
        let p = 1.0 - primary_unchecked;
        u_sum += s / p;
        f_sum += s * e * primary_unchecked / p;
        w_sum += s * e / p;
        s *= 1.0 - e;
        k += 1;
    }
    CheaterRates {
        far_per_result: f_sum / u_sum,
        accepted_per_wrong: f_sum / w_sum,
        results_per_cycle: u_sum,
        false_per_cycle: f_sum,
    }
}

/// Closed form of [`intermittent_cheater`] for `v = 0`, no cap:
/// `FAR = e(1 + (t − 2)e) / (1 − e + t·e(1 + e))`.
pub fn intermittent_cheater_closed_form(t: u32, e: f64) -> f64 {
    let t = f64::from(t);
    e * (1.0 + (t - 2.0) * e) / (1.0 - e + t * e * (1.0 + e))
}

/// Outcome probabilities of a unit's replica race.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Race {
    /// Colluders reach the quorum first: a wrong result is accepted.
    pub wrong: f64,
    /// Honest nodes reach the quorum first.
    pub right: f64,
    /// Neither within `max_replicas`: the unit fails.
    pub fail: f64,
}

/// The replica race of one unit under quorum `q` and at most `max` replicas.
/// Honest results all agree; colluders' results all agree (on a wrong output).
/// Starting from `c0` colluder and `h0` honest results, each further replica is a
/// colluder's with probability `p(c)` where `c` is the number of colluder replicas
/// so far and `h` the number of honest ones. (Issuing replicas in parallel does not change the outcome: the scheduler
/// issues only `q − largest agreement − in flight` more, so both sides can never
/// reach `q` together.)
pub fn race(q: u8, max: u8, c0: u8, h0: u8, p: &dyn Fn(u8, u8) -> f64) -> Race {
    fn go(q: u8, max: u8, c: u8, h: u8, p: &dyn Fn(u8, u8) -> f64) -> Race {
        if c >= q {
            return Race {
                wrong: 1.0,
                right: 0.0,
                fail: 0.0,
            };
        }
        if h >= q {
            return Race {
                wrong: 0.0,
                right: 1.0,
                fail: 0.0,
            };
        }
        if c + h >= max {
            return Race {
                wrong: 0.0,
                right: 0.0,
                fail: 1.0,
            };
        }
        let pc = p(c, h).clamp(0.0, 1.0);
        let a = go(q, max, c + 1, h, p);
        let b = go(q, max, c, h + 1, p);
        Race {
            wrong: pc * a.wrong + (1.0 - pc) * b.wrong,
            right: pc * a.right + (1.0 - pc) * b.right,
            fail: pc * a.fail + (1.0 - pc) * b.fail,
        }
    }
    go(q, max, c0, h0, p)
}

/// Closed form of the race without group limits, from scratch, `max ≥ 2q − 1`:
/// `P(wrong) = Σ_{k=0}^{q−1} C(q−1+k, k) f^q (1 − f)^k` (negative binomial: the
/// q-th colluder replica comes before the q-th honest one).
pub fn collusion_closed_form(q: u8, f: f64) -> f64 {
    let q = u32::from(q);
    (0..q)
        .map(|k| binomial(q - 1 + k, k) * f.powi(q as i32) * (1.0 - f).powi(k as i32))
        .sum()
}

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// Colluder draw probability with the distinct-group rule: colluders (a share `f`
/// of the requests) spread evenly over `groups` operator/IP groups; after `c` of
/// their groups hold a replica, the next replica goes to a colluder with
/// probability `f(G − c)/G ÷ (1 − f·c/G)` (the used groups are no longer eligible;
/// the honest nodes used are negligible in a large network). `groups = None`:
/// every colluder is its own group (disguised), `p = f`.
pub fn colluder_draw(f: f64, groups: Option<u32>) -> impl Fn(u8, u8) -> f64 {
    move |c: u8, _h: u8| match groups {
        None => f,
        Some(g) => {
            let (g, c) = (f64::from(g), f64::from(c));
            if c >= g {
                0.0
            } else {
                f * (g - c) / g / (1.0 - f * c / g)
            }
        }
    }
}

/// The same draw in a network of `nodes` nodes, `colluders` of them colluding:
/// the `c` colluders (or colluder groups) and `h` honest nodes already holding a
/// replica are excluded, so `p(c, h) = C_eligible / (C_eligible + (nodes −
/// colluders − h))` with `C_eligible = colluders − c` (own groups) or
/// `colluders·(G − c)/G` (`G` shared groups). Tends to [`colluder_draw`] as the
/// network grows.
pub fn colluder_draw_finite(
    nodes: u64,
    colluders: u64,
    groups: Option<u32>,
) -> impl Fn(u8, u8) -> f64 {
    move |c: u8, h: u8| {
        let (n_c, n_h) = (colluders as f64, (nodes - colluders) as f64);
        let eligible_c = match groups {
            None => (n_c - f64::from(c)).max(0.0),
            Some(g) => {
                let g = f64::from(g);
                (n_c * (g - f64::from(c)) / g).max(0.0)
            }
        };
        let eligible_h = (n_h - f64::from(h)).max(0.0);
        if eligible_c + eligible_h <= 0.0 {
            0.0
        } else {
            eligible_c / (eligible_c + eligible_h)
        }
    }
}

/// False acceptance with colluders making up a share `f` of requests.
/// * Full quorum: `race(0, 0)`.
/// * Adaptive trust, colluders never trusted (they rarely are, see
///   [`expected_results_to_trust`]): a colluder's first replica is always
///   replicated, an honest node's only with probability `r` (untrusted, or
///   spot-checked): `FAR = f·race(1, 0) + (1 − f)·r·race(0, 1)`.
pub fn collusion_far(q: u8, max: u8, f: f64, groups: Option<u32>, adaptive_r: Option<f64>) -> f64 {
    let p = colluder_draw(f, groups);
    match adaptive_r {
        None => race(q, max, 0, 0, &p).wrong,
        Some(r) => f * race(q, max, 1, 0, &p).wrong + (1.0 - f) * r * race(q, max, 0, 1, &p).wrong,
    }
}

/// Like [`collusion_far`], conditioning on who holds the first replica, for any
/// draw model `p` ([`colluder_draw`] or [`colluder_draw_finite`]): `fp` is the
/// colluders' share of first replicas (≈ `f`; more when colluders share groups,
/// because a node that may not take the oldest awaiting unit takes a fresh one).
/// Returns (P(wrong accepted), P(unit fails)):
/// `fp·race(1, 0) + (1 − fp)·r·race(0, 1)`, `r = 1` under full quorum.
pub fn collusion_rates(
    q: u8,
    max: u8,
    fp: f64,
    p: &dyn Fn(u8, u8) -> f64,
    adaptive_r: Option<f64>,
) -> (f64, f64) {
    let r = adaptive_r.unwrap_or(1.0);
    let c = race(q, max, 1, 0, p);
    let h = race(q, max, 0, 1, p);
    (
        fp * c.wrong + (1.0 - fp) * r * h.wrong,
        fp * c.fail + (1.0 - fp) * r * h.fail,
    )
}

/// Expected results before a node whose results are valid independently with
/// probability `w` first strings together `t` valid ones: `(1 − w^t)/((1 − w)w^t)`.
pub fn expected_results_to_trust(w: f64, t: u32) -> f64 {
    let wt = w.powi(t as i32);
    (1.0 - wt) / ((1.0 - w) * wt)
}

/// Extra work of adaptive replication (quorum 2) on an honest, stable network
/// where every node runs `n` units: about `sqrt(t² + 4n) / (2n)`.
///
/// Each checked unit raises two nodes' CV, so `dc/dn ≈ 2/c` and `c ≈ sqrt(t² + 4n)`;
/// trust costs about `t/2` extra replicas per node, then checks cost
/// `∫ dn / c = (sqrt(t² + 4n) − t)/2`.
pub fn adaptive_overhead(t: u32, n: f64) -> f64 {
    let t = f64::from(t);
    (t * t + 4.0 * n).sqrt() / (2.0 * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheater_series_matches_closed_form() {
        for &(t, e) in &[(10, 0.1), (10, 0.5), (5, 0.2), (20, 0.05)] {
            let a = intermittent_cheater(t, e, 0.0, u32::MAX).far_per_result;
            let b = intermittent_cheater_closed_form(t, e);
            assert!((a - b).abs() < 1e-9, "t={t} e={e}: {a} vs {b}");
        }
        let r = intermittent_cheater(10, 0.1, 0.0, u32::MAX);
        assert!((r.far_per_result - 0.09).abs() < 1e-12);
        assert!((r.accepted_per_wrong - 18.0 / 19.0).abs() < 1e-12);
        // Verification work lowers the rate; a spot-check floor lowers it more.
        assert!(intermittent_cheater(10, 0.1, 0.2, u32::MAX).far_per_result < 0.09);
        assert!(intermittent_cheater(10, 0.1, 0.0, 10).far_per_result < 0.09);
    }

    #[test]
    fn race_matches_closed_form_and_sums_to_one() {
        for q in 1..=4u8 {
            for &f in &[0.05, 0.2, 0.5] {
                let r = race(q, 2 * q - 1, 0, 0, &|_, _| f);
                assert!((r.wrong + r.right + r.fail - 1.0).abs() < 1e-12);
                assert!(r.fail.abs() < 1e-12);
                assert!((r.wrong - collusion_closed_form(q, f)).abs() < 1e-12);
            }
        }
        // q = 2: f²(3 − 2f).
        assert!((collusion_closed_form(2, 0.3) - 0.09 * 2.4).abs() < 1e-12);
        // One colluder group can hold one replica: never a quorum of 2.
        assert_eq!(collusion_far(2, 5, 0.3, Some(1), None), 0.0);
        assert_eq!(collusion_far(3, 7, 0.3, Some(2), None), 0.0);
        assert!(collusion_far(2, 5, 0.3, Some(2), None) < collusion_far(2, 5, 0.3, None, None));
    }

    #[test]
    fn overhead_model() {
        assert!(adaptive_overhead(10, 1000.0) < 0.04);
        assert!(adaptive_overhead(10, 50.0) > 0.15);
        assert!((expected_results_to_trust(0.5, 1) - 2.0).abs() < 1e-12);
    }
}
