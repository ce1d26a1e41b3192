//! Token selection: greedy, temperature, top-k and top-p (nucleus).
//!
//! Temperature 0 is greedy (argmax, lowest id on ties) and draws nothing from
//! the RNG. Otherwise candidates are ordered by (logit desc, id asc), cut by
//! top-k then top-p, and one uniform draw picks a token, so a row's output is
//! a function of its logits and its seed alone.

use super::rng::Rng;

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

    /// Picks the next token from a row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut cand: Vec<(f32, u32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (l, i as u32))
            .collect();
        let order = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = self.params.top_k as usize;
        if k > 0 && k < cand.len() {
            cand.select_nth_unstable_by(k - 1, order);
            cand.truncate(k);
        }
        cand.sort_unstable_by(order);
        let inv_t = 1.0 / self.params.temperature as f64;
        let max = cand.first().map_or(0.0, |c| c.0 as f64);
        let weights: Vec<f64> = cand
            .iter()
            .map(|c| ((c.0 as f64 - max) * inv_t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        // Nucleus: the smallest prefix whose mass reaches top_p.
        let mut keep = weights.len();
        if self.params.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, w) in weights.iter().enumerate() {
                acc += w / total;
                if acc >= self.params.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let kept: f64 = weights[..keep].iter().sum();
        let mut target = self.rng.next_f64() * kept;
        for (i, w) in weights[..keep].iter().enumerate() {
            target -= w;
            if target < 0.0 {
                return cand[i].1;
            }
        }
        cand[keep - 1].1
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
}
