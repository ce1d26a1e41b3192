//! One sequence's draft state: per stage a ring of `window` context K = V
//! rows (the model's sliding window, 128 on V4-Flash), slot = position mod
//! window, holding that stage's `kv_norm(wkv(main_x))` of the last absorbed
//! positions.
//!
//! Invariant: positions `0..len` have been absorbed, in order; slots
//! `0..min(len, window)` hold positions `max(0, len − window)..len` (slot =
//! position mod window) and the other slots are unused. A draft's anchor
//! sits at position `len`. Block K/V are never stored: they are recomputed
//! each round, so rejected drafts leave nothing to roll back.

use super::error::DsparkError;

#[derive(Debug, Clone, PartialEq)]
pub struct DraftState {
    len: usize,
    window: usize,
    dim: usize,
    /// Per stage `window × dim`.
    rings: Vec<Vec<f32>>,
}

impl DraftState {
    pub(super) fn new(stages: usize, window: usize, dim: usize) -> DraftState {
        DraftState {
            len: 0,
            window,
            dim,
            rings: vec![vec![0.0; window * dim]; stages],
        }
    }

    /// Positions absorbed; the next anchor's position.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held (a fixed amount: the rings).
    pub fn bytes(&self) -> usize {
        self.rings.iter().map(|r| r.len() * 4).sum()
    }

    /// Ring slots holding context: `0..valid()`.
    pub(super) fn valid(&self) -> usize {
        self.len.min(self.window)
    }

    /// The ring slot of position `pos`.
    pub(super) fn slot(&self, pos: usize) -> usize {
        pos % self.window
    }

    /// Stage `s`'s valid context rows, in slot order.
    pub(super) fn context(&self, stage: usize) -> impl Iterator<Item = &[f32]> {
        self.rings[stage][..self.valid() * self.dim].chunks_exact(self.dim)
    }

    /// Checks that this state belongs to a drafter of this shape.
    pub(super) fn check_shape(
        &self,
        stages: usize,
        window: usize,
        dim: usize,
    ) -> Result<(), DsparkError> {
        if (self.rings.len(), self.window, self.dim) == (stages, window, dim) {
            return Ok(());
        }
        Err(DsparkError::ForeignState {
            stages: self.rings.len(),
            window: self.window,
            expected_stages: stages,
            expected_window: window,
        })
    }

    /// Stores stage `s`'s row for position `pos`; the caller writes every
    /// stage of a position, then [`DraftState::advance`]s.
    pub(super) fn write(&mut self, stage: usize, pos: usize, row: &[f32]) {
        let (slot, dim) = (self.slot(pos), self.dim);
        self.rings[stage][slot * dim..(slot + 1) * dim].copy_from_slice(row);
    }

    /// Marks positions up to `len` (exclusive) absorbed.
    pub(super) fn advance(&mut self, len: usize) {
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Absorbs positions `from..to` writing each position's own index.
    fn absorb(s: &mut DraftState, from: usize, to: usize) {
        for pos in from..to {
            s.write(0, pos, &[pos as f32, -(pos as f32)]);
        }
        s.advance(to);
    }

    fn held(s: &DraftState) -> Vec<f32> {
        s.context(0).map(|r| r[0]).collect()
    }

    #[test]
    fn the_ring_holds_the_last_window_positions_at_pos_mod_window() {
        let mut s = DraftState::new(1, 4, 2);
        assert!(s.is_empty());
        absorb(&mut s, 0, 3);
        assert_eq!((s.len(), s.valid()), (3, 3));
        assert_eq!(held(&s), [0.0, 1.0, 2.0]);
        absorb(&mut s, 3, 6);
        // Positions 2..6: 4 → slot 0, 5 → slot 1, 2 → slot 2, 3 → slot 3.
        assert_eq!(held(&s), [4.0, 5.0, 2.0, 3.0]);
        absorb(&mut s, 6, 13);
        assert_eq!(held(&s), [12.0, 9.0, 10.0, 11.0]);
        assert_eq!(s.slot(13), 1);
        assert_eq!(s.bytes(), 4 * 2 * 4);
    }

    #[test]
    fn a_state_of_another_shape_is_refused() {
        let s = DraftState::new(3, 8, 4);
        assert!(s.check_shape(3, 8, 4).is_ok());
        let e = s.check_shape(2, 8, 4).unwrap_err().to_string();
        assert!(e.contains("3 stages"), "{e}");
    }
}
