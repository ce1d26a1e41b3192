//! Verification of one row's draft: standard speculative sampling.
//!
//! Left to right, draft token d_k (drawn from q_k) is accepted with
//! probability min(1, p_k(d_k) / q_k(d_k)), where p_k is the target's
//! distribution at the verify row before it. The first rejection emits a
//! replacement drawn from normalise(max(0, p_k − q_k)) and ends the round; if
//! every draft stands, a bonus is drawn from the target's last row. The
//! emitted tokens are then distributed exactly as plain sampling from the
//! target would produce them. An accepted stop token ends the round with no
//! bonus, because nothing may follow it.
//!
//! Random draws, all from the row's own [`Sampler`] stream, happen only
//! where an outcome is uncertain, in this order:
//! 1. for each k = 1..ℓ: one uniform for the accept test iff
//!    0 < p_k(d_k) < q_k(d_k) (a token the target cannot emit is rejected,
//!    one at least as likely under p as under q is accepted, without a draw);
//! 2. at the first rejection: one draw for the replacement iff the residual
//!    has more than one token;
//! 3. after ℓ acceptances with no stop token: one draw for the bonus iff the
//!    last target row has more than one token.
//!
//! At temperature 0 every target row is a point mass, so nothing is drawn:
//! drafts are accepted iff they equal the argmax, and the replacement or
//! bonus is the argmax.

use super::{Draft, TokenDist};
use crate::engine::sampler::Sampler;

#[cfg(test)]
mod lossless;

/// The outcome of verifying one row's draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// How many draft tokens stand.
    pub accepted: usize,
    /// The accepted draft tokens, then the replacement or bonus token unless
    /// an accepted stop token ended the round. Never empty when at least one
    /// target row was given.
    pub tokens: Vec<u32>,
}

/// Verifies the first `targets.len() - 1` tokens of `draft`.
///
/// `targets[k]` is the target's distribution after the anchor and draft
/// tokens d_1..d_k (so `targets[0]` judges d_1 and the last row gives the
/// bonus); build it with the row's sampling parameters
/// ([`Sampler::distribution`]) so it is what plain sampling would draw from.
/// `is_stop` says whether a token ends the row (EOS).
///
/// # Panics
/// If `targets` is empty or has more rows than `draft.len() + 1`: the target
/// cannot have scored positions that were never drafted.
pub fn verify(
    targets: &[TokenDist],
    draft: &Draft,
    is_stop: impl Fn(u32) -> bool,
    sampler: &mut Sampler,
) -> Verdict {
    assert!(
        !targets.is_empty() && targets.len() <= draft.len() + 1,
        "{} target rows for a draft of {} tokens",
        targets.len(),
        draft.len()
    );
    let len = targets.len() - 1;
    let mut tokens = Vec::with_capacity(len + 1);
    for (k, (&d, q)) in draft
        .tokens()
        .iter()
        .zip(draft.dists())
        .take(len)
        .enumerate()
    {
        let p = &targets[k];
        if !accepts(p, q, d, sampler) {
            tokens.push(draw(&residual(p, q), sampler));
            return Verdict {
                accepted: k,
                tokens,
            };
        }
        tokens.push(d);
        if is_stop(d) {
            return Verdict {
                accepted: k + 1,
                tokens,
            };
        }
    }
    tokens.push(draw(&targets[len], sampler));
    Verdict {
        accepted: len,
        tokens,
    }
}

/// The accept test for draft token `d`: true with probability
/// min(1, p(d) / q(d)), drawing a uniform only when that is strictly
/// between 0 and 1.
fn accepts(p: &TokenDist, q: &TokenDist, d: u32, sampler: &mut Sampler) -> bool {
    let (pd, qd) = (p.prob(d), q.prob(d));
    if pd <= 0.0 {
        return false;
    }
    if pd >= qd {
        return true;
    }
    sampler.uniform() < pd / qd
}

/// normalise(max(0, p − q)), the distribution of the replacement token.
///
/// When that has no mass, p itself is returned. Zero residual mass means
/// p ≤ q everywhere, and as both sum to 1, p = q: then every accept test
/// passes without a draw (p(d) >= q(d)), so a rejection is reachable only
/// through rounding (p(d) a few ulps below q(d) and the uniform landing in
/// that sliver). Whatever is emitted on such an event moves the output
/// distribution by no more than the event's probability, i.e. by rounding
/// error; drawing from p keeps the token inside the target's support (its
/// top-k and top-p cuts) and is what plain sampling would have done here.
fn residual(p: &TokenDist, q: &TokenDist) -> TokenDist {
    // q by id for binary search: linear scans would make two
    // vocabulary-sized distributions cost vocabulary² here.
    let mut q_by_id = q.entries().to_vec();
    q_by_id.sort_unstable_by_key(|e| e.0);
    let q_of = |t: u32| {
        q_by_id
            .binary_search_by_key(&t, |e| e.0)
            .map_or(0.0, |i| q_by_id[i].1)
    };
    let weights = p
        .entries()
        .iter()
        .map(|&(t, pt)| (t, (pt - q_of(t)).max(0.0)))
        .collect();
    // The weights are finite, >= 0 and on p's distinct ids, so zero mass is
    // the only way this can fail.
    TokenDist::from_weights(weights).unwrap_or_else(|_| p.clone())
}

