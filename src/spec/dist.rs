//! A sparse probability distribution over token ids.
//!
//! Invariants, upheld by every constructor: at least one entry, ids distinct,
//! every probability finite and > 0, probabilities sum to 1 (up to rounding),
//! and entries in non-increasing probability order. That order is the order
//! [`Sampler::sample_from`](crate::engine::sampler::Sampler::sample_from)
//! walks, so one uniform draw maps to one token the same way everywhere.

use crate::engine::sampler::SamplingParams;

/// Why a list of weights is not a distribution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistError {
    #[error("weight {weight} of token {token} is not a finite number >= 0")]
    BadWeight { token: u32, weight: f64 },
    #[error("token {0} appears twice")]
    Duplicate(u32),
    #[error("the weights have no positive mass")]
    ZeroMass,
}

/// A distribution over token ids; see the module doc for its invariants.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDist {
    entries: Vec<(u32, f64)>,
}

impl TokenDist {
    /// All mass on `token`: a greedy target or a deterministic drafter.
    pub fn point(token: u32) -> TokenDist {
        TokenDist {
            entries: vec![(token, 1.0)],
        }
    }

    /// The distribution sampling with `params` draws from; the definition
    /// lives in [`SamplingParams::distribution`].
    pub fn from_logits(logits: &[f32], params: &SamplingParams) -> TokenDist {
        params.distribution(logits)
    }

    /// Normalises non-negative weights. Zero weights are dropped; entries are
    /// ordered by (probability desc, id asc).
    pub fn from_weights(weights: Vec<(u32, f64)>) -> Result<TokenDist, DistError> {
        if let Some(&(token, weight)) = weights.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0))
        {
            return Err(DistError::BadWeight { token, weight });
        }
        let mut entries = weights;
        entries.sort_unstable_by_key(|e| e.0);
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DistError::Duplicate(w[0].0));
        }
        entries.retain(|e| e.1 > 0.0);
        let total: f64 = entries.iter().map(|e| e.1).sum();
        if total <= 0.0 {
            return Err(DistError::ZeroMass);
        }
        for e in &mut entries {
            e.1 /= total;
        }
        entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(TokenDist { entries })
    }

    /// Builds from positive weights already in non-increasing order (the
    /// sampler's candidate order), keeping that order so seeded draws match
    /// the walk the sampler always did. Falls back to a point mass at the
    /// first candidate when the weights carry no finite positive mass (an
    /// infinite logit), and at token 0 when there are no candidates at all
    /// (as [`argmax`](crate::engine::sampler::argmax) does for an empty row).
    pub(crate) fn from_ordered_weights(weights: Vec<(u32, f64)>) -> TokenDist {
        let total: f64 = weights.iter().map(|e| e.1).sum();
        if !(total.is_finite() && total > 0.0) {
            return TokenDist::point(weights.first().map_or(0, |e| e.0));
        }
        let entries = weights
            .into_iter()
            .filter(|e| e.1 > 0.0)
            .map(|(t, w)| (t, w / total))
            .collect();
        TokenDist { entries }
    }

    /// Probability of `token` (0 outside the support). Linear in the support
    /// size, which is at most the vocabulary: cheaper than building the
    /// distribution in the first place.
    pub fn prob(&self, token: u32) -> f64 {
        self.entries
            .iter()
            .find(|e| e.0 == token)
            .map_or(0.0, |e| e.1)
    }

    /// The token, when all mass is on one token.
    pub fn as_point(&self) -> Option<u32> {
        match self.entries.as_slice() {
            [(t, _)] => Some(*t),
            _ => None,
        }
    }

    /// (token, probability) in draw order.
    pub fn entries(&self) -> &[(u32, f64)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_normalise_and_order_by_probability_then_id() {
        let d = TokenDist::from_weights(vec![(7, 1.0), (2, 2.0), (5, 1.0), (9, 0.0)]).unwrap();
        assert_eq!(d.entries(), &[(2, 0.5), (5, 0.25), (7, 0.25)]);
        assert_eq!(d.prob(5), 0.25);
        assert_eq!(d.prob(9), 0.0, "zero weights leave the support");
        assert_eq!(d.as_point(), None);
        assert_eq!(TokenDist::point(3).as_point(), Some(3));
    }

    #[test]
    fn bad_weights_are_refused() {
        assert_eq!(TokenDist::from_weights(vec![]), Err(DistError::ZeroMass));
        assert_eq!(
            TokenDist::from_weights(vec![(1, 0.0)]),
            Err(DistError::ZeroMass)
        );
        assert_eq!(
            TokenDist::from_weights(vec![(1, 1.0), (1, 2.0)]),
            Err(DistError::Duplicate(1))
        );
        assert_eq!(
            TokenDist::from_weights(vec![(2, 0.0), (2, 2.0)]),
            Err(DistError::Duplicate(2)),
            "a zero weight still names its token"
        );
        assert!(matches!(
            TokenDist::from_weights(vec![(1, f64::NAN)]),
            Err(DistError::BadWeight { token: 1, .. })
        ));
        assert!(matches!(
            TokenDist::from_weights(vec![(4, -0.5)]),
            Err(DistError::BadWeight { token: 4, .. })
        ));
    }

    #[test]
    fn ordered_weights_without_finite_mass_become_a_point_mass() {
        let d = TokenDist::from_ordered_weights(vec![(4, f64::NAN), (1, 0.0)]);
        assert_eq!(d.as_point(), Some(4));
        assert_eq!(TokenDist::from_ordered_weights(vec![]).as_point(), Some(0));
    }
}
