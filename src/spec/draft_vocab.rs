//! How much of the vocabulary a draft model's head computes: the smallest
//! id prefix `0..n` that holds nearly every token the target has emitted.
//!
//! A small draft model spends a large share of its step on its output head
//! (Qwen2.5's 0.5B: 146 of 485 MB are the 151936-row head), yet the tokens a
//! job emits crowd into part of the id range: byte-level BPE vocabularies
//! number their merges roughly by frequency and append scripts a given job
//! rarely uses (for Qwen2.5, ids above about 100K cover 0.04% of English
//! prose and Python). Restricting the draft's head to a prefix cuts the draft
//! step and stays lossless, because the draft distribution is then exactly
//! the softmax over the prefix, which is what verification is given; the
//! only cost is that a target token outside the prefix can never be drafted.
//!
//! The prefix is learned from the job's own output, not fixed per model: a
//! histogram of emitted ids in buckets of [`BUCKET`], and the prefix is the
//! smallest bucket boundary leaving at most a share 1 - [`COVERAGE`] of them
//! outside (all of them while fewer than 1 / (1 - COVERAGE) are seen, since
//! a smaller sample cannot resolve that share). A job in another script
//! moves the prefix to cover it. Until [`MIN_SEEN`] tokens are seen the
//! whole vocabulary is drafted over. Tokens that end a row (EOS) never
//! reach the histogram (the engine does not extend rows with them), so the
//! chat template's special ids at the top of the vocabulary do not hold the
//! prefix open.
//!
//! Invariants: the prefix is a multiple of [`BUCKET`] or the whole
//! vocabulary, is never 0, and covers every id counted at least once unless
//! the sample is large enough to estimate the [`COVERAGE`] share.

/// Ids per histogram bucket: the prefix's granularity.
pub const BUCKET: usize = 4096;
/// Share of emitted tokens the prefix must hold.
pub const COVERAGE: f64 = 0.999;
/// Emitted tokens seen before the prefix may shrink below the vocabulary.
pub const MIN_SEEN: u64 = 128;

/// The histogram of emitted ids and the prefix it implies.
#[derive(Debug, Clone)]
pub struct DraftVocab {
    vocab: usize,
    buckets: Vec<u64>,
    seen: u64,
}

impl DraftVocab {
    /// An empty histogram over a vocabulary of `vocab` ids.
    pub fn new(vocab: usize) -> DraftVocab {
        DraftVocab {
            vocab,
            buckets: vec![0; vocab.div_ceil(BUCKET)],
            seen: 0,
        }
    }

    /// The target emitted `token`. Ids outside the vocabulary are ignored
    /// (the engine never emits them).
    pub fn count(&mut self, token: u32) {
        if let Some(b) = self.buckets.get_mut(token as usize / BUCKET) {
            *b += 1;
            self.seen += 1;
        }
    }

    /// The number of leading ids the draft head computes: see the module doc.
    pub fn prefix(&self) -> usize {
        if self.seen < MIN_SEEN {
            return self.vocab;
        }
        // Whole tokens allowed outside; 0 until the sample can resolve the share.
        let outside = ((1.0 - COVERAGE) * self.seen as f64).floor() as u64;
        let mut above = 0u64;
        let mut keep = self.buckets.len();
        while keep > 1 && above + self.buckets[keep - 1] <= outside {
            above += self.buckets[keep - 1];
            keep -= 1;
        }
        (keep * BUCKET).min(self.vocab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(vocab: usize, tokens: impl IntoIterator<Item = u32>) -> DraftVocab {
        let mut v = DraftVocab::new(vocab);
        tokens.into_iter().for_each(|t| v.count(t));
        v
    }

    #[test]
    fn the_whole_vocabulary_until_enough_tokens_are_seen() {
        let v = fed(151_936, (0..MIN_SEEN - 1).map(|i| i as u32));
        assert_eq!(v.prefix(), 151_936);
        let v = fed(151_936, (0..MIN_SEEN).map(|i| i as u32));
        assert_eq!(v.prefix(), BUCKET, "all ids so far lie in the first bucket");
    }

    #[test]
    fn a_small_sample_covers_every_id_seen() {
        // 999 tokens cannot resolve a 0.1% share: the one high id is kept.
        let v = fed(151_936, (0..998).map(|i| i % 5000).chain([90_000]));
        assert_eq!(v.prefix(), 90_112, "22 buckets, the last holding 90000");
        let v = fed(151_936, (0..998).map(|i| i % 5000).chain([151_935]));
        assert_eq!(v.prefix(), 151_936, "never past the vocabulary");
    }

    #[test]
    fn a_large_sample_leaves_out_at_most_the_uncovered_share() {
        // 10000 tokens: up to 10 may lie outside the prefix.
        let common = (0..9_990).map(|i| i % 8000);
        let v = fed(151_936, common.clone().chain([100_000; 10]));
        assert_eq!(v.prefix(), 2 * BUCKET);
        let v = fed(151_936, common.chain([100_000; 11]));
        assert_eq!(
            v.prefix(),
            25 * BUCKET,
            "11 > 10 outside: their bucket stays"
        );
    }

    #[test]
    fn ids_outside_the_vocabulary_are_not_counted() {
        let mut v = fed(8192, (0..MIN_SEEN).map(|i| i as u32));
        v.count(9000);
        assert_eq!(v.seen, MIN_SEEN);
        assert_eq!(v.prefix(), BUCKET);
        // A vocabulary smaller than a bucket is its own prefix.
        assert_eq!(
            fed(100, (0..MIN_SEEN).map(|i| (i % 100) as u32)).prefix(),
            100
        );
    }
}