/// A token from `dist`, drawing only when it has more than one token.
fn draw(dist: &TokenDist, sampler: &mut Sampler) -> u32 {
    dist.as_point().unwrap_or_else(|| sampler.sample_from(dist))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sampler::SamplingParams;

    const EOS: u32 = 99;

    fn sampler(temperature: f32) -> Sampler {
        Sampler::new(SamplingParams {
            temperature,
            top_p: 1.0,
            top_k: 0,
            seed: 5,
        })
    }

    fn points(tokens: &[u32]) -> Vec<TokenDist> {
        tokens.iter().map(|&t| TokenDist::point(t)).collect()
    }

    fn deterministic_draft(tokens: &[u32]) -> Draft {
        let mut d = Draft::default();
        for &t in tokens {
            d.push(t, 0.9, TokenDist::point(t));
        }
        d
    }

    fn dist(w: &[(u32, f64)]) -> TokenDist {
        TokenDist::from_weights(w.to_vec()).unwrap()
    }

    /// True when `s` has drawn nothing since it was made like `sampler(t)`.
    fn untouched(mut s: Sampler, t: f32) -> bool {
        s.uniform() == sampler(t).uniform()
    }

    #[test]
    fn greedy_keeps_the_matching_prefix_then_takes_the_argmax() {
        let mut s = sampler(0.0);
        let v = verify(
            &points(&[5, 6, 7, 8]),
            &deterministic_draft(&[5, 6, 9]),
            |t| t == EOS,
            &mut s,
        );
        assert_eq!(
            v,
            Verdict {
                accepted: 2,
                tokens: vec![5, 6, 7]
            }
        );
        assert!(untouched(s, 0.0), "temperature 0 draws nothing");
    }

    #[test]
    fn a_fully_accepted_draft_earns_the_bonus() {
        let mut s = sampler(0.0);
        let v = verify(
            &points(&[5, 6, 7, 8]),
            &deterministic_draft(&[5, 6, 7]),
            |t| t == EOS,
            &mut s,
        );
        assert_eq!(
            v,
            Verdict {
                accepted: 3,
                tokens: vec![5, 6, 7, 8]
            }
        );
    }

    #[test]
    fn only_the_verified_prefix_is_judged() {
        let mut s = sampler(0.0);
        let v = verify(
            &points(&[5, 6]),
            &deterministic_draft(&[5, 1, 1]),
            |t| t == EOS,
            &mut s,
        );
        assert_eq!(
            v,
            Verdict {
                accepted: 1,
                tokens: vec![5, 6]
            }
        );
    }

    #[test]
    fn an_accepted_stop_token_ends_the_round_without_bonus() {
        let mut s = sampler(0.0);
        let v = verify(
            &points(&[5, EOS, 7]),
            &deterministic_draft(&[5, EOS]),
            |t| t == EOS,
            &mut s,
        );
        assert_eq!(
            v,
            Verdict {
                accepted: 2,
                tokens: vec![5, EOS]
            }
        );
    }

    #[test]
    fn no_draft_is_plain_sampling_from_the_anchor_row() {
        let p0 = dist(&[(1, 0.2), (2, 0.5), (3, 0.3)]);
        for seed_shift in 0..20 {
            let mut a = sampler(1.0);
            let mut b = sampler(1.0);
            for _ in 0..seed_shift {
                a.uniform();
                b.uniform();
            }
            let v = verify(
                std::slice::from_ref(&p0),
                &Draft::default(),
                |_| false,
                &mut a,
            );
            assert_eq!(v.tokens, vec![b.sample_from(&p0)]);
            assert_eq!(v.accepted, 0);
        }
    }

    #[test]
    fn accept_tests_draw_only_when_the_outcome_is_uncertain() {
        let q = dist(&[(1, 0.5), (2, 0.5)]);
        let more_likely = dist(&[(1, 0.7), (2, 0.3)]);
        let mut s = sampler(1.0);
        assert!(accepts(&more_likely, &q, 1, &mut s));
        assert!(!accepts(&dist(&[(2, 1.0)]), &q, 1, &mut s));
        assert!(untouched(s.clone(), 1.0), "p >= q and p = 0 draw nothing");
        // p(2)/q(2) = 0.6: over many trials the rate matches and each draws.
        let n = 20_000;
        let hits = (0..n)
            .filter(|_| accepts(&more_likely, &q, 2, &mut s))
            .count();
        assert!((hits as f64 / n as f64 - 0.6).abs() < 0.015, "{hits}");
        assert!(!untouched(s, 1.0));
    }

    #[test]
    fn the_residual_keeps_the_target_excess() {
        let p = dist(&[(0, 0.5), (1, 0.3), (2, 0.2)]);
        let q = dist(&[(0, 0.2), (1, 0.6), (3, 0.2)]);
        let r = residual(&p, &q);
        assert_eq!(r.entries().iter().map(|e| e.0).collect::<Vec<_>>(), [0, 2]);
        assert!((r.prob(0) - 0.6).abs() < 1e-12 && (r.prob(2) - 0.4).abs() < 1e-12);
        // Against a deterministic draft the residual is p without the draft.
        let r = residual(&p, &TokenDist::point(0));
        assert!((r.prob(1) - 0.6).abs() < 1e-12 && r.prob(0) == 0.0);
    }

    #[test]
    fn a_residual_without_mass_falls_back_to_the_target() {
        let p = dist(&[(0, 0.25), (1, 0.75)]);
        assert_eq!(residual(&p, &p), p);
    }

    #[test]
    #[should_panic(expected = "3 target rows for a draft of 1 tokens")]
    fn more_target_rows_than_drafts_is_a_caller_bug() {
        verify(
            &points(&[1, 2, 3]),
            &deterministic_draft(&[1]),
            |_| false,
            &mut sampler(0.0),
        );
    }
}
