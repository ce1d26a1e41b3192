//! Prompt-lookup drafting: propose what followed the last time the row's
//! recent tokens appeared in its own history (prompt plus output).
//!
//! The draft follows the longest suffix of the history, of `max_n` tokens
//! down to `min_n`, that also ends earlier in the history, copying up to γ
//! tokens after its most recent earlier occurrence. Defaults: n from 4 down
//! to 1. Long matches are tried first because they predict the continuation
//! best; a 1-token match still helps on repetitive text, and its low
//! confidence lets the budget decline it where verification is not free.
//!
//! The drafter is deterministic, so each draft distribution is a point mass.
//! Confidence at draft position k after a match of length n is the row's
//! estimate of P(accept k | earlier accepted, match length n), which starts
//! at the job's (pooled over all rows) and follows the row's own outcomes
//! ([`super::ngram_confidence`]).
//!
//! Cost: an index from each n-gram to the end of its most recent occurrence
//! that has a following token is updated per appended token (O(max_n) hash
//! updates), so drafting never rescans the history; memory is
//! O(history · (max_n − min_n + 1)) map entries.
//!
//! Per step the caller: [`NgramDrafter::draft`], verifies, reports the outcome
//! with [`NgramDrafter::record`], then appends the emitted tokens with
//! [`NgramDrafter::extend`].

use std::collections::HashMap;

use super::ngram_confidence::{JobConfidence, RowConfidence};
use super::{Draft, TokenDist};

/// The longest n-gram the index holds: four u32 ids fill its fixed-size key.
pub const MAX_N: usize = 4;
/// The most draft tokens per row per step a job may ask of this drafter
/// (`speculation.max_draft`). The index has no such limit; this bounds what
/// a job may spend, since each verified draft token takes a slot of the
/// step's token budget while the chance it is kept is the product of the
/// acceptances before it.
pub const MAX_DRAFT: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NgramError {
    #[error("n-gram lengths {min_n}..={max_n} must satisfy 1 <= min_n <= max_n <= {MAX_N}")]
    BadRange { min_n: usize, max_n: usize },
}

/// Which suffix lengths to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgramConfig {
    pub min_n: usize,
    pub max_n: usize,
}

impl Default for NgramConfig {
    fn default() -> NgramConfig {
        NgramConfig {
            min_n: 1,
            max_n: MAX_N,
        }
    }
}

type Key = [u32; MAX_N];

/// One row's prompt-lookup drafter.
#[derive(Debug, Clone)]
pub struct NgramDrafter {
    config: NgramConfig,
    history: Vec<u32>,
    /// `ends[n - min_n]`: n-gram → end (exclusive) of its most recent
    /// occurrence that is followed by at least one token.
    ends: Vec<HashMap<Key, usize>>,
    /// This row's acceptance outcomes.
    confidence: RowConfidence,
    /// (match length, tokens) of the draft awaiting [`Self::record`].
    pending: Option<(usize, usize)>,
}

impl NgramDrafter {
    pub fn new(config: NgramConfig) -> Result<NgramDrafter, NgramError> {
        let NgramConfig { min_n, max_n } = config;
        if !(1 <= min_n && min_n <= max_n && max_n <= MAX_N) {
            return Err(NgramError::BadRange { min_n, max_n });
        }
        let lengths = max_n - min_n + 1;
        Ok(NgramDrafter {
            config,
            history: Vec::new(),
            ends: vec![HashMap::new(); lengths],
            confidence: RowConfidence::new(min_n, max_n),
            pending: None,
        })
    }

