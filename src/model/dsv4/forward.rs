//! The DeepSeek-V4 forward pass over a batch of sequence chunks: embedding
//! into `hc` streams, per block the mHC-wrapped attention and MoE sublayers,
//! then the `hc_head` collapse, the final norm and the head.
//!
//! [`Dsv4Model::forward_capture`] also returns DSpark's `main_hidden` for
//! the last positions of each chunk; plain [`Dsv4Model::forward`] does no
//! capture work at all.
//!
//! Invariant (chunk and batch invariance): a chunk continues its sequence's
//! [`SeqState`] at `state.len`; the logits (and captured rows) of a position
//! are the same whether the sequence is fed whole, in chunks of any size,
//! token by token, or next to other sequences. A chunk that
//! [`SeqState::keeps_undo`] can be cut back afterwards (`undo.rs`), leaving
//! the state, and so every later logit, as if the cut tokens had never been
//! fed.

use super::attention::{Span, attention, norm_rows};
use super::config::Dsv4Config;
use super::dspark::capture::{Capture, Captured};
use super::mhc::{collapse, expand, head_weights, site_mixes};
use super::moe::moe;
use super::precision::{Gemm, Precision};
use super::rope::Rope;
use super::state::SeqState;
use super::weights::{Dsv4Weights, MhcWeights};

/// One sequence's share of a step.
pub struct Chunk<'a> {
    pub state: &'a mut SeqState,
    pub tokens: &'a [u32],
    /// Logits are returned for the last `logits_for` tokens.
    pub logits_for: usize,
}

/// Weights plus what the forward pass derives from them once.
#[derive(Debug)]
pub struct Dsv4Model {
    pub weights: Dsv4Weights,
    pub precision: Precision,
    ropes: Vec<Rope>,
}

impl Dsv4Model {
    pub fn new(weights: Dsv4Weights, precision: Precision) -> Dsv4Model {
        let c = &weights.config;
        let ropes = (0..c.n_layers)
            .map(|i| Rope::for_layer(c, c.kind(i)))
            .collect();
        Dsv4Model {
            weights,
            precision,
            ropes,
        }
    }

    pub fn config(&self) -> &Dsv4Config {
        &self.weights.config
    }

    pub fn new_state(&self) -> SeqState {
        SeqState::new(&self.weights)
    }

