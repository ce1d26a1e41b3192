//! Matrix tests: random matrices in every format, quantized here with the
//! crate's encoders and stored at odd offsets of one buffer (like tensors
//! in a safetensors file); decoding checked exactly against per-weight
//! values computed in f64, matmul against an f64 reference, and batch and
//! thread-count invariance bit for bit.

use std::sync::Arc;

use super::*;
use crate::model::dsv4::codec::{e2m1_to_f32, e4m3_to_f32, f32_to_e2m1, f32_to_e4m3};
use crate::model::quant::testutil::Rng;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fp8,
    Fp4,
    Bf16,
    F32,
}

/// A built matrix and its exact weights, row-major, in f64.
struct Built {
    matrix: Matrix,
    dense: Vec<f64>,
}

/// Scale byte for a block with largest magnitude `amax` and format maximum
/// `max`: the smallest power of two 2^(b−127) with amax <= max·2^(b−127).
fn scale_byte(amax: f32, max: f32) -> u8 {
    let mut b = 1u8;
    while f64::from(max) * 2f64.powi(i32::from(b) - 127) < f64::from(amax) {
        b += 1;
    }
    b
}

fn e8m0(b: u8) -> f64 {
    2f64.powi(i32::from(b) - 127)
}

/// Weights with per-row magnitudes spanning a few binades.
fn weights(rows: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    (0..rows * cols)
        .map(|k| rng.uniform(-1.0, 1.0) * 2f32.powi((k / cols % 5) as i32 - 2))
        .collect()
}

/// Stores `data` then `scales` in one buffer, each after odd padding.
fn storage_of(data: &[u8], scales: &[u8]) -> (Bytes, Bytes) {
    let mut buf = vec![0xEE; 3];
    buf.extend(data);
    buf.extend([0xEE; 5]);
    buf.extend(scales);
    let storage = Storage::Owned(Arc::new(buf));
    let d = Bytes::new(storage.clone(), 3, data.len()).expect("in bounds");
    let s = Bytes::new(storage, 8 + data.len(), scales.len()).expect("in bounds");
    (d, s)
}

fn build(kind: Kind, rows: usize, cols: usize, rng: &mut Rng) -> Built {
    let w = weights(rows, cols, rng);
    let (data, scales, dense): (Vec<u8>, Vec<u8>, Vec<f64>) = match kind {
        Kind::Fp8 => {
            let grid_cols = cols.div_ceil(128);
            let mut scales = vec![0u8; rows.div_ceil(128) * grid_cols];
            for (i, s) in scales.iter_mut().enumerate() {
                let (br, bc) = (i / grid_cols * 128, i % grid_cols * 128);
                let amax = (br..rows.min(br + 128))
                    .flat_map(|r| (bc..cols.min(bc + 128)).map(move |c| (r, c)))
                    .fold(0.0f32, |m, (r, c)| m.max(w[r * cols + c].abs()));
                *s = scale_byte(amax, 448.0);
            }
            let scale_of = |k: usize| scales[k / cols / 128 * grid_cols + k % cols / 128];
            let codes: Vec<u8> = (0..w.len())
                .map(|k| f32_to_e4m3((f64::from(w[k]) / e8m0(scale_of(k))) as f32))
                .collect();
            let dense = (0..w.len())
                .map(|k| f64::from(e4m3_to_f32(codes[k])) * e8m0(scale_of(k)))
                .collect();
            (codes, scales, dense)
        }
        Kind::Fp4 => {
            let scales: Vec<u8> = w
                .chunks(32)
                .map(|g| scale_byte(g.iter().fold(0.0f32, |m, v| m.max(v.abs())), 6.0))
                .collect();
            let codes: Vec<u8> = (0..w.len())
                .map(|k| f32_to_e2m1((f64::from(w[k]) / e8m0(scales[k / 32])) as f32))
                .collect();
            let packed = codes.chunks(2).map(|p| p[0] | (p[1] << 4)).collect();
            let dense = (0..w.len())
                .map(|k| f64::from(e2m1_to_f32(codes[k])) * e8m0(scales[k / 32]))
                .collect();
            (packed, scales, dense)
        }
        Kind::Bf16 => {
            let bits: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
            let data = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
            (
                data,
                Vec::new(),
                bits.iter().map(|b| f64::from(b.to_f32())).collect(),
            )
        }
        Kind::F32 => {
            let data = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            (data, Vec::new(), w.iter().map(|&v| f64::from(v)).collect())
        }
    };
    let (data, scales) = storage_of(&data, &scales);
    let format = match kind {
        Kind::Fp8 => WeightFormat::Fp8 { scales },
        Kind::Fp4 => WeightFormat::Fp4 { scales },
        Kind::Bf16 => WeightFormat::Bf16,
        Kind::F32 => WeightFormat::F32,
    };
    let matrix = Matrix::new("layers.0.test.weight", rows, cols, format, data).expect("valid");
    Built { matrix, dense }
}