    /// Appends tokens to the history (the prompt, then emitted tokens).
    pub fn extend(&mut self, tokens: &[u32]) {
        for &t in tokens {
            // The n-grams ending here gain a following token: index them.
            let end = self.history.len();
            for n in self.config.min_n..=self.config.max_n.min(end) {
                let key = key(&self.history[end - n..end]);
                self.ends[n - self.config.min_n].insert(key, end);
            }
            self.history.push(t);
        }
    }

    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Up to `gamma` tokens, with confidences from this row's outcomes and
    /// the job's (`job`); empty when no suffix of at least `min_n` tokens
    /// occurred before.
    pub fn draft(&mut self, gamma: usize, job: &JobConfidence) -> Draft {
        self.pending = None;
        let mut draft = Draft::default();
        let Some((n, start)) = self.lookup() else {
            return draft;
        };
        let len = gamma.min(self.history.len() - start);
        for (k, &t) in self.history[start..start + len].iter().enumerate() {
            let c = self.confidence.confidence(job, n, k);
            draft.push(t, c as f32, TokenDist::point(t));
        }
        if len > 0 {
            self.pending = Some((n, len));
        }
        draft
    }

    /// Reports how the last draft fared: `verified` positions went to the
    /// target and the first `accepted` of them stood. The outcome goes into
    /// this row's estimates and the job's. Without a pending draft this
    /// does nothing.
    pub fn record(&mut self, verified: usize, accepted: usize, job: &mut JobConfidence) {
        let Some((n, len)) = self.pending.take() else {
            return;
        };
        self.confidence.record(n, len, verified, accepted);
        job.record(n, len, verified, accepted);
    }

    /// (match length, start of the continuation) of the longest suffix
    /// that ended earlier, at its most recent earlier end.
    fn lookup(&self) -> Option<(usize, usize)> {
        let len = self.history.len();
        (self.config.min_n..=self.config.max_n.min(len))
            .rev()
            .find_map(|n| {
                self.ends[n - self.config.min_n]
                    .get(&key(&self.history[len - n..]))
                    .map(|&end| (n, end))
            })
    }
}

