//! The KV compressor's open window: per-token projected rows wait here until
//! their window closes, then pool into one compressed row.
//!
//! Non-overlapping (HCA, and any ratio but 4): entry w pools tokens
//! `ratio·w .. ratio·w + ratio − 1`, per channel a softmax over the tokens of
//! `score + ape[slot]` weighting `kv`. Overlapping (CSA): rows are `2·dim`
//! wide; entry w pools 2·ratio slots, the previous window's first halves and
//! the current window's second halves (window −1 does not exist: its slots
//! score −∞). The two windows alternate between two halves of the state
//! (window w in half w mod 2) rather than being shifted when one closes.
//!
//! Invariant: tokens are pushed in position order starting at 0; the state
//! then holds exactly the windows the next entry needs, so chunked prefill
//! and token-by-token decode pool identically. Each push writes exactly one
//! slot, chosen by the position alone ([`CompressorState::save_slot`] and
//! [`CompressorState::restore_slot`] read and write it), which is what lets
//! a sequence undo its latest tokens slot by slot (see `undo.rs`).

use super::weights::CompressorWeights;

#[derive(Debug, Clone, PartialEq)]
pub struct CompressorState {
    /// `slots × width` projected kv; slots = ratio, or 2·ratio when
    /// overlapping (window w in slots `(w mod 2)·ratio ..`).
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

    /// Values per saved slot: its `kv` row then its `score` row.
    pub fn slot_len(w: &CompressorWeights) -> usize {
        2 * w.wkv.rows
    }

    /// The slot the token at `pos` occupies.
    fn slot(w: &CompressorWeights, pos: usize) -> usize {
        let within = pos % w.ratio;
        if w.overlap {
            (pos / w.ratio % 2) * w.ratio + within
        } else {
            within
        }
    }

    /// Copies the slot `pos` writes into `out` ([`Self::slot_len`] values).
    pub fn save_slot(&self, w: &CompressorWeights, pos: usize, out: &mut [f32]) {
        let width = w.wkv.rows;
        let base = Self::slot(w, pos) * width;
        out[..width].copy_from_slice(&self.kv[base..base + width]);
        out[width..].copy_from_slice(&self.score[base..base + width]);
    }

    /// Puts back what [`Self::save_slot`] saved for `pos`.
    pub fn restore_slot(&mut self, w: &CompressorWeights, pos: usize, saved: &[f32]) {
        let width = w.wkv.rows;
        let base = Self::slot(w, pos) * width;
        self.kv[base..base + width].copy_from_slice(&saved[..width]);
        self.score[base..base + width].copy_from_slice(&saved[width..]);
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
        let within = pos % w.ratio;
        let base = Self::slot(w, pos) * width;
        self.kv[base..base + width].copy_from_slice(kv);
        let ape = &w.ape[within * width..(within + 1) * width];
        for ((s, v), a) in self.score[base..base + width]
            .iter_mut()
            .zip(score)
            .zip(ape)
        {
            *s = v + a;
        }
        (pos + 1)
            .is_multiple_of(w.ratio)
            .then(|| self.pool(w, pos / w.ratio))
    }

    /// Pools window `window` (just closed) into its entry.
    fn pool(&self, w: &CompressorWeights, window: usize) -> Vec<f32> {
        let width = w.wkv.rows;
        let d = w.dim;
        // (slot, channel offset) pairs that feed the entry, in slot order:
        // the previous window's first halves, then this window's second.
        let sources: Vec<(usize, usize)> = if w.overlap {
            let half = |win: usize| (win % 2) * w.ratio;
            let (prev, cur) = (half(window + 1), half(window));
            (0..w.ratio)
                .map(|s| (prev + s, 0))
                .chain((0..w.ratio).map(|s| (cur + s, d)))
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