/// Shapes with partial scale blocks, short last K-blocks and tiles.
const CASES: [(Kind, usize, usize); 5] = [
    (Kind::Fp8, 200, 300),
    (Kind::Fp8, 130, 256),
    (Kind::Fp4, 37, 352),
    (Kind::Bf16, 19, 300),
    (Kind::F32, 9, 70),
];

fn activations(n: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n * cols).map(|_| rng.uniform(-2.0, 2.0)).collect()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn rows_dequantize_to_their_exact_values() {
    let mut rng = Rng::new(11);
    for (kind, rows, cols) in CASES {
        let b = build(kind, rows, cols, &mut rng);
        let mut row = vec![0.0f32; cols];
        for r in 0..rows {
            b.matrix.dequantize_row(r, &mut row);
            for (c, &v) in row.iter().enumerate() {
                assert_eq!(f64::from(v), b.dense[r * cols + c], "{kind:?} [{r}, {c}]");
            }
        }
    }
}

#[test]
fn matmul_matches_f64_reference() {
    let mut rng = Rng::new(12);
    for (kind, rows, cols) in CASES {
        let b = build(kind, rows, cols, &mut rng);
        let n = 3;
        let x = activations(n, cols, &mut rng);
        let mut out = vec![0.0f32; n * rows];
        b.matrix.matmul(&x, n, &mut out);
        for i in 0..n {
            for r in 0..rows {
                let terms = (0..cols).map(|c| b.dense[r * cols + c] * f64::from(x[i * cols + c]));
                let (sum, abs) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                let got = f64::from(out[i * rows + r]);
                // Relative to the sum of magnitudes: the bound an f32 sum can
                // promise when terms cancel.
                assert!(
                    (got - sum).abs() <= 1e-5 * abs,
                    "{kind:?} [{i}, {r}]: {got} vs {sum}"
                );
            }
        }
    }
}

#[test]
fn matmul_is_batch_invariant() {
    let mut rng = Rng::new(13);
    for (kind, rows, cols) in CASES {
        let b = build(kind, rows, cols, &mut rng);
        let n = 7;
        let x = activations(n, cols, &mut rng);
        let mut batched = vec![0.0f32; n * rows];
        b.matrix.matmul(&x, n, &mut batched);
        for (i, want) in batched.chunks_exact(rows).enumerate() {
            let mut single = vec![0.0f32; rows];
            b.matrix
                .matmul(&x[i * cols..(i + 1) * cols], 1, &mut single);
            assert_eq!(bits(&single), bits(want), "{kind:?} row {i}");
        }
    }
}

#[test]
fn row_ranges_equal_the_full_product_bit_for_bit() {
    let mut rng = Rng::new(15);
    for (kind, rows, cols) in CASES {
        let b = build(kind, rows, cols, &mut rng);
        let n = 3;
        let x = activations(n, cols, &mut rng);
        let mut full = vec![0.0f32; n * rows];
        b.matrix.matmul(&x, n, &mut full);
        for range in [0..rows, 1..rows, rows / 2..rows, 0..rows.div_ceil(2)] {
            let m = range.len();
            let mut part = vec![0.0f32; n * m];
            b.matrix.matmul_rows(range.clone(), &x, n, &mut part);
            for i in 0..n {
                let want = &full[i * rows + range.start..i * rows + range.end];
                assert_eq!(
                    bits(&part[i * m..(i + 1) * m]),
                    bits(want),
                    "{kind:?} {range:?}"
                );
            }
        }
    }
}

