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

/// Where a compressor keeps its open window and its finished rows.
type Select = fn(&mut LayerState) -> (&mut CompressorState, &mut Vec<f32>);

fn main_compressor(l: &mut LayerState) -> (&mut CompressorState, &mut Vec<f32>) {
    let LayerState {
        compressor,
        compressed,
        ..
    } = l;
    let state = compressor
        .as_mut()
        .expect("compressed layers have a compressor state");
    (state, compressed)
}

fn index_compressor(l: &mut LayerState) -> (&mut CompressorState, &mut Vec<f32>) {
    let LayerState {
        index_compressor,
        index_keys,
        ..
    } = l;
    let state = index_compressor
        .as_mut()
        .expect("CSA layers have an index compressor");
    (state, index_keys)
}

/// Projects `x` through a compressor and feeds every span's rows, in order,
/// to its sequence's open window (`select`ed from the layer state); the
/// finished entries are normed, rotated to their window's first position,
/// `finish`ed (KV FP8, or indexer Hadamard+FP4) and appended.
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
    for (span, st) in spans.iter().zip(states.iter_mut()) {
        let (state, out) = select(st);
        for t in 0..span.len {
            let r = span.row + t;
            let pos = span.pos0 + t;
            let rows = (
                &kv[r * width..(r + 1) * width],
                &score[r * width..(r + 1) * width],
            );
            if let Some(mut e) = state.push(cw, pos, rows.0, rows.1) {
                rms_norm(&mut e, Some(&cw.norm), eps);
                rope.apply(&mut e, pos + 1 - cw.ratio, false);
                finish(&mut e);
                out.extend_from_slice(&e);
            }
        }
    }
}

/// Softmax with a sink over `keys` (rows of `q.len()`), returning Σ p_j k_j.
fn attend(q: &[f32], keys: &[&[f32]], sink: f32, scale: f32, p: Precision, out: &mut [f32]) {
    let scores: Vec<f32> = keys
        .iter()
        .map(|k| q.iter().zip(*k).map(|(a, b)| a * b).sum::<f32>() * scale)
        .collect();
    let max = scores.iter().cloned().fold(sink, f32::max);
    let mut probs: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let den = probs.iter().sum::<f32>() + (sink - max).exp();
    probs.iter_mut().for_each(|v| *v /= den);
    p.bf16(&mut probs);
    out.fill(0.0);
    for (w, k) in probs.iter().zip(keys) {
        out.iter_mut().zip(*k).for_each(|(o, v)| *o += w * v);
    }
}

/// Indexer scores of the visible entries for one query, then the top-k
/// entry ids (ties to the lower id, so the choice is deterministic).
fn top_entries(
    q: &[f32],
    weights: &[f32],
    keys: &[f32],
    dim: usize,
    visible: usize,
    k: usize,
) -> Vec<usize> {
    if visible <= k {
        return (0..visible).collect();
    }
    let mut scored: Vec<(f32, usize)> = (0..visible)
        .map(|s| {
            let key = &keys[s * dim..(s + 1) * dim];
            let score = q
                .chunks_exact(dim)
                .zip(weights)
                .map(|(qh, w)| w * qh.iter().zip(key).map(|(a, b)| a * b).sum::<f32>().max(0.0))
                .sum::<f32>();
            (score, s)
        })
        .collect();
    // Linear-time selection: at long context there are ~len/4 candidates
    // per query, and only the set matters (attention sums over it).
    let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    scored.select_nth_unstable_by(k - 1, order);
    let mut ids: Vec<usize> = scored[..k].iter().map(|&(_, s)| s).collect();
    ids.sort_unstable();
    ids
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

    let mut qr = p.linear(&w.wq_a, x, n, Gemm::Quantized);
    norm_rows(&mut qr, &w.q_norm, eps);
    p.bf16(&mut qr);
    let mut q = p.linear(&w.wq_b, &qr, n, Gemm::Quantized);
    for (t, row) in q.chunks_exact_mut(heads * hd).enumerate() {
        let pos = positions[t];
        for h in row.chunks_exact_mut(hd) {
            rms_norm(h, None, eps);
            rope.apply(h, pos, false);
        }
    }
    p.bf16(&mut q);
    let mut kv = p.linear(&w.wkv, x, n, Gemm::Quantized);
    norm_rows(&mut kv, &w.kv_norm, eps);
    for (t, row) in kv.chunks_exact_mut(hd).enumerate() {
        rope.apply(row, positions[t], false);
        p.bf16(row);
        p.kv(row, c.nope_dim());
    }

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

    // Core attention, token by token.
    let scale = (hd as f32).powf(-0.5);
    let ratio = w.compressor.as_ref().map_or(0, |cw| cw.ratio);
    let mut heads_out = vec![0.0f32; n * heads * hd];
    for (span, st) in spans.iter().zip(states.iter()) {
        let st: &LayerState = st;
        let out = &mut heads_out[span.row * heads * hd..(span.row + span.len) * heads * hd];
        out.par_chunks_mut(heads * hd)
            .enumerate()
            .for_each(|(t, o)| {
                let r = span.row + t;
                let pos = span.pos0 + t;
                let first = (pos + 1).saturating_sub(c.window);
                let mut keys: Vec<&[f32]> = (first..=pos)
                    .map(|k| {
                        if k >= span.pos0 {
                            let kr = span.row + (k - span.pos0);
                            &kv[kr * hd..(kr + 1) * hd]
                        } else {
                            let slot = k % c.window;
                            &st.ring[slot * hd..(slot + 1) * hd]
                        }
                    })
                    .collect();
                if let Some(visible) = (pos + 1).checked_div(ratio) {
                    let entries: Vec<usize> = match &index {
                        Some((iq, iwts)) => {
                            let (ih, id) = (c.index_heads, c.index_head_dim);
                            top_entries(
                                &iq[r * ih * id..(r + 1) * ih * id],
                                &iwts[r * ih..(r + 1) * ih],
                                &st.index_keys,
                                id,
                                visible,
                                c.index_topk,
                            )
                        }
                        None => (0..visible).collect(),
                    };
                    keys.extend(
                        entries
                            .iter()
                            .map(|&e| &st.compressed[e * hd..(e + 1) * hd]),
                    );
                }
                let qrow = &q[r * heads * hd..(r + 1) * heads * hd];
                for (h, oh) in o.chunks_exact_mut(hd).enumerate() {
                    attend(&qrow[h * hd..(h + 1) * hd], &keys, w.sink[h], scale, p, oh);
                    rope.apply(oh, pos, true);
                }
            });
    }
    p.bf16(&mut heads_out);

    // The window ring keeps the last `window` raw rows.
    for (span, st) in spans.iter().zip(states.iter_mut()) {
        for t in span.len.saturating_sub(c.window)..span.len {
            let slot = (span.pos0 + t) % c.window;
            let r = span.row + t;
            st.ring[slot * hd..(slot + 1) * hd].copy_from_slice(&kv[r * hd..(r + 1) * hd]);
        }
    }

    // Grouped low-rank output: group g's heads through rows g·rank.. of wo_a.
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
