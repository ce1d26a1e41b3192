//! Absorbing target rows into draft states: `main_hidden` rows of newly
//! committed positions (a prefill's last rows, or the anchor and accepted
//! drafts of a verify) become each stage's context K = V in the ring.
//!
//! Invariant: positions are absorbed in order. An absorb starts at the
//! state's `len`, or later only if it brings a whole window of rows (a long
//! prefill needs just its last `window` rows captured), so the valid ring
//! slots always hold the last positions. A row's context K/V depends only
//! on that row, so absorbing in any grouping or batch gives the same ring;
//! rows the ring would overwrite within the same absorb are skipped.

use super::super::attention::{norm_rows, window_kv};
use super::super::precision::Gemm;
use super::Drafter;
use super::error::DsparkError;
use super::state::DraftState;

/// Rows to absorb into one sequence's state.
pub struct Absorb<'a> {
    pub state: &'a mut DraftState,
    /// Position of the first row: `state.len()`, or later when the rows
    /// fill a whole window.
    pub pos0: usize,
    /// `rows × width` `main_hidden` (see [`super::capture::Captured`]).
    pub hidden: &'a [f32],
}

impl Drafter<'_> {
    /// Appends every item's rows to its state, the matmuls batched over all
    /// items. Checks every item first; on an error no state has changed.
    pub fn absorb(&self, items: &mut [Absorb<'_>]) -> Result<(), DsparkError> {
        let c = self.model.config();
        let p = self.model.precision;
        let width = self.config.hidden_width(c.hidden);
        for it in items.iter() {
            self.check_state(it.state)?;
            if !it.hidden.len().is_multiple_of(width) {
                return Err(DsparkError::HiddenWidth {
                    len: it.hidden.len(),
                    width,
                });
            }
            let (len, rows) = (it.state.len(), it.hidden.len() / width);
            // Skipping positions is harmless only when the ring is refilled.
            if it.pos0 < len || (it.pos0 > len && rows < c.window) {
                return Err(DsparkError::Gap {
                    len,
                    pos0: it.pos0,
                    rows,
                    window: c.window,
                });
            }
        }
        // Only each item's last `window` rows can stay in its ring.
        let mut hidden = Vec::new();
        let mut positions = Vec::new();
        let mut owner = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let rows = it.hidden.len() / width;
            let skip = rows.saturating_sub(c.window);
            hidden.extend_from_slice(&it.hidden[skip * width..]);
            positions.extend(it.pos0 + skip..it.pos0 + rows);
            owner.extend(std::iter::repeat_n(i, rows - skip));
        }
        let n = positions.len();
        if n > 0 {
            let w = self.weights;
            let mut main_x = p.linear(&w.main_proj, &hidden, n, Gemm::Quantized);
            norm_rows(&mut main_x, &w.main_norm, c.rms_eps);
            p.bf16(&mut main_x);
            for (s, stage) in w.stages.iter().enumerate() {
                let kv = window_kv(c, &stage.attn, &self.rope, p, &main_x, &positions);
                for ((row, &pos), &i) in kv.chunks_exact(c.head_dim).zip(&positions).zip(&owner) {
                    items[i].state.write(s, pos, row);
                }
            }
        }
        for it in items.iter_mut() {
            let rows = it.hidden.len() / width;
            it.state.advance(it.pos0 + rows);
        }
        Ok(())
    }
}
