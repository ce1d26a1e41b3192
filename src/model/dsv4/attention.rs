//! The attention sublayer of one block over a batch of sequence spans.
//!
//! Every layer attends over its sliding window (the last `window` raw KV
//! rows, itself included). HCA layers add every compressed row whose window
//! has closed; CSA layers add the top-k compressed rows by the Lightning
//! indexer's score. K = V (one shared 512-dim head in the real model), a
//! learned per-head sink joins the softmax denominator, and the output is
//! de-rotated before the grouped low-rank output projection.
//!
//! Invariant: a token's output depends only on its own sequence's state and
//! earlier tokens, computed in a fixed order, so any chunking of a prompt
//! (and any batch) gives the same values.

use rayon::prelude::*;

use super::compressor::CompressorState;
use super::config::Dsv4Config;
use super::indexer::{self, IndexQuery};
use super::precision::{Gemm, Precision};
use super::rope::Rope;
use super::state::LayerState;
use super::weights::{AttentionWeights, CompressorWeights};

/// Where a sequence's tokens sit in the batch.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// First row of the span in the batch.
    pub row: usize,
    pub len: usize,
    /// Absolute position of the span's first token.
    pub pos0: usize,
    /// Save what each token overwrites into the layer's undo record.
    pub undo: bool,
}

/// `x ← x · rsqrt(mean(x²) + eps) · w` (or without weight).
pub fn rms_norm(x: &mut [f32], w: Option<&[f32]>, eps: f32) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let r = 1.0 / (ms + eps).sqrt();
    match w {
        Some(w) => x.iter_mut().zip(w).for_each(|(v, g)| *v = *v * r * g),
        None => x.iter_mut().for_each(|v| *v *= r),
    }
}

pub(super) fn norm_rows(x: &mut [f32], w: &[f32], eps: f32) {
    x.chunks_exact_mut(w.len())
        .for_each(|r| rms_norm(r, Some(w), eps));
}

/// Where a compressor keeps its open window, its finished rows and the
/// slots its undo record saves.
type Select = fn(&mut LayerState) -> (&mut CompressorState, &mut Vec<f32>, &mut [f32]);

fn main_compressor(l: &mut LayerState) -> (&mut CompressorState, &mut Vec<f32>, &mut [f32]) {
    let LayerState {
        compressor,
        compressed,
        undo,
        ..
    } = l;
    let state = compressor
        .as_mut()
        .expect("compressed layers have a compressor state");
    (state, compressed, &mut undo.compressor)
}

fn index_compressor(l: &mut LayerState) -> (&mut CompressorState, &mut Vec<f32>, &mut [f32]) {
    let LayerState {
        index_compressor,
        index_keys,
        undo,
        ..
    } = l;
    let state = index_compressor
        .as_mut()
        .expect("CSA layers have an index compressor");
    (state, index_keys, &mut undo.index_compressor)
}

/// Projects `x` through a compressor and feeds every span's rows, in order,
/// to its sequence's open window (`select`ed from the layer state); the
/// finished entries are normed, rotated to their window's first position,
/// `finish`ed (KV FP8, or indexer Hadamard+FP4) and appended. A span that
/// keeps an undo record first saves the slot each token overwrites.
#[allow(clippy::too_many_arguments)]
fn compress(
    cw: &CompressorWeights,
    p: Precision,
    x: &[f32],
    spans: &[Span],
    states: &mut [&mut LayerState],
    rope: &Rope,
    eps: f32,
    select: Select,
    finish: impl Fn(&mut [f32]),
) {
    let n = x.len() / cw.wkv.cols;
    let kv = p.linear(&cw.wkv, x, n, Gemm::F32);
    let score = p.linear(&cw.wgate, x, n, Gemm::F32);
    let width = cw.wkv.rows;
    let saved_len = CompressorState::slot_len(cw);
    for (span, st) in spans.iter().zip(states.iter_mut()) {
        let (state, out, saved) = select(st);
        for t in 0..span.len {
            let r = span.row + t;
            let pos = span.pos0 + t;
            let rows = (
                &kv[r * width..(r + 1) * width],
                &score[r * width..(r + 1) * width],
            );
            if span.undo {
                state.save_slot(cw, pos, &mut saved[t * saved_len..(t + 1) * saved_len]);
            }
            if let Some(mut e) = state.push(cw, pos, rows.0, rows.1) {
                rms_norm(&mut e, Some(&cw.norm), eps);
                rope.apply(&mut e, pos + 1 - cw.ratio, false);
                finish(&mut e);
                out.extend_from_slice(&e);
            }
        }
    }
}

