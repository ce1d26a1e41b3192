//! Manifold-constrained hyper-connections: the residual state is `hc` streams
//! of `hidden` values. Before a sublayer the streams collapse into one input
//! (weights `pre`); after it, each new stream is `post_k · output` plus a
//! doubly-stochastic mix (Sinkhorn-normalised `comb`) of the old streams.
//! The final `hc_head` collapse uses `pre` only.
//!
//! All of it runs in f32; the mixing weights come from one small matmul over
//! the flattened streams, normalised by their unweighted RMS.

use super::weights::MhcWeights;

/// The mixing weights of one site for one token.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub pre: Vec<f32>,
    pub post: Vec<f32>,
    /// `comb[j * hc + k]`: weight of old stream j in new stream k.
    pub comb: Vec<f32>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `mixes · rsqrt(mean(x²) + eps)` for each token: the matmul runs on the
/// raw streams and the RMS is applied after, as the reference does.
fn raw_mixes(w: &MhcWeights, streams: &[f32], n: usize, eps: f32) -> Vec<f32> {
    let rows = w.mix.rows;
    let width = w.mix.cols;
    let mut mixes = vec![0.0f32; n * rows];
    w.mix.matmul(streams, n, &mut mixes);
    for (x, m) in streams
        .chunks_exact(width)
        .zip(mixes.chunks_exact_mut(rows))
    {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let r = 1.0 / (ms + eps).sqrt();
        m.iter_mut().for_each(|v| *v *= r);
    }
    mixes
}

/// Sinkhorn normalisation of a row-major hc×hc matrix in place: a row
/// softmax (+eps), a column normalisation, then `iters − 1` rounds of row and
/// column normalisation, each dividing by (sum + eps).
pub fn sinkhorn(m: &mut [f32], hc: usize, iters: usize, eps: f32) {
    for row in m.chunks_exact_mut(hc) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v = *v / sum + eps);
    }
    let normalize_cols = |m: &mut [f32]| {
        for k in 0..hc {
            let s: f32 = (0..hc).map(|j| m[j * hc + k]).sum::<f32>() + eps;
            (0..hc).for_each(|j| m[j * hc + k] /= s);
        }
    };
    normalize_cols(m);
    for _ in 1..iters {
        for row in m.chunks_exact_mut(hc) {
            let s: f32 = row.iter().sum::<f32>() + eps;
            row.iter_mut().for_each(|v| *v /= s);
        }
        normalize_cols(m);
    }
}

/// The pre/post/comb weights of a sublayer site for `n` tokens.
pub fn site_mixes(
    w: &MhcWeights,
    streams: &[f32],
    n: usize,
    hc: usize,
    iters: usize,
    norm_eps: f32,
    hc_eps: f32,
) -> Vec<Mix> {
    let mixes = raw_mixes(w, streams, n, norm_eps);
    mixes
        .chunks_exact(w.mix.rows)
        .map(|m| {
            let pre = (0..hc)
                .map(|j| sigmoid(m[j] * w.scale[0] + w.base[j]) + hc_eps)
                .collect();
            let post = (0..hc)
                .map(|j| 2.0 * sigmoid(m[hc + j] * w.scale[1] + w.base[hc + j]))
                .collect();
            let mut comb: Vec<f32> = (0..hc * hc)
                .map(|i| m[2 * hc + i] * w.scale[2] + w.base[2 * hc + i])
                .collect();
            sinkhorn(&mut comb, hc, iters, hc_eps);
            Mix { pre, post, comb }
        })
        .collect()
}

/// Σ_j pre_j · stream_j for one token.
pub fn collapse(pre: &[f32], streams: &[f32], out: &mut [f32]) {
    let d = out.len();
    out.fill(0.0);
    for (j, s) in streams.chunks_exact(d).enumerate() {
        for (o, v) in out.iter_mut().zip(s) {
            *o += pre[j] * v;
        }
    }
}

/// new_k = post_k · o + Σ_j comb[j][k] · old_j, for one token, in place.
pub fn expand(mix: &Mix, output: &[f32], streams: &mut [f32]) {
    let d = output.len();
    let hc = mix.post.len();
    let old = streams.to_vec();
    for k in 0..hc {
        let dst = &mut streams[k * d..(k + 1) * d];
        for (i, v) in dst.iter_mut().enumerate() {
            let mut acc = mix.post[k] * output[i];
            for j in 0..hc {
                acc += mix.comb[j * hc + k] * old[j * d + i];
            }
            *v = acc;
        }
    }
}

/// The `hc_head` collapse weights for `n` tokens: sigmoid(mixes·scale+base)+eps.
pub fn head_weights(
    w: &MhcWeights,
    streams: &[f32],
    n: usize,
    norm_eps: f32,
    hc_eps: f32,
) -> Vec<Vec<f32>> {
    raw_mixes(w, streams, n, norm_eps)
        .chunks_exact(w.mix.rows)
        .map(|m| {
            m.iter()
                .zip(&w.base)
                .map(|(v, b)| sigmoid(v * w.scale[0] + b) + hc_eps)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinkhorn_is_close_to_doubly_stochastic() {
        let mut m: Vec<f32> = (0..16).map(|i| ((i * 7 % 5) as f32) - 2.0).collect();
        sinkhorn(&mut m, 4, 20, 1e-6);
        for j in 0..4 {
            let row: f32 = m[j * 4..j * 4 + 4].iter().sum();
            let col: f32 = (0..4).map(|r| m[r * 4 + j]).sum();
            assert!((row - 1.0).abs() < 1e-3, "row {j}: {row}");
            assert!((col - 1.0).abs() < 1e-5, "col {j}: {col}");
        }
    }

    #[test]
    fn expand_sums_over_the_first_index() {
        // comb[j][k] moves old stream j into new stream k.
        let mix = Mix {
            pre: vec![0.0; 2],
            post: vec![1.0, 0.0],
            comb: vec![0.0, 1.0, 0.0, 0.0],
        };
        let mut streams = vec![3.0, 5.0];
        expand(&mix, &[10.0], &mut streams);
        assert_eq!(streams, [10.0, 3.0]);
    }
}
