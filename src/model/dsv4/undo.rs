//! Cutting a sequence back into its latest chunk without replaying anything:
//! what speculative decoding needs after a verify chunk `[anchor, d1..dl]`
//! of which only the anchor and the accepted drafts stand.
//!
//! While a chunk runs, each of its positions saves what it is about to
//! overwrite: its ring row and, on compressed layers, the one slot of each
//! open compressor window it writes (every push writes exactly one slot,
//! chosen by the position: `compressor.rs`). Rolling back to `L` restores
//! those rows from the last position down to `L`, then truncates the
//! compressed rows and indexer keys to `L / ratio` entries (they are only
//! ever appended). The result is bit for bit the state of a sequence fed
//! only its first `L` tokens, at a cost of one chunk's rows whatever the
//! context length. Saving slots rather than a checkpoint of the whole open
//! window after each position keeps the record small: an HCA window holds
//! `ratio` (128) slots, a position changes one.
//!
//! Which chunks keep a record ([`SeqState::keeps_undo`]): those whose every
//! row asks for logits (decode and verify chunks) and that are at most
//! [`undo_positions`] long, so a long prefill chunk costs nothing. Only the
//! latest chunk of a sequence can be undone: the next chunk replaces the
//! record, or clears it when it keeps none.
//!
//! Memory: the record lives in the [`SeqState`], allocated once at its bound,
//! because the forward pass writes it in the same place and order as it
//! overwrites the state; kept in the executor instead, it would need a
//! second per-sequence map and a parallel argument through every layer, and
//! the budget would have to reserve it all the same. So `SeqState::bytes`
//! stays a function of the length alone and `KvFootprint::fixed`, which the
//! executor's budget reserves for every running sequence, counts the record
//! whether a job speculates or not (per layer and position: one ring row
//! plus a kv and a score row of each open window; 17 positions against a
//! ring of `window` rows). A verify wider than the bound keeps no record, so
//! cutting into it fails loudly rather than corrupting the state.

use std::ops::RangeInclusive;

use super::compressor::CompressorState;
use super::config::Dsv4Config;
use super::state::SeqState;
use super::weights::{CompressorWeights, Dsv4Weights};
use crate::spec::ngram::MAX_DRAFT;

/// The widest verify chunk: the anchor and γ ≤ [`MAX_DRAFT`] drafts.
pub const UNDO_POSITIONS: usize = MAX_DRAFT + 1;

/// Positions an undo record covers for this model: every position of a
/// recorded chunk must own its ring slot, so never more than the window.
pub fn undo_positions(c: &Dsv4Config) -> usize {
    UNDO_POSITIONS.min(c.window)
}

/// One layer's saved rows, one per position of the latest chunk.
#[derive(Debug, Clone)]
pub struct LayerUndo {
    /// `positions × head_dim`: the ring row each position overwrote.
    pub ring: Vec<f32>,
    /// `positions × slot_len`: the compressor slot each position overwrote
    /// (empty on sliding layers).
    pub compressor: Vec<f32>,
    /// The same for the indexer's compressor (CSA layers).
    pub index_compressor: Vec<f32>,
}

impl LayerUndo {
    pub fn new(
        positions: usize,
        head_dim: usize,
        compressor: Option<&CompressorWeights>,
        index_compressor: Option<&CompressorWeights>,
    ) -> LayerUndo {
        let rows = |cw: Option<&CompressorWeights>| {
            vec![0.0; cw.map_or(0, |cw| positions * CompressorState::slot_len(cw))]
        };
        LayerUndo {
            ring: vec![0.0; positions * head_dim],
            compressor: rows(compressor),
            index_compressor: rows(index_compressor),
        }
    }

    pub fn bytes(&self) -> usize {
        (self.ring.len() + self.compressor.len() + self.index_compressor.len()) * 4
    }
}

/// A cut the latest chunk's record does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot cut the sequence back to {to} tokens: it holds {len} and its latest chunk can be \
     undone back to {from}"
)]
pub struct RollbackError {
    pub to: usize,
    pub len: usize,
    pub from: usize,
}

