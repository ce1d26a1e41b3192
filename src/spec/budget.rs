//! The per-step verify budget: DSpark's hardware-aware prefix scheduler
//! (Algorithm 1), run synchronously with early stop.
//!
//! Row r's survival a_{r,j} = c_{r,1}·…·c_{r,j} estimates the chance that its
//! first j drafts are all accepted, so verifying ℓ_r drafts yields
//! 1 + Σ_{j≤ℓ_r} a_{r,j} tokens in expectation. With B the tokens in the
//! step, throughput is Θ = τ*·SPS(B), τ* the expected tokens over all rows.
//! Starting from anchors only, (row, position) pairs are admitted in
//! descending survival while Θ strictly rises; the first admission that does
//! not raise it ends the search.
//!
//! Invariants of the result: ℓ_r never exceeds row r's draft length nor
//! covers a position of zero survival, and every admitted pair's survival is
//! at least every unadmitted positive one's (a prefix of one global order).
//! The early stop is what keeps this lossless: c_{k+1} depends on draft
//! token k, so a search free to look past a drop in Θ would let a draft's
//! own value decide whether it is verified (DSpark appendix A). Ties are
//! broken by position, then row, so a row's later position never overtakes
//! an equal earlier one anywhere.
//!
//! A budget of all zeros means no row verifies a draft: the caller should
//! skip drafting the next step, as drafting then cannot pay for itself.

use super::sps::SpsTable;