    /// Runs the chunks; returns per chunk `logits_for × vocab` logits.
    pub fn forward(&self, chunks: &mut [Chunk<'_>]) -> Vec<Vec<f32>> {
        self.run(chunks, None).0
    }

    /// [`Dsv4Model::forward`] that also captures, for the last `rows[i]`
    /// positions of chunk `i` (at most its length), the concatenation over
    /// `layers` of the mean of the hc streams after that layer: DSpark's
    /// `main_hidden` when `layers` are its target layers. A missing
    /// `rows[i]` captures nothing.
    ///
    /// # Panics
    /// If a layer in `layers` does not exist (the DSpark config is checked
    /// against the model at load).
    pub fn forward_capture(
        &self,
        chunks: &mut [Chunk<'_>],
        layers: &[usize],
        rows: &[usize],
    ) -> (Vec<Vec<f32>>, Vec<Captured>) {
        assert!(
            layers.iter().all(|&l| l < self.config().n_layers),
            "capture layers {layers:?} outside the model"
        );
        self.run(chunks, Some((layers, rows)))
    }

    fn run(
        &self,
        chunks: &mut [Chunk<'_>],
        capture: Option<(&[usize], &[usize])>,
    ) -> (Vec<Vec<f32>>, Vec<Captured>) {
        let c = self.config();
        let p = self.precision;
        let (d, hc) = (c.hidden, c.hc_mult);
        let mut spans = Vec::with_capacity(chunks.len());
        let mut tokens = Vec::new();
        for ch in chunks.iter() {
            spans.push(Span {
                row: tokens.len(),
                len: ch.tokens.len(),
                pos0: ch.state.len,
                undo: ch.state.keeps_undo(ch.tokens.len(), ch.logits_for),
            });
            tokens.extend_from_slice(ch.tokens);
        }
        let n = tokens.len();
        let mut streams = self.embed(&tokens);
        let mut capture = capture.map(|(layers, rows)| Capture::new(layers, rows, &spans, d, hc));
        for (i, block) in self.weights.layers.iter().enumerate() {
            let mut states: Vec<_> = chunks
                .iter_mut()
                .map(|ch| &mut ch.state.layers[i])
                .collect();
            self.site(&block.hc_attn, &block.attn_norm, &mut streams, n, |x| {
                attention(c, &block.attn, &self.ropes[i], p, x, &spans, &mut states)
            });
            self.site(&block.hc_ffn, &block.ffn_norm, &mut streams, n, |x| {
                moe(c, &block.moe, p, x, &tokens)
            });
            if let Some(cap) = &mut capture {
                cap.after_layer(i, &streams, p);
            }
        }
        for (span, ch) in spans.iter().zip(chunks.iter_mut()) {
            ch.state.len += span.len;
            ch.state.undo_from = span.undo.then_some(span.pos0);
        }
        let logits = spans
            .iter()
            .zip(chunks.iter())
            .map(|(s, ch)| {
                let rows = s.row + s.len - ch.logits_for..s.row + s.len;
                let x = self.collapse_head(
                    &self.weights.hc_head,
                    &streams[rows.start * hc * d..rows.end * hc * d],
                    ch.logits_for,
                );
                self.head_logits(&self.weights.norm, x, ch.logits_for)
            })
            .collect();
        (logits, capture.map_or_else(Vec::new, Capture::finish))
    }

    /// The `hc` identical streams of each token's embedding row.
    pub(super) fn embed(&self, tokens: &[u32]) -> Vec<f32> {
        let c = self.config();
        let (d, hc) = (c.hidden, c.hc_mult);
        let mut streams = vec![0.0f32; tokens.len() * hc * d];
        let mut row = vec![0.0f32; d];
        for (t, &tok) in tokens.iter().enumerate() {
            self.weights.embed.dequantize_row(tok as usize, &mut row);
            for s in streams[t * hc * d..(t + 1) * hc * d].chunks_exact_mut(d) {
                s.copy_from_slice(&row);
            }
        }
        streams
    }

    /// One mHC-wrapped sublayer: collapse the streams, norm, run `f`, expand.
    pub(super) fn site(
        &self,
        hcw: &MhcWeights,
        norm: &[f32],
        streams: &mut [f32],
        n: usize,
        f: impl FnOnce(&[f32]) -> Vec<f32>,
    ) {
        let c = self.config();
        let p = self.precision;
        let (d, hc) = (c.hidden, c.hc_mult);
        let mixes = site_mixes(hcw, streams, n, hc, c.hc_iters, c.rms_eps, c.hc_eps);
        let mut x = vec![0.0f32; n * d];
        for (t, mix) in mixes.iter().enumerate() {
            collapse(
                &mix.pre,
                &streams[t * hc * d..(t + 1) * hc * d],
                &mut x[t * d..(t + 1) * d],
            );
        }
        p.bf16(&mut x);
        norm_rows(&mut x, norm, c.rms_eps);
        p.bf16(&mut x);
        let out = f(&x);
        for (t, mix) in mixes.iter().enumerate() {
            let s = &mut streams[t * hc * d..(t + 1) * hc * d];
            expand(mix, &out[t * d..(t + 1) * d], s);
            p.bf16(s);
        }
    }

    /// The sigmoid-gated `hc_head` collapse of `n` tokens' streams: the
    /// head's input before its norm.
    pub(super) fn collapse_head(
        &self,
        hc_head: &MhcWeights,
        streams: &[f32],
        n: usize,
    ) -> Vec<f32> {
        let c = self.config();
        let (d, hc) = (c.hidden, c.hc_mult);
        let pre = head_weights(hc_head, streams, n, c.rms_eps, c.hc_eps);
        let mut x = vec![0.0f32; n * d];
        for (t, pw) in pre.iter().enumerate() {
            collapse(
                pw,
                &streams[t * hc * d..(t + 1) * hc * d],
                &mut x[t * d..(t + 1) * d],
            );
        }
        self.precision.bf16(&mut x);
        x
    }

    /// `norm` then the target head: f32 logits of `n` rows.
    pub(super) fn head_logits(&self, norm: &[f32], mut x: Vec<f32>, n: usize) -> Vec<f32> {
        let c = self.config();
        norm_rows(&mut x, norm, c.rms_eps);
        self.precision.bf16(&mut x);
        self.precision.linear(&self.weights.head, &x, n, Gemm::F32)
    }
}
