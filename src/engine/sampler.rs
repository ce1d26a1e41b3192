//! Token selection: greedy, temperature, top-k and top-p (nucleus).
//!
//! Temperature 0 is greedy (argmax, lowest id on ties) and draws nothing from
//! the RNG. Otherwise candidates are ordered by (logit desc, id asc), cut by
//! top-k then top-p, and one uniform draw picks a token, so a row's output is
//! a function of its logits and its seed alone.
//!
//! [`SamplingParams::distribution`] is the one definition of what is sampled:
//! [`Sampler::sample`] draws from it, and speculative verification
//! ([`crate::spec`]) reads target and draft probabilities from it.

use super::rng::Rng;
use crate::spec::TokenDist;

/// Per-row sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// In (0, 1]; 1 = no nucleus cut.
    pub top_p: f32,
    /// 0 = no top-k cut.
    pub top_k: u32,
    pub seed: u64,
}

/// Mixed into a row's seed for the stream its drafter draws from, so draft
/// draws and the target's acceptance draws are independent.
const DRAFT_STREAM: u64 = 0xD4AF_7D4A_F7D4_AF7D;

impl SamplingParams {
    /// The same settings on the row's draft stream (a different seed).
    pub fn for_drafts(&self) -> SamplingParams {
        SamplingParams {
            seed: self.seed ^ DRAFT_STREAM,
            ..*self
        }
    }

    /// The exact distribution [`Sampler::sample`] draws from: greedy is a
    /// point mass at [`argmax`]; otherwise softmax at the temperature over
    /// candidates ordered by (logit desc, id asc), cut by top-k, then cut to
    /// the smallest prefix whose mass reaches top-p, renormalised. NaN
    /// logits are never candidates. Speculative verification reads target
    /// and draft distributions from here, so there is one definition.
    pub fn distribution(&self, logits: &[f32]) -> TokenDist {
        if self.temperature <= 0.0 {
            return TokenDist::point(argmax(logits));
        }
        let mut cand: Vec<(f32, u32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (l, i as u32))
            .collect();
        let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = self.top_k as usize;
        if k > 0 && k < cand.len() {
            cand.select_nth_unstable_by(k - 1, order);
            cand.truncate(k);
        }
        cand.sort_unstable_by(order);
        let inv_t = 1.0 / self.temperature as f64;
        let max = cand.first().map_or(0.0, |c| c.0 as f64);
        let mut weights: Vec<(u32, f64)> = cand
            .iter()
            .map(|c| (c.1, ((c.0 as f64 - max) * inv_t).exp()))
            .collect();
        let total: f64 = weights.iter().map(|w| w.1).sum();
        // Nucleus: the smallest prefix whose mass reaches top_p.
        if self.top_p < 1.0 {
            let mut acc = 0.0;
            if let Some(last) = weights.iter().position(|w| {
                acc += w.1 / total;
                acc >= self.top_p as f64
            }) {
                weights.truncate(last + 1);
            }
        }
        TokenDist::from_ordered_weights(weights)
    }
}

/// One row's sampler state.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        Sampler {
            params,
            rng: Rng::new(params.seed),
        }
    }

    /// See [`SamplingParams::distribution`].
    pub fn distribution(&self, logits: &[f32]) -> TokenDist {
        self.params.distribution(logits)
    }

    /// Picks the next token from a row of logits: greedy draws nothing,
    /// otherwise exactly one uniform draw from [`Self::distribution`].
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let dist = self.distribution(logits);
        if self.params.temperature <= 0.0 {
            return dist.entries()[0].0;
        }
        self.sample_from(&dist)
    }

    /// Draws from `dist` with exactly one uniform draw (even for a point
    /// mass, so a row's draw count does not depend on the logits): the
    /// first entry, in `dist`'s order, at which the cumulative mass exceeds
    /// `u * total`.
    pub fn sample_from(&mut self, dist: &TokenDist) -> u32 {
        let entries = dist.entries();
        let total: f64 = entries.iter().map(|e| e.1).sum();
        let mut target = self.rng.next_f64() * total;
        for &(token, p) in entries {
            target -= p;
            if target < 0.0 {
                return token;
            }
        }
        // Rounding left a sliver past the last entry: it belongs to the last.
        entries[entries.len() - 1].0
    }

    /// One uniform draw in `[0, 1)` from this row's stream, for decisions
    /// such as speculative acceptance that are not a token draw.
    pub fn uniform(&mut self) -> f64 {
        self.rng.next_f64()
    }
}

