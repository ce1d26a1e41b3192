//! Speculative decoding, as pure logic with no engine wiring.
//!
//! One step for a row: a drafter proposes a [`Draft`] (tokens, per-position
//! conditional confidences, and the exact distribution each token was drawn
//! from); [`budget`] picks how many draft tokens each row verifies from
//! calibrated confidences ([`calibration`]) and the measured step rate
//! ([`sps`]); the target scores the anchor plus that prefix; [`accept`]
//! decides which drafts stand and samples the replacement or bonus token.
//!
//! Losslessness rests on two invariants kept here: the draft distribution is
//! exactly what the token was drawn from ([`TokenDist`]), and the target
//! distribution is exactly what plain sampling draws from
//! ([`crate::engine::sampler::SamplingParams::distribution`]).

pub mod accept;
pub mod budget;
pub mod calibration;
mod dist;
pub mod draft_vocab;
pub mod ngram;
pub mod ngram_confidence;
pub mod sps;
pub mod stats;

pub use accept::{Verdict, verify};
pub use budget::plan;
pub use calibration::{StepRecord, Sts, StsError};
pub use dist::{DistError, TokenDist};
pub use draft_vocab::DraftVocab;
pub use ngram::{NgramConfig, NgramDrafter, NgramError};
pub use ngram_confidence::JobConfidence;
pub use sps::{SpsError, SpsTable};
pub use stats::SpecStats;

/// A drafter's proposal for one row. The three per-position lists always
/// have the same length, because [`Draft::push`] is the only way to grow them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    tokens: Vec<u32>,
    confidence: Vec<f32>,
    dists: Vec<TokenDist>,
}

impl Draft {
    /// Appends the next draft position.
    ///
    /// `confidence` estimates P(this token is accepted | all earlier draft
    /// tokens were); it is clamped to [0, 1], NaN counting as 0, so the
    /// budget's survival products stay probabilities. `dist` must be the
    /// exact distribution `token` was drawn from (a point mass for a
    /// deterministic drafter): verification is lossless only then.
    pub fn push(&mut self, token: u32, confidence: f32, dist: TokenDist) {
        let c = if confidence.is_nan() {
            0.0
        } else {
            confidence.clamp(0.0, 1.0)
        };
        self.tokens.push(token);
        self.confidence.push(c);
        self.dists.push(dist);
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Keeps the first `len` positions (the prefix a budget admits).
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
        self.confidence.truncate(len);
        self.dists.truncate(len);
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Conditional acceptance estimates, each in [0, 1].
    pub fn confidence(&self) -> &[f32] {
        &self.confidence
    }

    /// The distribution each token was drawn from.
    pub fn dists(&self) -> &[TokenDist] {
        &self.dists
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidences_are_clamped_to_probabilities() {
        let mut d = Draft::default();
        for c in [1.5, -0.2, f32::NAN, 0.25] {
            d.push(7, c, TokenDist::point(7));
        }
        assert_eq!(d.confidence(), &[1.0, 0.0, 0.0, 0.25]);
        assert_eq!(d.len(), 4);
        assert_eq!(d.tokens().len(), d.dists().len());
    }
}
