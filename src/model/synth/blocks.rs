//! Random tensor data written directly in each stored block format.
//!
//! Speed: a tensor is first filled with PRNG bytes (quants, packed scales and
//! high bits are all valid for any bytes), then only each block's f16 scale
//! fields are overwritten, from a 16-entry table indexed by a random byte;
//! no per-value float work except for the small F32 vectors.
//!
//! Scale: the per-block scale is chosen so that a weight's standard deviation
//! is about `1/sqrt(cols)` given the distribution of uniformly random quants
//! (and, for the K-quants, of the random 6-bit / 8-bit sub-block scales).
//! Each matrix then roughly preserves the size of its input, and RMSNorm
//! keeps the residual stream bounded, so a forward pass stays finite.

use half::{bf16, f16};

use crate::engine::rng::Rng;
use crate::model::quant::QType;

/// What a tensor holds, which decides its value range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// A weight matrix: zero mean, standard deviation about `1/sqrt(cols)`.
    Matrix,
    /// An RMSNorm weight: uniform in `[0.95, 1.05)`.
    Norm,
    /// A bias: uniform in `[-0.02, 0.02)`.
    Bias,
}

/// `E[x²]` of an integer uniform on `lo..=hi`.
fn mean_square(lo: f64, hi: f64) -> f64 {
    let n = hi - lo + 1.0;
    (n * n - 1.0) / 12.0 + ((lo + hi) / 2.0).powi(2)
}

/// Per-block scale factor `d` that makes a weight's RMS `target`, for each
/// block format; see the format headers in `quant/` for the value formulas.
fn block_scale(qtype: QType, target: f64) -> f64 {
    let rms = match qtype {
        // d * q, q in -128..=127.
        QType::Q8_0 => mean_square(-128.0, 127.0).sqrt(),
        // d * (q - 16), q in 0..=31.
        QType::Q5_0 => mean_square(-16.0, 15.0).sqrt(),
        // d * q + m with m = -7.5 d (zero mean), q in 0..=15.
        QType::Q4_1 => mean_square(-7.5, 7.5).sqrt(),
        // (d sc) q - (dmin mn), sc, mn in 0..=63, q in 0..=15, dmin = 7.5 d:
        // the sub-block means 7.5 d (sc - mn) average to zero.
        QType::Q4K => {
            let sc2 = mean_square(0.0, 63.0);
            let spread = 2.0 * (mean_square(0.0, 63.0) - 31.5f64.powi(2));
            (sc2 * mean_square(-7.5, 7.5) + 7.5f64.powi(2) * spread).sqrt()
        }
        // d sc (q - 32), sc in -128..=127, q in 0..=63.
        QType::Q6K => (mean_square(-128.0, 127.0) * mean_square(-32.0, 31.0)).sqrt(),
        QType::F32 | QType::F16 | QType::BF16 => 1.0,
    };
    target / rms
}

/// 16 f16 scales spread over ±25% around `d`, so blocks differ in scale as
/// real ones do.
fn scale_table(d: f64) -> [[u8; 2]; 16] {
    std::array::from_fn(|k| f16::from_f64(d * (0.75 + k as f64 / 30.0)).to_le_bytes())
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut chunks = out.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let tail = chunks.into_remainder();
    let last = rng.next_u64().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    out
}

/// Uniform in `[lo, hi)`.
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// The stored bytes of a random `rows × cols` tensor in `qtype`
/// (`cols` a whole number of blocks: the caller's shapes are real ones).
pub fn fill(qtype: QType, rows: usize, cols: usize, init: Init, rng: &mut Rng) -> Vec<u8> {
    let target = 1.0 / (cols as f64).sqrt();
    let (lo, hi) = match init {
        Init::Matrix => (-target * 3f64.sqrt(), target * 3f64.sqrt()),
        Init::Norm => (0.95, 1.05),
        Init::Bias => (-0.02, 0.02),
    };
    let n = rows * cols;
    match qtype {
        QType::F32 => (0..n)
            .flat_map(|_| (uniform(rng, lo, hi) as f32).to_le_bytes())
            .collect(),
        QType::F16 => (0..n)
            .flat_map(|_| f16::from_f64(uniform(rng, lo, hi)).to_le_bytes())
            .collect(),
        QType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f64(uniform(rng, lo, hi)).to_le_bytes())
            .collect(),
        _ => {
            let mut data = random_bytes(rng, rows * qtype.row_bytes(cols));
            set_scales(qtype, &mut data, block_scale(qtype, target));
            data
        }
    }
}

/// Overwrites the f16 scale fields of every block with scales around `d`.
fn set_scales(qtype: QType, data: &mut [u8], d: f64) {
    let table = scale_table(d);
    // Q4_1's min and Q4_K's dmin are 7.5 d: see `block_scale`.
    let second = scale_table(-7.5 * d);
    let dmin = scale_table(7.5 * d);
    for blk in data.chunks_exact_mut(qtype.block_bytes()) {
        match qtype {
            QType::Q8_0 | QType::Q5_0 => {
                let k = usize::from(blk[2] & 15);
                blk[..2].copy_from_slice(&table[k]);
            }
            QType::Q4_1 => {
                let k = usize::from(blk[4] & 15);
                blk[..2].copy_from_slice(&table[k]);
                blk[2..4].copy_from_slice(&second[k]);
            }
            QType::Q4K => {
                let k = usize::from(blk[16] & 15);
                blk[..2].copy_from_slice(&table[k]);
                blk[2..4].copy_from_slice(&dmin[k]);
            }
            QType::Q6K => {
                let k = usize::from(blk[0] & 15);
                blk[208..210].copy_from_slice(&table[k]);
            }
            QType::F32 | QType::F16 | QType::BF16 => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::quant::dequantize_row;

    /// Every block format decodes to values of mean about 0 and RMS about
    /// `1/sqrt(cols)`: the scale formulas above match the real layouts.
    #[test]
    fn matrices_decode_to_the_intended_scale() {
        let (rows, cols) = (64, 1536);
        for q in [
            QType::Q8_0,
            QType::Q5_0,
            QType::Q4_1,
            QType::Q4K,
            QType::Q6K,
        ] {
            let data = fill(q, rows, cols, Init::Matrix, &mut Rng::new(1));
            let mut vals = vec![0f32; rows * cols];
            for (r, out) in vals.chunks_exact_mut(cols).enumerate() {
                let rb = q.row_bytes(cols);
                dequantize_row(q, &data[r * rb..(r + 1) * rb], out);
            }
            let n = vals.len() as f64;
            let mean = vals.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let rms = (vals.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n).sqrt();
            let want = 1.0 / (cols as f64).sqrt();
            assert!(
                (rms / want - 1.0).abs() < 0.1,
                "{q:?}: rms {rms}, want {want}"
            );
            assert!(mean.abs() < 0.05 * want, "{q:?}: mean {mean}");
            assert!(vals.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn vectors_stay_in_their_ranges() {
        let norm = fill(QType::F32, 1, 896, Init::Norm, &mut Rng::new(2));
        let bias = fill(QType::F32, 1, 896, Init::Bias, &mut Rng::new(2));
        for (bytes, lo, hi) in [(norm, 0.95, 1.05), (bias, -0.02, 0.02)] {
            for c in bytes.chunks_exact(4) {
                let v = f32::from_le_bytes(c.try_into().unwrap());
                assert!((lo..hi).contains(&v), "{v} outside {lo}..{hi}");
            }
        }
    }
}
