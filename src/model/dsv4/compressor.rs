//! The KV compressor's open window: per-token projected rows wait here until
//! their window closes, then pool into one compressed row.
//!
//! Non-overlapping (HCA, and any ratio but 4): entry w pools tokens
//! `ratio·w .. ratio·w + ratio − 1`, per channel a softmax over the tokens of
//! `score + ape[slot]` weighting `kv`. Overlapping (CSA): rows are `2·dim`
//! wide; entry w pools 2·ratio slots, the previous window's first halves and
//! the current window's second halves (window −1 does not exist: its slots
//! score −∞).
//!
//! Invariant: tokens are pushed in position order starting at 0; the state
//! then holds exactly the windows the next entry needs, so chunked prefill
//! and token-by-token decode pool identically.

use super::weights::CompressorWeights;

#[derive(Debug, Clone)]
pub struct CompressorState {
    /// `slots × width` projected kv; slots = ratio, or 2·ratio (previous
    /// window first) when overlapping.
    kv: Vec<f32>,
    score: Vec<f32>,
}

impl CompressorState {
    pub fn new(w: &CompressorWeights) -> CompressorState {
        let width = w.wkv.rows;
        let slots = if w.overlap { 2 * w.ratio } else { w.ratio };
        CompressorState {
            kv: vec![0.0; slots * width],
            score: vec![f32::NEG_INFINITY; slots * width],
        }
    }

    /// Bytes this state occupies.
    pub fn bytes(&self) -> usize {
        (self.kv.len() + self.score.len()) * 4
    }

    /// Feeds the token at `pos` (its projected `kv` and raw gate `score`);
    /// returns the pooled row (`dim` values, before norm and RoPE) when `pos`
    /// closes a window.
    pub fn push(
        &mut self,
        w: &CompressorWeights,
        pos: usize,
        kv: &[f32],
        score: &[f32],
    ) -> Option<Vec<f32>> {
        let width = w.wkv.rows;
        let slot = pos % w.ratio;
        let base = if w.overlap { w.ratio + slot } else { slot } * width;
        self.kv[base..base + width].copy_from_slice(kv);
        let ape = &w.ape[slot * width..(slot + 1) * width];
        for ((s, v), a) in self.score[base..base + width]
            .iter_mut()
            .zip(score)
            .zip(ape)
        {
            *s = v + a;
        }
        if !(pos + 1).is_multiple_of(w.ratio) {
            return None;
        }
        let pooled = self.pool(w);
        if w.overlap {
            // The closed window becomes the previous one of the next entry.
            let half = w.ratio * width;
            self.kv.copy_within(half.., 0);
            self.score.copy_within(half.., 0);
        }
        Some(pooled)
    }

    fn pool(&self, w: &CompressorWeights) -> Vec<f32> {
        let width = w.wkv.rows;
        let d = w.dim;
        // (slot, channel offset) pairs that feed the entry, in slot order.
        let sources: Vec<(usize, usize)> = if w.overlap {
            (0..w.ratio)
                .map(|s| (s, 0))
                .chain((0..w.ratio).map(|s| (w.ratio + s, d)))
                .collect()
        } else {
            (0..w.ratio).map(|s| (s, 0)).collect()
        };
        (0..d)
            .map(|c| {
                let at = |&(s, off): &(usize, usize)| s * width + off + c;
                let max = sources
                    .iter()
                    .map(|p| self.score[at(p)])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut num = 0.0f32;
                let mut den = 0.0f32;
                for p in &sources {
                    let e = (self.score[at(p)] - max).exp();
                    den += e;
                    num += e * self.kv[at(p)];
                }
                num / den
            })
            .collect()
    }
}