impl SeqState {
    /// Whether a chunk of `tokens` tokens with logits for the last
    /// `logits_for` keeps an undo record.
    pub fn keeps_undo(&self, tokens: usize, logits_for: usize) -> bool {
        logits_for == tokens && tokens <= self.undo_positions
    }

    /// The lengths this sequence can be cut back to.
    pub fn undoable(&self) -> RangeInclusive<usize> {
        self.undo_from.unwrap_or(self.len)..=self.len
    }

    /// Cuts the sequence back to its first `to` tokens, as if the later ones
    /// had never been fed. The record then still covers `from..=to`.
    pub fn rollback(&mut self, w: &Dsv4Weights, to: usize) -> Result<(), RollbackError> {
        let range = self.undoable();
        if !range.contains(&to) {
            return Err(RollbackError {
                to,
                len: self.len,
                from: *range.start(),
            });
        }
        let from = *range.start();
        let (window, hd) = (w.config.window, w.config.head_dim);
        for (layer, b) in self.layers.iter_mut().zip(&w.layers) {
            let index = b.attn.indexer.as_ref().map(|i| &i.compressor);
            // Latest first: a slot two positions of the chunk wrote must end
            // with what the earlier one found.
            for pos in (to..self.len).rev() {
                let t = pos - from;
                let slot = pos % window;
                layer.ring[slot * hd..(slot + 1) * hd]
                    .copy_from_slice(&layer.undo.ring[t * hd..(t + 1) * hd]);
                let main = b.attn.compressor.as_ref();
                restore_slot(main, &mut layer.compressor, &layer.undo.compressor, pos, t);
                let saved = &layer.undo.index_compressor;
                restore_slot(index, &mut layer.index_compressor, saved, pos, t);
            }
            if let Some(cw) = &b.attn.compressor {
                layer.compressed.truncate(to / cw.ratio * cw.dim);
            }
            if let Some(cw) = index {
                layer.index_keys.truncate(to / cw.ratio * cw.dim);
            }
        }
        self.len = to;
        Ok(())
    }
}