/// Index of the largest logit (lowest index on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, top_k: u32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            top_k,
            seed,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(params(0.0, 1.0, 0, 1));
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_seed() {
        for seed in 0..20 {
            let mut s = Sampler::new(params(1.5, 1.0, 1, seed));
            assert_eq!(s.sample(&[0.0, 0.5, 2.0, 1.9]), 2);
        }
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // Probabilities ~0.64, 0.24, 0.09, 0.03: top_p 0.5 keeps only the first.
        let logits = [3.0, 2.0, 1.0, 0.0];
        for seed in 0..50 {
            let mut s = Sampler::new(params(1.0, 0.5, 0, seed));
            assert_eq!(s.sample(&logits), 0);
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_is_seeded() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut s = Sampler::new(params(1.0, 1.0, 0, 42));
        let n = 20_000;
        let ones = (0..n).filter(|_| s.sample(&logits) == 1).count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "got {frac}");
        let draw = |seed| {
            let mut s = Sampler::new(params(0.8, 0.9, 5, seed));
            (0..32)
                .map(|_| s.sample(&[0.3, 0.1, 0.2, 0.5, 0.4]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    #[test]
    fn draws_match_the_sampler_before_distributions_existed() {
        // Recorded from the sampler as it was before `distribution` was split
        // out: the walk order and draw count are unchanged, so seeded rows
        // produce the same text as before.
        let logits: Vec<f32> = (0..50)
            .map(|i| ((i * 37 % 17) as f32) * 0.31 - 2.0)
            .collect();
        let expected: [(f32, f32, u32, [u32; 40]); 3] = [
            (
                0.7,
                0.9,
                0,
                [
                    45, 5, 22, 28, 10, 5, 4, 5, 45, 39, 5, 45, 10, 39, 45, 11, 45, 28, 22, 39, 28,
                    22, 11, 5, 45, 28, 28, 28, 22, 45, 11, 16, 45, 44, 33, 28, 28, 11, 28, 22,
                ],
            ),
            (
                1.3,
                1.0,
                8,
                [
                    45, 5, 5, 28, 39, 45, 16, 45, 45, 22, 45, 45, 39, 22, 45, 11, 45, 28, 5, 22,
                    28, 5, 11, 45, 45, 28, 28, 28, 5, 45, 11, 39, 45, 16, 39, 28, 28, 11, 28, 5,
                ],
            ),
            (
                1.0,
                0.6,
                20,
                [
                    45, 45, 5, 28, 39, 45, 39, 45, 45, 22, 45, 45, 39, 22, 45, 11, 45, 28, 5, 22,
                    11, 5, 11, 45, 45, 11, 28, 11, 45, 45, 11, 22, 45, 39, 22, 11, 28, 11, 28, 5,
                ],
            ),
        ];
        for (t, p, k, want) in expected {
            let mut s = Sampler::new(params(t, p, k, 77));
            let got: Vec<u32> = (0..40).map(|_| s.sample(&logits)).collect();
            assert_eq!(got, want, "temperature {t}, top_p {p}, top_k {k}");
        }
    }

    #[test]
    fn distribution_is_what_sample_draws_from() {
        let logits = [0.3f32, f32::NAN, 0.1, 0.2, 0.5, 0.4, 0.5];
        let p = params(0.8, 0.8, 5, 3);
        let dist = p.distribution(&logits);
        // Top-5 by (logit desc, id asc) is 4, 6, 5, 0, 3; the nucleus drops 3.
        let ids: Vec<u32> = dist.entries().iter().map(|e| e.0).collect();
        assert_eq!(ids, [4, 6, 5, 0]);
        let sum: f64 = dist.entries().iter().map(|e| e.1).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert_eq!(dist.prob(4), dist.prob(6), "equal logits, equal mass");
        let (mut a, mut b) = (Sampler::new(p), Sampler::new(p));
        for _ in 0..200 {
            assert_eq!(a.sample(&logits), b.sample_from(&dist));
        }
        let greedy = params(0.0, 1.0, 0, 3).distribution(&logits);
        assert_eq!(greedy.as_point(), Some(4));
    }

    #[test]
    fn an_infinite_logit_takes_all_the_mass() {
        let dist = params(1.0, 1.0, 0, 0).distribution(&[0.0, f32::INFINITY, 1.0]);
        assert_eq!(dist.as_point(), Some(1));
    }
}
