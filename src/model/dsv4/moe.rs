//! The MoE sublayer: sqrt-softplus router scores, experts chosen by hash
//! (`tid2eid`, first layers) or by top-k of score + aux-free bias (the bias
//! only selects), weights = chosen scores / their sum × route scale, SwiGLU
//! experts with the clamp on routed and shared experts alike.
//!
//! Invariant: each token's output sums its experts in ascending expert id,
//! then adds the shared expert, so batch composition never changes a value.

use super::config::Dsv4Config;
use super::precision::{Gemm, Precision};
use super::weights::{ExpertWeights, MoeWeights, Router};

fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Expert ids and weights of one token.
fn route(c: &Dsv4Config, m: &MoeWeights, logits: &[f32], token: u32) -> Vec<(usize, f32)> {
    let scores: Vec<f32> = logits.iter().map(|&l| softplus(l).sqrt()).collect();
    let k = c.n_active_experts;
    let ids: Vec<usize> = match &m.router {
        Router::Hash { tid2eid } => {
            let t = token as usize;
            tid2eid[t * k..(t + 1) * k]
                .iter()
                .map(|&e| e as usize)
                .collect()
        }
        Router::Scored { bias } => {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            let biased = |e: usize| scores[e] + bias[e];
            order.sort_by(|&a, &b| biased(b).total_cmp(&biased(a)).then(a.cmp(&b)));
            order.truncate(k);
            order
        }
    };
    let sum: f32 = ids.iter().map(|&e| scores[e]).sum();
    ids.into_iter()
        .map(|e| (e, scores[e] / sum * c.route_scale))
        .collect()
}

/// SwiGLU with the reference clamp: gate ≤ limit, |up| ≤ limit.
fn swiglu(gate: &mut [f32], up: &[f32], limit: f32) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let (gv, uv) = if limit > 0.0 {
            (g.min(limit), u.clamp(-limit, limit))
        } else {
            (*g, u)
        };
        *g = gv / (1.0 + (-gv).exp()) * uv;
    }
}

/// One expert over `n` rows; `weights` (one per row) scale the hidden
/// activation before the down projection, as the reference does.
fn expert(
    c: &Dsv4Config,
    e: &ExpertWeights,
    p: Precision,
    x: &[f32],
    n: usize,
    weights: Option<&[f32]>,
) -> Vec<f32> {
    let mut g = p.linear(&e.w1, x, n, Gemm::Quantized);
    let u = p.linear(&e.w3, x, n, Gemm::Quantized);
    swiglu(&mut g, &u, c.swiglu_limit);
    if let Some(w) = weights {
        for (row, wt) in g.chunks_exact_mut(e.w1.rows).zip(w) {
            row.iter_mut().for_each(|v| *v *= wt);
        }
    }
    p.bf16(&mut g);
    p.linear(&e.w2, &g, n, Gemm::Quantized)
}

/// MoE over `n` normed rows `x`; `tokens` are the rows' input ids (hash routing).
pub fn moe(c: &Dsv4Config, m: &MoeWeights, p: Precision, x: &[f32], tokens: &[u32]) -> Vec<f32> {
    let d = c.hidden;
    let n = tokens.len();
    let logits = p.linear(&m.gate, x, n, Gemm::F32);
    let routes: Vec<Vec<(usize, f32)>> = logits
        .chunks_exact(c.n_routed_experts)
        .zip(tokens)
        .map(|(l, &t)| route(c, m, l, t))
        .collect();
    let mut out = vec![0.0f32; n * d];
    for (e, ew) in m.experts.iter().enumerate() {
        let (rows, wts): (Vec<usize>, Vec<f32>) = routes
            .iter()
            .enumerate()
            .filter_map(|(r, rt)| rt.iter().find(|(id, _)| *id == e).map(|&(_, w)| (r, w)))
            .unzip();
        if rows.is_empty() {
            continue;
        }
        let xs: Vec<f32> = rows
            .iter()
            .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
            .collect();
        let y = expert(c, ew, p, &xs, rows.len(), Some(&wts));
        for (&r, yr) in rows.iter().zip(y.chunks_exact(d)) {
            out[r * d..(r + 1) * d]
                .iter_mut()
                .zip(yr)
                .for_each(|(o, v)| *o += v);
        }
    }
    let shared = expert(c, &m.shared, p, x, n, None);
    out.iter_mut().zip(&shared).for_each(|(o, s)| *o += s);
    p.bf16(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swiglu_clamps_gate_above_and_up_both_ways() {
        let mut g = vec![20.0, -20.0, 1.0];
        swiglu(&mut g, &[30.0, -30.0, -30.0], 10.0);
        let silu = |v: f32| v / (1.0 + (-v).exp());
        assert_eq!(
            g,
            [silu(10.0) * 10.0, silu(-20.0) * -10.0, silu(1.0) * -10.0]
        );
    }

    #[test]
    fn softplus_is_stable() {
        assert_eq!(softplus(100.0), 100.0);
        assert!(softplus(-100.0) > 0.0 && softplus(-100.0) < 1e-40);
        assert!((softplus(0.0) - std::f32::consts::LN_2).abs() < 1e-7);
    }
}