/// Puts back the slot of an open window that position `pos`, the `t`-th of
/// the chunk, overwrote (nothing on layers without that window).
fn restore_slot(
    cw: Option<&CompressorWeights>,
    state: &mut Option<CompressorState>,
    saved: &[f32],
    pos: usize,
    t: usize,
) {
    if let (Some(cw), Some(state)) = (cw, state) {
        let n = CompressorState::slot_len(cw);
        state.restore_slot(cw, pos, &saved[t * n..(t + 1) * n]);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::dsv4::forward::{Chunk, Dsv4Model};
    use crate::model::dsv4::precision::Precision;
    use crate::model::dsv4::state::{KvFootprint, LayerState};

    /// The committed tiny checkpoint: window 32, compress ratios 4 and 16.
    fn tiny() -> Dsv4Model {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dsv4/tiny");
        Dsv4Model::new(Dsv4Weights::load(&dir).unwrap(), Precision::Official)
    }

    fn feed(m: &Dsv4Model, state: &mut SeqState, tokens: &[u32], logits_for: usize) {
        m.forward(&mut [Chunk {
            state,
            tokens,
            logits_for,
        }]);
    }

    /// A fixed token sequence (LCG), ids ≥ 3.
    fn ids(m: &Dsv4Model, n: usize) -> Vec<u32> {
        let vocab = m.config().vocab_size as u64;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (3 + (x >> 33) % (vocab - 3)) as u32
            })
            .collect()
    }

    /// Everything a forward pass reads is equal, bit for bit (the undo
    /// record is bookkeeping, not state).
    fn assert_same_state(a: &SeqState, b: &SeqState, what: &str) {
        // Ring, compressed rows and indexer keys, as bits.
        let rows = |l: &LayerState| {
            [&l.ring, &l.compressed, &l.index_keys]
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(a.len, b.len, "{what}: length");
        for (i, (x, y)) in a.layers.iter().zip(&b.layers).enumerate() {
            assert!(rows(x) == rows(y), "{what}: layer {i} rows");
            assert_eq!(x.compressor, y.compressor, "{what}: layer {i} window");
            assert_eq!(x.index_compressor, y.index_compressor, "{what}: layer {i}");
        }
    }

    #[test]
    fn a_cut_gives_the_state_of_the_shorter_sequence() {
        let m = tiny();
        let w = &m.weights;
        let fp = KvFootprint::new(m.config());
        let ids = ids(&m, 60);
        // (prompt, chunk): a first chunk; the widest chunk, closing ratio-4
        // and ratio-16 windows; a chunk past the window (ring wrap) that
        // closes both kinds of window in its middle.
        for (p, k) in [(0, 5), (13, 17), (42, 9)] {
            let mut prompt = m.new_state();
            if p > 0 {
                feed(&m, &mut prompt, &ids[..p], 0);
            }
            for cut in p..=p + k {
                let mut st = prompt.clone();
                // The kept tokens are the true ones, the rest differ.
                let detour: Vec<u32> = (p..p + k)
                    .map(|i| if i < cut { ids[i] } else { ids[i] ^ 1 })
                    .collect();
                feed(&m, &mut st, &detour, k);
                assert_eq!(st.undoable(), p..=p + k);
                assert_eq!(st.bytes(), fp.bytes(p + k));
                st.rollback(w, cut).unwrap();
                let mut straight = m.new_state();
                if cut > 0 {
                    feed(&m, &mut straight, &ids[..cut], 0);
                }
                let what = format!("chunk {p}..{} cut at {cut}", p + k);
                assert_same_state(&st, &straight, &what);
                assert_eq!(st.bytes(), fp.bytes(cut), "{what}");
                // The record still covers what is left of the chunk.
                assert_eq!(st.undoable(), p..=cut, "{what}");
                st.rollback(w, p).unwrap();
                assert_same_state(&st, &prompt, &what);
            }
        }
    }

    #[test]
    fn only_short_chunks_with_every_logit_keep_a_record() {
        let m = tiny();
        let ids = ids(&m, 60);
        // (chunk end, logits for, lengths it can be cut back to, why).
        let steps = [
            (10, 1, 10..=10, "a prefill chunk keeps none"),
            (28, 18, 28..=28, "longer than the bound"),
            (45, 17, 28..=45, "the widest verify chunk"),
            (46, 1, 45..=46, "only the latest chunk"),
            (50, 3, 50..=50, "not every row has logits"),
        ];
        let mut st = m.new_state();
        for (end, logits_for, undoable, why) in steps {
            let start = st.len;
            feed(&m, &mut st, &ids[start..end], logits_for);
            assert_eq!(st.undoable(), undoable, "{why}");
        }
    }

    #[test]
    fn a_cut_outside_the_record_fails_and_changes_nothing() {
        let m = tiny();
        let mut st = m.new_state();
        feed(&m, &mut st, &ids(&m, 16), 4);
        assert_eq!(st.undoable(), 16..=16);
        feed(&m, &mut st, &[7, 8, 9, 10], 4);
        let before = st.clone();
        for to in [15, 21] {
            let e = st.rollback(&m.weights, to).unwrap_err();
            assert_eq!(
                e,
                RollbackError {
                    to,
                    len: 20,
                    from: 16
                }
            );
            assert_same_state(&st, &before, &e.to_string());
        }
        assert_eq!(
            st.rollback(&m.weights, 15).unwrap_err().to_string(),
            "cannot cut the sequence back to 15 tokens: it holds 20 and its latest chunk can be \
             undone back to 16"
        );
    }

    #[test]
    fn the_bound_covers_a_verify_chunk_within_the_window() {
        let m = tiny();
        assert_eq!(UNDO_POSITIONS, 17);
        assert_eq!(undo_positions(m.config()), 17);
        let mut c = m.config().clone();
        c.window = 8;
        assert_eq!(undo_positions(&c), 8);
    }
}
