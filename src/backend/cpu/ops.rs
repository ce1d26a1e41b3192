//! Element-wise CPU operations of the dense forward pass. Each works on one
//! token row at a time with a fixed order of operations, so results never
//! depend on what else is in the batch.

use crate::model::config::RopeStyle;

/// `out = x / rms(x) * w`, per row of `x`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ss: f32 = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let scale = 1.0 / (ss + eps).sqrt();
        for ((o, v), g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * scale * g;
        }
    }
}

/// Per-pair rotation frequencies `base^(-2i/dims)`, built by repeated
/// multiplication as the reference engines do.
pub fn rope_freqs(base: f32, dims: usize) -> Vec<f32> {
    let step = base.powf(-2.0 / dims as f32);
    let mut f = 1.0f32;
    (0..dims / 2)
        .map(|_| {
            let cur = f;
            f *= step;
            cur
        })
        .collect()
}

/// Rotates every head of one token's Q or K row in place.
pub fn rope(row: &mut [f32], head_dim: usize, pos: usize, freqs: &[f32], style: RopeStyle) {
    let half = freqs.len();
    for head in row.chunks_exact_mut(head_dim) {
        for (i, f) in freqs.iter().enumerate() {
            let (sin, cos) = (pos as f32 * f).sin_cos();
            let (a, b) = match style {
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos - x1 * sin;
            head[b] = x0 * sin + x1 * cos;
        }
    }
}

/// `gate = silu(gate) * up`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Adds `b` to every row of `x`.
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, bb) in row.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

/// In-place softmax.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_definition() {
        let x = [3.0, 4.0];
        let mut out = [0.0; 2];
        rms_norm(&x, &[1.0, 2.0], 0.0, &mut out);
        let rms = (12.5f32).sqrt();
        assert_eq!(out, [3.0 / rms, 8.0 / rms]);
    }

    #[test]
    fn rope_styles_rotate_the_right_pairs() {
        let freqs = rope_freqs(10000.0, 4);
        assert_eq!(freqs[0], 1.0);
        assert!((freqs[1] - 0.01).abs() < 1e-7);
        let mut a = [1.0, 0.0, 0.0, 0.0];
        rope(&mut a, 4, 1, &freqs, RopeStyle::Interleaved);
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = [1.0, 0.0, 0.0, 0.0];
        rope(&mut b, 4, 1, &freqs, RopeStyle::Neox);
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(b[1], 0.0);
        // Position 0 is the identity.
        let mut c = [0.5, -1.0, 2.0, 3.0];
        rope(&mut c, 4, 0, &freqs, RopeStyle::Neox);
        assert_eq!(c, [0.5, -1.0, 2.0, 3.0]);
    }

    #[test]
    fn softmax_and_silu() {
        let mut s = [0.0, 0.0, f32::NEG_INFINITY];
        softmax(&mut s);
        assert_eq!(s, [0.5, 0.5, 0.0]);
        let mut g = [0.0, 1.0];
        silu_mul(&mut g, &[5.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
    }
}