/// An n-gram (n <= MAX_N) as a fixed-size key; the maps are per length, so
/// the zero padding cannot make two lengths collide.
fn key(gram: &[u32]) -> Key {
    let mut k = [0; MAX_N];
    k[..gram.len()].copy_from_slice(gram);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::Rng;

    fn job() -> JobConfidence {
        JobConfidence::new(1, MAX_N)
    }

    fn drafter(history: &[u32]) -> NgramDrafter {
        let mut d = NgramDrafter::new(NgramConfig::default()).unwrap();
        d.extend(history);
        d
    }

    /// The rule by rescanning the whole history: the reference the index
    /// must match.
    fn rescan(h: &[u32], cfg: NgramConfig, gamma: usize) -> Vec<u32> {
        let len = h.len();
        for n in (cfg.min_n..=cfg.max_n.min(len)).rev() {
            if let Some(end) = (n..len).rev().find(|&e| h[e - n..e] == h[len - n..]) {
                return h[end..len.min(end + gamma)].to_vec();
            }
        }
        Vec::new()
    }

    #[test]
    fn copies_a_repeated_span() {
        let mut d = drafter(&[10, 11, 12, 13, 14, 15, 99, 10, 11, 12]);
        let draft = d.draft(3, &job());
        assert_eq!(draft.tokens(), &[13, 14, 15]);
        assert!(
            draft
                .dists()
                .iter()
                .zip(draft.tokens())
                .all(|(q, &t)| q.as_point() == Some(t))
        );
        // Only as many tokens as the history holds after the match.
        assert_eq!(
            drafter(&[1, 2, 3, 1, 2]).draft(8, &job()).tokens(),
            &[3, 1, 2]
        );
    }

    #[test]
    fn prefers_the_longest_then_the_most_recent_match() {
        // Suffix [7, 8]: the 2-gram occurred at 0..2 (then 1) and 4..6
        // (then 3); the 1-gram [8] most recently at 9 (then 5). Longest
        // wins over most recent, and among 2-grams the later one.
        let h = [7, 8, 1, 0, 7, 8, 3, 0, 0, 8, 5, 7, 8];
        assert_eq!(drafter(&h).draft(1, &job()).tokens(), &[3]);
        assert_eq!(rescan(&h, NgramConfig::default(), 1), [3]);
        let h = [4, 8, 1, 0, 8, 5, 6, 8];
        assert_eq!(
            drafter(&h).draft(2, &job()).tokens(),
            &[5, 6],
            "most recent [8]"
        );
    }

    #[test]
    fn no_match_means_no_draft() {
        assert!(drafter(&[1, 2, 3, 4]).draft(4, &job()).is_empty());
        assert!(drafter(&[]).draft(4, &job()).is_empty());
        let cfg = NgramConfig { min_n: 2, max_n: 3 };
        let mut d = NgramDrafter::new(cfg).unwrap();
        d.extend(&[5, 1, 2, 5]);
        assert!(
            d.draft(4, &job()).is_empty(),
            "a 1-token match is below min_n"
        );
    }

    #[test]
    fn the_index_matches_rescanning_at_every_length() {
        let mut rng = Rng::new(3);
        for cfg in [NgramConfig::default(), NgramConfig { min_n: 2, max_n: 3 }] {
            let h: Vec<u32> = (0..400).map(|_| (rng.next_u64() % 4) as u32).collect();
            let mut one_at_a_time = NgramDrafter::new(cfg).unwrap();
            for (i, &t) in h.iter().enumerate() {
                one_at_a_time.extend(&[t]);
                let want = rescan(&h[..=i], cfg, 5);
                assert_eq!(
                    one_at_a_time.draft(5, &job()).tokens(),
                    want.as_slice(),
                    "prefix {i}"
                );
            }
            let mut all_at_once = NgramDrafter::new(cfg).unwrap();
            all_at_once.extend(&h);
            assert_eq!(all_at_once.draft(5, &job()), one_at_a_time.draft(5, &job()));
        }
    }

    #[test]
    fn a_long_history_drafts_from_the_index() {
        let mut rng = Rng::new(9);
        let mut h: Vec<u32> = (0..100_000)
            .map(|_| (rng.next_u64() % 50_000) as u32)
            .collect();
        let planted = h[1234..1244].to_vec();
        h.extend_from_slice(&planted[..4]);
        assert_eq!(drafter(&h).draft(6, &job()).tokens(), &planted[4..10]);
    }

    #[test]
    fn confidence_follows_match_length_and_recorded_outcomes() {
        let close = |c: &[f32], want: &[f32]| {
            c.len() == want.len() && c.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6)
        };
        let mut job = job();
        let mut d = drafter(&[1, 2, 3, 4, 5, 6, 1, 2, 3, 4]);
        let c = d.draft(2, &job);
        assert!(
            close(c.confidence(), &[0.8, 0.8]),
            "prior for a 4-token match"
        );
        d.record(2, 0, &mut job);
        // Position 1 failed: the job's rate 0.8 -> 0.72, the row's
        // (2 · 0.72 + 0) / (2 + 1); position 2 was never a trial.
        assert!(close(d.draft(2, &job).confidence(), &[0.48, 0.8]));
        d.record(2, 2, &mut job);
        // Job 0.748 and 0.82; row counts (1, 1.9) and (1, 1).
        let c = d.draft(2, &job);
        assert!(close(c.confidence(), &[2.496 / 3.9, 2.64 / 3.0]), "{c:?}");
        let mut short = drafter(&[9, 1, 9]);
        assert!(
            close(short.draft(1, &job).confidence(), &[0.5]),
            "prior for 1 token"
        );
        short.record(1, 1, &mut job);
        short.record(1, 1, &mut job);
        // Job 0.55, row (1, 1): (1.1 + 1) / 3.
        let c = short.draft(1, &job);
        assert!(close(c.confidence(), &[0.7]), "one record per draft: {c:?}");
    }

    #[test]
    fn bad_ranges_are_refused() {
        for (min_n, max_n) in [(0, 2), (3, 2), (1, MAX_N + 1)] {
            assert_eq!(
                NgramDrafter::new(NgramConfig { min_n, max_n }).unwrap_err(),
                NgramError::BadRange { min_n, max_n }
            );
        }
    }
}
