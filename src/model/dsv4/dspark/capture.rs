//! DSpark's view of the target: `main_hidden`, for each captured position
//! the concatenation over the target layers of the mean of the `hc`
//! residual streams *after* that layer (a plain mean, not the learned
//! `hc_head`; V4.1 reads the layer inputs instead, which this is not).
//!
//! Only the last positions of a chunk are captured: the draft state keeps
//! one window of context, so after a long prefill only the last `window`
//! rows are ever used, and after a verify only the kept ones.
//!
//! Invariant: a captured row depends only on its position's residual
//! stream, so it is the same under any chunking or batching of the target
//! forward. In official precision the mean is rounded to bf16, the dtype of
//! the streams it averages.

use super::super::attention::Span;
use super::super::precision::Precision;

/// `main_hidden` rows of one chunk's last positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    /// Position of the first captured row.
    pub pos0: usize,
    /// Values per row: target layers × hidden.
    pub width: usize,
    /// `rows × width`, position-major.
    pub hidden: Vec<f32>,
}

impl Captured {
    pub fn rows(&self) -> usize {
        // No target layers, no width: nothing was captured.
        self.hidden.len().checked_div(self.width).unwrap_or(0)
    }

    /// The first `rows` rows (the positions a verify kept), clamped to the
    /// rows captured.
    pub fn first(&self, rows: usize) -> &[f32] {
        &self.hidden[..rows.min(self.rows()) * self.width]
    }
}

/// Accumulates [`Captured`] rows layer by layer during a target forward.
pub(in crate::model::dsv4) struct Capture<'a> {
    layers: &'a [usize],
    hidden: usize,
    hc: usize,
    /// Per chunk: first batch row captured.
    first_row: Vec<usize>,
    out: Vec<Captured>,
}

impl<'a> Capture<'a> {
    /// Captures the last `rows[i]` positions of `spans[i]` (clamped to its
    /// length; a missing entry captures none).
    pub(in crate::model::dsv4) fn new(
        layers: &'a [usize],
        rows: &[usize],
        spans: &[Span],
        hidden: usize,
        hc: usize,
    ) -> Capture<'a> {
        let width = layers.len() * hidden;
        let (first_row, out) = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = rows.get(i).copied().unwrap_or(0).min(s.len);
                let captured = Captured {
                    pos0: s.pos0 + s.len - n,
                    width,
                    hidden: vec![0.0; n * width],
                };
                (s.row + s.len - n, captured)
            })
            .unzip();
        Capture {
            layers,
            hidden,
            hc,
            first_row,
            out,
        }
    }

    /// Records the streams (`tokens × hc × hidden`) after main layer `layer`.
    pub(in crate::model::dsv4) fn after_layer(
        &mut self,
        layer: usize,
        streams: &[f32],
        p: Precision,
    ) {
        let (d, hc) = (self.hidden, self.hc);
        let slots = self.layers.iter().enumerate().filter(|(_, l)| **l == layer);
        for (j, _) in slots {
            for (cap, &r0) in self.out.iter_mut().zip(&self.first_row) {
                let width = cap.width;
                for (t, row) in cap.hidden.chunks_exact_mut(width).enumerate() {
                    let s = &streams[(r0 + t) * hc * d..(r0 + t + 1) * hc * d];
                    let dst = &mut row[j * d..(j + 1) * d];
                    mean_of_streams(s, dst);
                    p.bf16(dst);
                }
            }
        }
    }

    pub(in crate::model::dsv4) fn finish(self) -> Vec<Captured> {
        self.out
    }
}

/// `out[i] = Σ_k streams[k][i] / hc`, the streams summed in order.
fn mean_of_streams(streams: &[f32], out: &mut [f32]) {
    let d = out.len();
    let hc = streams.len() / d;
    out.fill(0.0);
    for s in streams.chunks_exact(d) {
        out.iter_mut().zip(s).for_each(|(o, v)| *o += v);
    }
    let inv = hc as f32;
    out.iter_mut().for_each(|o| *o /= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_the_last_rows_of_each_chunk_at_their_layer_slot() {
        // Two chunks (3 and 2 tokens), hidden 2, hc 2; capture layer 7 into
        // slot 1 and layer 5 into slot 0.
        let spans = [
            Span {
                row: 0,
                len: 3,
                pos0: 10,
                undo: false,
            },
            Span {
                row: 3,
                len: 2,
                pos0: 0,
                undo: false,
            },
        ];
        let layers = [5, 7];
        let mut cap = Capture::new(&layers, &[2, 9], &spans, 2, 2);
        // Token t's streams: [t, t+1] and [t+2, t+3] → mean [t+1, t+2].
        let streams: Vec<f32> = (0..5)
            .flat_map(|t| [t, t + 1, t + 2, t + 3].map(|v| v as f32))
            .collect();
        cap.after_layer(5, &streams, Precision::Exact);
        let tripled: Vec<f32> = streams.iter().map(|v| v * 3.0).collect();
        cap.after_layer(7, &tripled, Precision::Exact);
        cap.after_layer(6, &[f32::NAN; 20], Precision::Exact);
        let out = cap.finish();
        assert_eq!((out[0].pos0, out[0].rows(), out[0].width), (11, 2, 4));
        assert_eq!(out[0].hidden, [2.0, 3.0, 6.0, 9.0, 3.0, 4.0, 9.0, 12.0]);
        assert_eq!((out[1].pos0, out[1].rows()), (0, 2));
        assert_eq!(out[1].first(1), [4.0, 5.0, 12.0, 15.0]);
        assert_eq!(out[1].first(5).len(), 8);
    }
}