/// The K = V rows one query attends to, in softmax order: scattered rows
/// (window, CSA selections) then a contiguous run (every HCA entry, read in
/// place: at 1M tokens that is 8K rows per query).
pub(super) struct Keys<'a> {
    pub(super) rows: Vec<&'a [f32]>,
    pub(super) run: &'a [f32],
    pub(super) dim: usize,
}

impl Keys<'_> {
    fn len(&self) -> usize {
        self.rows.len() + self.run.len() / self.dim
    }

    fn iter(&self) -> impl Iterator<Item = &[f32]> {
        self.rows
            .iter()
            .copied()
            .chain(self.run.chunks_exact(self.dim))
    }
}

/// Softmax with a sink over `keys`, returning Σ p_j k_j. `probs` is scratch.
fn attend(
    q: &[f32],
    keys: &Keys<'_>,
    sink: f32,
    scale: f32,
    p: Precision,
    probs: &mut Vec<f32>,
    out: &mut [f32],
) {
    probs.clear();
    probs.resize(keys.len(), 0.0);
    scores(q, keys, scale, probs);
    let max = probs.iter().cloned().fold(sink, f32::max);
    let mut den = 0.0f32;
    for v in probs.iter_mut() {
        *v = (*v - max).exp();
        den += *v;
    }
    den += (sink - max).exp();
    probs.iter_mut().for_each(|v| *v /= den);
    p.bf16(probs);
    weighted_sum(probs, keys, out);
}

/// `out[j] = (q · keys[j]) · scale`.
fn scores(q: &[f32], keys: &Keys<'_>, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { scores_avx2(q, keys, scale, out) };
        return;
    }
    scores_portable(q, keys, scale, out);
}

/// `out = Σ_j probs[j] · keys[j]`.
fn weighted_sum(probs: &[f32], keys: &Keys<'_>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { weighted_sum_avx2(probs, keys, out) };
        return;
    }
    weighted_sum_portable(probs, keys, out);
}

