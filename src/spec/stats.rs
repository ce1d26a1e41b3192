//! Counters of speculation over a run: how many draft tokens were verified
//! and accepted at each draft position, and how many decode steps drafted.
//!
//! Invariant: `accepted[j] <= verified[j]`, and `verified` is non-increasing
//! in j (a draft verified at position j was verified at every earlier one).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecStats {
    /// Steps that had at least one decoding row.
    pub decode_steps: u64,
    /// Of those, steps in which some row verified a draft.
    pub drafting_steps: u64,
    /// Verify rounds: one per decoding row per step that verified a draft.
    pub rounds: u64,
    /// Draft tokens verified at position j (0-based).
    pub verified: Vec<u64>,
    /// Draft tokens accepted at position j.
    pub accepted: Vec<u64>,
}

impl SpecStats {
    /// One row's round: `verified` drafts judged, the first `accepted` kept.
    pub fn record_round(&mut self, verified: usize, accepted: usize) {
        debug_assert!(accepted <= verified);
        if self.verified.len() < verified {
            self.verified.resize(verified, 0);
            self.accepted.resize(verified, 0);
        }
        self.rounds += 1;
        self.verified[..verified].iter_mut().for_each(|v| *v += 1);
        self.accepted[..accepted].iter_mut().for_each(|a| *a += 1);
    }

    pub fn add(&mut self, other: &SpecStats) {
        self.decode_steps += other.decode_steps;
        self.drafting_steps += other.drafting_steps;
        self.rounds += other.rounds;
        let n = self.verified.len().max(other.verified.len());
        self.verified.resize(n, 0);
        self.accepted.resize(n, 0);
        for (a, b) in self.verified.iter_mut().zip(&other.verified) {
            *a += b;
        }
        for (a, b) in self.accepted.iter_mut().zip(&other.accepted) {
            *a += b;
        }
    }

    /// Tokens a verify round commits on average, the bonus or replacement
    /// included (the paper's τ); 0 without rounds.
    pub fn mean_accepted_length(&self) -> f64 {
        if self.rounds == 0 {
            return 0.0;
        }
        1.0 + self.accepted.iter().sum::<u64>() as f64 / self.rounds as f64
    }

    /// Accepted / verified at each draft position.
    pub fn acceptance_by_position(&self) -> Vec<f64> {
        self.verified
            .iter()
            .zip(&self.accepted)
            .map(|(&v, &a)| if v == 0 { 0.0 } else { a as f64 / v as f64 })
            .collect()
    }

    /// Fraction of decode steps that verified any draft.
    pub fn drafting_fraction(&self) -> f64 {
        if self.decode_steps == 0 {
            return 0.0;
        }
        self.drafting_steps as f64 / self.decode_steps as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_add_up_by_position() {
        let mut s = SpecStats::default();
        s.record_round(3, 1);
        s.record_round(1, 1);
        s.record_round(2, 0);
        assert_eq!(s.verified, vec![3, 2, 1]);
        assert_eq!(s.accepted, vec![2, 0, 0]);
        assert_eq!(s.acceptance_by_position(), vec![2.0 / 3.0, 0.0, 0.0]);
        // (1 + 1) + (1 + 1) + (1 + 0) tokens over 3 rounds.
        assert!((s.mean_accepted_length() - 5.0 / 3.0).abs() < 1e-12);
        let mut t = SpecStats {
            decode_steps: 4,
            drafting_steps: 1,
            ..SpecStats::default()
        };
        t.add(&s);
        assert_eq!(t.verified, vec![3, 2, 1]);
        assert_eq!(t.drafting_fraction(), 0.25);
    }
}
