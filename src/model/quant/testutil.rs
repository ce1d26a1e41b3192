//! Test helpers: a small deterministic PRNG and random rows/tensors in every
//! stored format (scales kept in a realistic range, quants uniform).

use std::sync::Arc;

use half::{bf16, f16};

use super::QType;
use crate::model::tensor::{Storage, Tensor};

/// SplitMix64.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// One random row of `cols` values stored as `qtype`.
pub(crate) fn random_row(qtype: QType, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut row = Vec::with_capacity(qtype.row_bytes(cols));
    for _ in 0..cols / qtype.block_size() {
        match qtype {
            QType::F32 => row.extend(rng.uniform(-1.0, 1.0).to_le_bytes()),
            QType::F16 => row.extend(f16_bytes(rng.uniform(-1.0, 1.0))),
            QType::BF16 => row.extend(bf16::from_f32(rng.uniform(-1.0, 1.0)).to_le_bytes()),
            QType::Q8_0 | QType::Q5_0 => {
                row.extend(f16_bytes(rng.uniform(0.001, 0.02)));
                row.extend(rng.bytes(qtype.block_bytes() - 2));
            }
            QType::Q4_1 => {
                row.extend(f16_bytes(rng.uniform(0.001, 0.02)));
                row.extend(f16_bytes(rng.uniform(-0.1, 0.1)));
                row.extend(rng.bytes(16));
            }
            QType::Q4K => {
                row.extend(f16_bytes(rng.uniform(0.0005, 0.002)));
                row.extend(f16_bytes(rng.uniform(0.0005, 0.002)));
                row.extend(rng.bytes(140));
            }
            QType::Q6K => {
                row.extend(rng.bytes(208));
                row.extend(f16_bytes(rng.uniform(0.0001, 0.001)));
            }
        }
    }
    row
}

/// A random `rows × cols` tensor whose data starts at an odd offset of its
/// storage, so kernels meet unaligned rows.
pub(crate) fn random_tensor(qtype: QType, rows: usize, cols: usize, rng: &mut Rng) -> Tensor {
    let mut bytes = vec![0xAB; 3];
    for _ in 0..rows {
        bytes.extend(random_row(qtype, cols, rng));
    }
    Tensor::new(
        "test",
        qtype,
        rows,
        cols,
        Storage::Owned(Arc::new(bytes)),
        3,
    )
    .expect("valid test tensor")
}

/// Activations with mixed magnitudes and a few outliers, like hidden states.
pub(crate) fn random_x(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let v = rng.uniform(-1.0, 1.0);
            if rng.next_u64().is_multiple_of(61) {
                v * 40.0
            } else {
                v
            }
        })
        .collect()
}