// The AVX2 builds compile the portable loops with wider vectors; Rust never
// contracts `a * b + c` into an FMA, so every build gives the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scores_avx2(q: &[f32], keys: &Keys<'_>, scale: f32, out: &mut [f32]) {
    scores_portable(q, keys, scale, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weighted_sum_avx2(probs: &[f32], keys: &Keys<'_>, out: &mut [f32]) {
    weighted_sum_portable(probs, keys, out);
}

/// Dot products in 8 lanes (element i into lane i mod 8), folded by halving.
#[inline(always)]
fn scores_portable(q: &[f32], keys: &Keys<'_>, scale: f32, out: &mut [f32]) {
    const LANES: usize = 8;
    let (q_full, q_rest) = q.as_chunks::<LANES>();
    for (o, k) in out.iter_mut().zip(keys.iter()) {
        let (k_full, k_rest) = k.as_chunks::<LANES>();
        let mut lanes = [0.0f32; LANES];
        for (qc, kc) in q_full.iter().zip(k_full) {
            for ((l, a), b) in lanes.iter_mut().zip(qc).zip(kc) {
                *l += a * b;
            }
        }
        for ((l, a), b) in lanes.iter_mut().zip(q_rest).zip(k_rest) {
            *l += a * b;
        }
        let [a, b, c, d, e, f, g, h] = lanes;
        *o = (((a + e) + (c + g)) + ((b + f) + (d + h))) * scale;
    }
}

#[inline(always)]
fn weighted_sum_portable(probs: &[f32], keys: &Keys<'_>, out: &mut [f32]) {
    out.fill(0.0);
    for (w, k) in probs.iter().zip(keys.iter()) {
        out.iter_mut().zip(k).for_each(|(o, v)| *o += w * v);
    }
}

/// One layer's attention for all spans; `x` is the normed input
/// (`n × hidden`), `states[i]` belongs to `spans[i]`. Returns `n × hidden`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    c: &Dsv4Config,
    w: &AttentionWeights,
    rope: &Rope,
    p: Precision,
    x: &[f32],
    spans: &[Span],
    states: &mut [&mut LayerState],
) -> Vec<f32> {
    let n = x.len() / c.hidden;
    let (hd, heads) = (c.head_dim, c.n_heads);
    let eps = c.rms_eps;
    // Spans are contiguous and in row order.
    let positions: Vec<usize> = spans.iter().flat_map(|s| s.pos0..s.pos0 + s.len).collect();

    let (qr, q) = queries(c, w, rope, p, x, &positions);
    let kv = window_kv(c, w, rope, p, x, &positions);

    if let Some(cw) = &w.compressor {
        let finish = |e: &mut [f32]| {
            p.bf16(e);
            p.kv(e, c.nope_dim());
        };
        compress(cw, p, x, spans, states, rope, eps, main_compressor, finish);
    }

    // Indexer queries and head weights (CSA layers).
    let index = w.indexer.as_ref().map(|iw| {
        let (ih, id) = (c.index_heads, c.index_head_dim);
        let mut iq = p.linear(&iw.wq_b, &qr, n, Gemm::Quantized);
        for (t, row) in iq.chunks_exact_mut(ih * id).enumerate() {
            for h in row.chunks_exact_mut(id) {
                rope.apply(h, positions[t], false);
                p.index(h);
            }
        }
        let mut iwts = p.linear(&iw.weights_proj, x, n, Gemm::Bf16);
        let s = (id as f32).powf(-0.5) * (ih as f32).powf(-0.5);
        iwts.iter_mut().for_each(|v| *v *= s);
        let finish = |e: &mut [f32]| {
            p.bf16(e);
            p.index(e);
        };
        compress(
            &iw.compressor,
            p,
            x,
            spans,
            states,
            rope,
            eps,
            index_compressor,
            finish,
        );
        (iq, iwts)
    });

    // Compressed entries each token attends to: the indexer's top-k (CSA),
    // every closed window (HCA), none (sliding).
    let ratio = w.compressor.as_ref().map_or(0, |cw| cw.ratio);
    let visible = |pos: usize| (pos + 1).checked_div(ratio).unwrap_or(0);
    let selected: Vec<Vec<usize>> = match &index {
        Some((iq, iwts)) => {
            let (ih, id) = (c.index_heads, c.index_head_dim);
            spans
                .iter()
                .zip(states.iter())
                .flat_map(|(span, st)| {
                    let queries: Vec<IndexQuery<'_>> = (0..span.len)
                        .map(|t| {
                            let r = span.row + t;
                            IndexQuery {
                                q: &iq[r * ih * id..(r + 1) * ih * id],
                                weights: &iwts[r * ih..(r + 1) * ih],
                                visible: visible(span.pos0 + t),
                            }
                        })
                        .collect();
                    indexer::select(&queries, &st.index_keys, id, c.index_topk)
                })
                .collect()
        }
        None => Vec::new(),
    };

    // Core attention, token by token, all spans' tokens in parallel.
    let span_of: Vec<usize> = spans
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::repeat_n(i, s.len))
        .collect();
    let states_ro: Vec<&LayerState> = states.iter().map(|s| &**s).collect();
    let mut heads_out = vec![0.0f32; n * heads * hd];
    heads_out
        .par_chunks_mut(heads * hd)
        .enumerate()
        .for_each_init(Vec::new, |probs, (r, o)| {
            let (span, st) = (&spans[span_of[r]], states_ro[span_of[r]]);
            let pos = span.pos0 + (r - span.row);
            let first = (pos + 1).saturating_sub(c.window);
            let raw = |k: usize| -> &[f32] {
                if k >= span.pos0 {
                    let kr = span.row + (k - span.pos0);
                    &kv[kr * hd..(kr + 1) * hd]
                } else {
                    let slot = k % c.window;
                    &st.ring[slot * hd..(slot + 1) * hd]
                }
            };
            let mut keys = Keys {
                rows: (first..=pos).map(raw).collect(),
                run: &[],
                dim: hd,
            };
            match selected.get(r) {
                Some(ids) => keys
                    .rows
                    .extend(ids.iter().map(|&e| &st.compressed[e * hd..(e + 1) * hd])),
                None => keys.run = &st.compressed[..visible(pos) * hd],
            }
            let qrow = &q[r * heads * hd..(r + 1) * heads * hd];
            attend_heads(&w.sink, rope, p, qrow, &keys, pos, probs, o);
        });
    p.bf16(&mut heads_out);

    // The window ring keeps the last `window` raw rows (a span that keeps
    // an undo record is never longer than the window).
    for (span, st) in spans.iter().zip(states.iter_mut()) {
        for t in span.len.saturating_sub(c.window)..span.len {
            let slot = (span.pos0 + t) % c.window;
            let r = span.row + t;
            let ring = &mut st.ring[slot * hd..(slot + 1) * hd];
            if span.undo {
                st.undo.ring[t * hd..(t + 1) * hd].copy_from_slice(ring);
            }
            ring.copy_from_slice(&kv[r * hd..(r + 1) * hd]);
        }
    }

    grouped_output(c, w, p, &heads_out, n)
}