#[test]
fn matmul_is_thread_count_invariant() {
    let mut rng = Rng::new(14);
    for (kind, rows, cols) in CASES {
        let b = build(kind, rows, cols, &mut rng);
        let n = 5;
        let x = activations(n, cols, &mut rng);
        let results: Vec<Vec<u32>> = [1, 2, 3]
            .iter()
            .map(|&threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                let mut out = vec![0.0f32; n * rows];
                pool.install(|| b.matrix.matmul(&x, n, &mut out));
                bits(&out)
            })
            .collect();
        assert_eq!(results[0], results[1], "{kind:?}");
        assert_eq!(results[0], results[2], "{kind:?}");
    }
}

#[test]
fn empty_batch_is_a_no_op() {
    let b = build(Kind::F32, 4, 64, &mut Rng::new(15));
    b.matrix.matmul(&[], 0, &mut []);
}

#[test]
fn resident_bytes_count_data_and_scales() {
    let mut rng = Rng::new(16);
    assert_eq!(
        build(Kind::Fp8, 200, 300, &mut rng).matrix.bytes_resident(),
        200 * 300 + 2 * 3
    );
    assert_eq!(
        build(Kind::Fp4, 4, 64, &mut rng).matrix.bytes_resident(),
        4 * 32 + 4 * 2
    );
    assert_eq!(
        build(Kind::Bf16, 4, 64, &mut rng).matrix.bytes_resident(),
        4 * 64 * 2
    );
}

#[test]
fn byte_ranges_are_bounds_checked() {
    let storage = Storage::Owned(Arc::new(vec![0; 10]));
    assert!(Bytes::new(storage.clone(), 4, 6).is_some());
    assert!(Bytes::new(storage.clone(), 4, 7).is_none());
    assert!(Bytes::new(storage, usize::MAX, 2).is_none());
}

fn bytes(len: usize) -> Bytes {
    Bytes::new(Storage::Owned(Arc::new(vec![0; len])), 0, len).expect("in bounds")
}

#[test]
fn wrong_lengths_are_errors_naming_the_tensor() {
    let fp8 = |scales| WeightFormat::Fp8 { scales };
    let cases = [
        Matrix::new("wq_a", 256, 384, fp8(bytes(6)), bytes(256 * 384 - 1)),
        Matrix::new("wq_a", 256, 384, fp8(bytes(5)), bytes(256 * 384)),
        Matrix::new(
            "w2",
            4,
            64,
            WeightFormat::Fp4 { scales: bytes(8) },
            bytes(64),
        ),
        Matrix::new(
            "w2",
            4,
            64,
            WeightFormat::Fp4 { scales: bytes(9) },
            bytes(128),
        ),
        Matrix::new("norm", 1, 10, WeightFormat::Bf16, bytes(40)),
        Matrix::new("gate", 2, 3, WeightFormat::F32, bytes(12)),
    ];
    let expected = [
        ("wq_a", "98304 data bytes, found 98303"),
        ("wq_a", "6 scale bytes, found 5"),
        ("w2", "128 data bytes, found 64"),
        ("w2", "8 scale bytes, found 9"),
        ("norm", "20 data bytes, found 40"),
        ("gate", "24 data bytes, found 12"),
    ];
    for (result, (name, detail)) in cases.into_iter().zip(expected) {
        let message = result.expect_err("bad length").to_string();
        assert!(message.contains(&format!("`{name}`")), "{message}");
        assert!(message.contains(detail), "{message}");
    }
    let err = Matrix::new(
        "w1",
        2,
        48,
        WeightFormat::Fp4 { scales: bytes(3) },
        bytes(48),
    );
    assert_eq!(
        err.expect_err("bad columns"),
        MatrixError::Fp4Columns {
            tensor: "w1".into(),
            cols: 48
        }
    );
    let huge = Matrix::new("head", usize::MAX, 2, WeightFormat::F32, bytes(0));
    assert!(matches!(huge, Err(MatrixError::TooLarge { .. })));
}