/// Draft tokens to verify per row.
///
/// `confidences[r]` holds row r's conditional acceptance estimates, in
/// [0, 1] (calibrated; see [`super::calibration`]), one per draft position;
/// a row that did not draft has none. Every row verifies its anchor, so the
/// step holds `confidences.len()` anchors plus the admitted drafts plus
/// `other_tokens` (prefill chunks sharing the step), and SPS is looked up at
/// that total. Only decode rows add expected tokens.
pub fn plan(confidences: &[&[f32]], other_tokens: usize, sps: &SpsTable) -> Vec<usize> {
    let rows = confidences.len();
    let mut lens = vec![0; rows];
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new(); // (survival, position, row)
    for (r, cs) in confidences.iter().enumerate() {
        let mut survival = 1.0f64;
        for (j, &c) in cs.iter().enumerate() {
            // NaN is no evidence of acceptance: it counts as 0.
            survival *= if c.is_nan() {
                0.0
            } else {
                f64::from(c).clamp(0.0, 1.0)
            };
            // Survival never rises along j: once zero, the rest of the row is.
            if survival <= 0.0 {
                break;
            }
            pairs.push((survival, j + 1, r));
        }
    }
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut batch = rows + other_tokens;
    let mut expected = rows as f64;
    let mut best = expected * sps.steps_per_second(batch);
    for (survival, j, r) in pairs {
        batch += 1;
        expected += survival;
        let theta = expected * sps.steps_per_second(batch);
        if theta <= best {
            break;
        }
        best = theta;
        lens[r] = j;
    }
    lens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sps(points: &[(usize, f64)]) -> SpsTable {
        SpsTable::new(points.to_vec()).unwrap()
    }

    fn theta(confidences: &[&[f32]], lens: &[usize], t: &SpsTable) -> f64 {
        let mut expected = confidences.len() as f64;
        for (cs, &l) in confidences.iter().zip(lens) {
            let mut a = 1.0;
            for &c in &cs[..l] {
                a *= c as f64;
                expected += a;
            }
        }
        let batch = confidences.len() + lens.iter().sum::<usize>();
        expected * t.steps_per_second(batch)
    }

    #[test]
    fn stops_at_the_first_admission_that_does_not_pay() {
        // One row, survivals 0.9 at every position. Admitting one draft
        // costs half the step rate (1.9 · 0.5 < 1), so the search stops at
        // ℓ = 0, although four drafts would beat it (4.6 · 0.5 > 1).
        let c: &[f32] = &[0.9, 1.0, 1.0, 1.0];
        let t = sps(&[(1, 1.0), (2, 0.5), (5, 0.5)]);
        assert_eq!(plan(&[c], 0, &t), [0]);
        assert!(theta(&[c], &[4], &t) > theta(&[c], &[0], &t));
    }

    #[test]
    fn a_steeply_falling_step_rate_admits_nothing() {
        let rows: &[&[f32]] = &[&[0.95, 0.9], &[0.99], &[]];
        let t = sps(&[(3, 1.0), (4, 0.3), (6, 0.1)]);
        assert_eq!(plan(rows, 0, &t), [0, 0, 0]);
    }

    #[test]
    fn a_flat_step_rate_admits_every_position_that_can_survive() {
        let rows: &[&[f32]] = &[&[0.9, 0.8, 0.0, 0.7], &[0.01], &[], &[f32::NAN, 1.0]];
        assert_eq!(plan(rows, 0, &sps(&[(8, 2.0)])), [2, 1, 0, 0]);
    }

    #[test]
    fn admits_a_prefix_of_the_global_survival_order() {
        // Rate falls gently so only part of the drafts pay for themselves.
        let rows: &[&[f32]] = &[
            &[0.9, 0.9, 0.9, 0.9, 0.9],
            &[0.6, 0.9, 0.9],
            &[0.99, 0.5, 0.99, 0.99],
            &[0.3],
        ];
        let t = sps(&[(4, 1.0), (16, 0.5)]);
        let lens = plan(rows, 0, &t);
        assert_eq!(lens, [5, 1, 1, 0]);
        let survivals = |r: usize| {
            rows[r].iter().scan(1.0f64, |a, &c| {
                *a *= c as f64;
                Some(*a)
            })
        };
        let admitted_min = (0..4)
            .flat_map(|r| survivals(r).take(lens[r]))
            .fold(f64::INFINITY, f64::min);
        let rejected_max = (0..4)
            .flat_map(|r| survivals(r).skip(lens[r]))
            .fold(0.0, f64::max);
        assert!(
            admitted_min >= rejected_max,
            "{admitted_min} < {rejected_max}"
        );
        // One more draft anywhere would not have raised throughput.
        let base = theta(rows, &lens, &t);
        for r in 0..4 {
            if lens[r] < rows[r].len() {
                let mut more = lens.clone();
                more[r] += 1;
                assert!(theta(rows, &more, &t) <= base, "row {r}");
            }
        }
    }

    #[test]
    fn equal_survivals_go_by_position_then_row() {
        // Room for exactly two admissions (the third lowers the rate).
        let t = sps(&[(2, 1.0), (4, 1.0), (5, 0.8)]);
        // Row 0's position 2 ties with row 1's position 1: position first.
        let rows: &[&[f32]] = &[&[0.5, 1.0], &[0.5]];
        assert_eq!(plan(rows, 0, &t), [1, 1]);
        // Room for one: equal first positions go to the lower row.
        let t = sps(&[(2, 1.0), (3, 1.0), (4, 0.7)]);
        let rows: &[&[f32]] = &[&[0.5], &[0.5]];
        assert_eq!(plan(rows, 0, &t), [1, 0]);
    }

    #[test]
    fn other_tokens_in_the_step_move_the_lookup() {
        // The rate collapses beyond 10 tokens: two decode rows have room for
        // drafts alone, none beside an 8-token prefill chunk.
        let t = sps(&[(10, 1.0), (11, 0.1)]);
        let rows: &[&[f32]] = &[&[0.9, 0.9], &[0.9]];
        assert_eq!(plan(rows, 0, &t), [2, 1]);
        assert_eq!(plan(rows, 8, &t), [0, 0]);
    }

    #[test]
    fn no_rows_plan_nothing() {
        assert!(plan(&[], 5, &sps(&[(1, 1.0)])).is_empty());
    }
}
