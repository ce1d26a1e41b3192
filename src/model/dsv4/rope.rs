//! DeepSeek-V4's partial RoPE: interleaved pairs (2i, 2i+1) over the last
//! `rope_dim` dims of a row, θ 10000 on sliding-only layers and θ 160000 with
//! YaRN frequency interpolation (and no amplitude scaling) on every layer
//! that has a compressor. Positions are absolute token indices.

use super::config::{Dsv4Config, LayerKind, Yarn};

/// Per-layer rotation frequencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    freqs: Vec<f32>,
}

/// YaRN's ramp bound: the pair index whose wavelength spans `rotations`
/// turns over the original context.
fn correction_dim(rotations: f64, dim: usize, theta: f64, original: f64) -> f64 {
    dim as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
}

impl Rope {
    pub fn new(dim: usize, theta: f64, yarn: Option<&Yarn>) -> Rope {
        let half = dim / 2;
        let mut freqs: Vec<f64> = (0..half)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dim as f64))
            .collect();
        if let Some(y) = yarn {
            let low = correction_dim(y.beta_fast, dim, theta, y.original_max_positions)
                .floor()
                .max(0.0);
            let high = correction_dim(y.beta_slow, dim, theta, y.original_max_positions)
                .ceil()
                .min(dim as f64 - 1.0);
            // A degenerate ramp (low == high) would divide by zero.
            let span = if high == low { 0.001 } else { high - low };
            for (i, f) in freqs.iter_mut().enumerate() {
                let ramp = ((i as f64 - low) / span).clamp(0.0, 1.0);
                *f = *f / y.factor * ramp + *f * (1.0 - ramp);
            }
        }
        Rope {
            freqs: freqs.into_iter().map(|f| f as f32).collect(),
        }
    }

    /// The rotation a layer's queries, keys and compressed rows use.
    pub fn for_layer(c: &Dsv4Config, kind: LayerKind) -> Rope {
        match kind {
            LayerKind::Sliding => Rope::new(c.rope_dim, c.rope_theta, None),
            LayerKind::Csa | LayerKind::Hca => {
                Rope::new(c.rope_dim, c.compress_rope_theta, c.yarn.as_ref())
            }
        }
    }

    pub fn dim(&self) -> usize {
        self.freqs.len() * 2
    }

    /// Rotates the last `dim()` values of `row` to position `pos`; `inverse`
    /// applies the conjugate (the output de-rotation).
    pub fn apply(&self, row: &mut [f32], pos: usize, inverse: bool) {
        let start = row.len() - self.dim();
        let sign = if inverse { -1.0f32 } else { 1.0 };
        for (i, pair) in row[start..].chunks_exact_mut(2).enumerate() {
            let angle = pos as f32 * self.freqs[i];
            let (sin, cos) = angle.sin_cos();
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos - sign * b * sin;
            pair[1] = sign * a * sin + b * cos;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yarn_ramp_bounds_match_the_reference_arithmetic() {
        // deepseek-v4.md §2.3: low = 15 and high = 25 for θ 160000, 64 dims.
        let lo = correction_dim(32.0, 64, 160000.0, 65536.0).floor();
        let hi = correction_dim(1.0, 64, 160000.0, 65536.0).ceil();
        assert_eq!((lo, hi), (15.0, 25.0));
        let y = Yarn {
            factor: 16.0,
            original_max_positions: 65536.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
        };
        let plain = Rope::new(64, 160000.0, None);
        let scaled = Rope::new(64, 160000.0, Some(&y));
        assert_eq!(plain.freqs[..16], scaled.freqs[..16]);
        for i in 25..32 {
            assert!(
                (scaled.freqs[i] - plain.freqs[i] / 16.0).abs()
                    <= 1e-12 * plain.freqs[i].abs().max(1e-30)
            );
        }
    }

    #[test]
    fn inverse_undoes_and_leaves_leading_dims() {
        let r = Rope::new(4, 10000.0, None);
        let orig: Vec<f32> = (0..8).map(|i| i as f32 * 0.37 - 1.0).collect();
        let mut x = orig.clone();
        r.apply(&mut x, 1234, false);
        assert_eq!(x[..4], orig[..4]);
        assert_ne!(x[4..], orig[4..]);
        r.apply(&mut x, 1234, true);
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