/// `(qr, q)` of `n` normed rows at `positions`: `qr = q_norm(wq_a·x)` (the
/// indexer's input too) and the per-head RMS-normed, rotated queries.
pub(super) fn queries(
    c: &Dsv4Config,
    w: &AttentionWeights,
    rope: &Rope,
    p: Precision,
    x: &[f32],
    positions: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let (n, hd) = (positions.len(), c.head_dim);
    let mut qr = p.linear(&w.wq_a, x, n, Gemm::Quantized);
    norm_rows(&mut qr, &w.q_norm, c.rms_eps);
    p.bf16(&mut qr);
    let mut q = p.linear(&w.wq_b, &qr, n, Gemm::Quantized);
    for (t, row) in q.chunks_exact_mut(c.n_heads * hd).enumerate() {
        for h in row.chunks_exact_mut(hd) {
            rms_norm(h, None, c.rms_eps);
            rope.apply(h, positions[t], false);
        }
    }
    p.bf16(&mut q);
    (qr, q)
}

/// The raw K = V rows of `n` inputs at `positions`: `kv_norm(wkv·x)`,
/// rotated, then (official precision) bf16 and the FP8 round trip of the
/// non-RoPE dims.
pub(super) fn window_kv(
    c: &Dsv4Config,
    w: &AttentionWeights,
    rope: &Rope,
    p: Precision,
    x: &[f32],
    positions: &[usize],
) -> Vec<f32> {
    let hd = c.head_dim;
    let mut kv = p.linear(&w.wkv, x, positions.len(), Gemm::Quantized);
    norm_rows(&mut kv, &w.kv_norm, c.rms_eps);
    for (row, &pos) in kv.chunks_exact_mut(hd).zip(positions) {
        rope.apply(row, pos, false);
        p.bf16(row);
        p.kv(row, c.nope_dim());
    }
    kv
}

/// One query token's output (`heads × head_dim`, into `out`): each head's
/// sink softmax over `keys`, de-rotated at the query position `pos`.
#[allow(clippy::too_many_arguments)]
pub(super) fn attend_heads(
    sink: &[f32],
    rope: &Rope,
    p: Precision,
    q: &[f32],
    keys: &Keys<'_>,
    pos: usize,
    probs: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = keys.dim;
    let scale = (hd as f32).powf(-0.5);
    for (h, oh) in out.chunks_exact_mut(hd).enumerate() {
        attend(&q[h * hd..(h + 1) * hd], keys, sink[h], scale, p, probs, oh);
        rope.apply(oh, pos, true);
    }
}

/// Grouped low-rank output of `n` tokens' head outputs: group g's heads
/// through rows g·rank.. of wo_a (a bf16 einsum), then wo_b.
pub(super) fn grouped_output(
    c: &Dsv4Config,
    w: &AttentionWeights,
    p: Precision,
    heads_out: &[f32],
    n: usize,
) -> Vec<f32> {
    let (hd, heads) = (c.head_dim, c.n_heads);
    let group_in = heads * hd / c.o_groups;
    let rank = c.o_lora_rank;
    let mut low = vec![0.0f32; n * c.o_groups * rank];
    for g in 0..c.o_groups {
        let xin: Vec<f32> = heads_out
            .chunks_exact(heads * hd)
            .flat_map(|row| row[g * group_in..(g + 1) * group_in].iter().copied())
            .collect();
        let mut part = vec![0.0f32; n * rank];
        w.wo_a
            .matmul_rows(g * rank..(g + 1) * rank, &xin, n, &mut part);
        for (dst, src) in low
            .chunks_exact_mut(c.o_groups * rank)
            .zip(part.chunks_exact(rank))
        {
            dst[g * rank..(g + 1) * rank].copy_from_slice(src);
        }
    }
    p.bf16(&mut low);
    p.linear(&w.wo_b, &low, n, Gemm::Quantized)
}
