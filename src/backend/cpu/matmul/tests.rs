//! Kernel agreement and batch invariance: every available SIMD family
//! against the scalar reference (bitwise), a row alone against the same
//! row inside a batch, and one thread against several.

use super::*;
use crate::model::quant::testutil::{Rng, random_tensor, random_x};
use crate::model::quant::{QType, dot_ref};

const ALL: [QType; 8] = QType::ALL;

/// Row lengths that exercise whole and partial 16-block groups (and their
/// 8-block halves), one and several super-blocks (more than 16: lanes
/// wrap), and float tails of part of a register and of whole registers.
fn test_cols(qtype: QType) -> &'static [usize] {
    match qtype.block_size() {
        256 => &[256, 1536, 4352],
        32 => &[32, 96, 320, 512, 576, 800, 1056],
        _ => &[16, 100, 200, 576],
    }
}

fn run_on(isa: Isa, w: &Tensor, x: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; m * w.rows];
    matmul_on(isa, w, x, m, &mut out);
    out
}

/// Asserts bitwise equality, naming the first differing element.
fn assert_same(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let diff: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = diff.first() {
        panic!(
            "{what}: {} of {} differ, first at {i}: {} vs {}",
            diff.len(),
            got.len(),
            got[i],
            want[i]
        );
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

#[test]
fn scalar_path_is_the_reference_dot() {
    let mut rng = Rng::new(1);
    for qtype in ALL {
        let cols = test_cols(qtype)[1];
        let (n, m) = (9, 3);
        let w = random_tensor(qtype, n, cols, &mut rng);
        let x = random_x(m * cols, &mut rng);
        let out = run_on(Isa::Scalar, &w, &x, m);
        let mut acts = QuantActs::new();
        for i in 0..m {
            let xi = &x[i * cols..(i + 1) * cols];
            for r in 0..n {
                let want = if qtype.act_format() == ActFormat::F32 {
                    dot_ref(qtype, w.row_bytes(r), ActRow::F32(xi))
                } else {
                    acts.quantize(qtype.act_format(), Isa::Scalar.act_layout(1), xi, cols);
                    dot_ref(qtype, w.row_bytes(r), ActRow::Q8(acts.row(0)))
                };
                assert_eq!(
                    out[i * n + r].to_bits(),
                    want.to_bits(),
                    "{qtype:?} ({i}, {r})"
                );
            }
        }
    }
}

#[test]
fn every_available_isa_matches_scalar_bitwise() {
    let mut rng = Rng::new(2);
    let isas = Isa::available();
    assert_eq!(isas[0], Isa::Scalar);
    for qtype in ALL {
        for &cols in test_cols(qtype) {
            let (n, m) = (37, 5);
            let w = random_tensor(qtype, n, cols, &mut rng);
            let x = random_x(m * cols, &mut rng);
            let want = run_on(Isa::Scalar, &w, &x, m);
            assert!(
                want.iter().all(|v| v.is_finite()),
                "{qtype:?}: non-finite reference"
            );
            for &isa in &isas[1..] {
                let got = run_on(isa, &w, &x, m);
                assert_same(&got, &want, &format!("{isa:?} {qtype:?} cols {cols}"));
            }
        }
    }
}

#[test]
fn every_available_isa_matches_scalar_at_every_batch_size() {
    // Batch sizes 1..=12 cover every split of the rows into the kernels'
    // multi-row tiles and remainders, and both sides of AVX2's switch
    // from natural-order to grouped activations (after 8 rows); odd weight
    // row counts leave partial thread chunks.
    let mut rng = Rng::new(12);
    let isas = Isa::available();
    for qtype in ALL {
        for &cols in test_cols(qtype) {
            let n = 13;
            let w = random_tensor(qtype, n, cols, &mut rng);
            let x = random_x(12 * cols, &mut rng);
            for m in 1..=12 {
                let x = &x[..m * cols];
                let want = run_on(Isa::Scalar, &w, x, m);
                for &isa in &isas[1..] {
                    let got = run_on(isa, &w, x, m);
                    assert_same(&got, &want, &format!("{isa:?} {qtype:?} cols {cols} m {m}"));
                }
            }
        }
    }
}

#[test]
fn the_detected_isa_is_available() {
    let best = Isa::detect();
    assert!(Isa::available().contains(&best), "{best:?}");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") {
        assert_ne!(
            best,
            Isa::Scalar,
            "an AVX2 CPU must not fall back to scalar"
        );
    }
}

#[test]
fn a_row_alone_equals_the_same_row_inside_a_batch() {
    let mut rng = Rng::new(3);
    for isa in Isa::available() {
        for qtype in ALL {
            let cols = *test_cols(qtype).last().expect("cols");
            let n = 70;
            let w = random_tensor(qtype, n, cols, &mut rng);
            let mut x = random_x(16 * cols, &mut rng);
            // Neighbours with very different magnitudes, so shared scales
            // or a batch-dependent reduction would show.
            for v in &mut x[..3 * cols] {
                *v *= 1000.0;
            }
            let row = 7;
            let alone = run_on(isa, &w, &x[row * cols..(row + 1) * cols], 1);
            let batched = run_on(isa, &w, &x, 16);
            assert_same(
                &alone,
                &batched[row * n..(row + 1) * n],
                &format!("{isa:?} {qtype:?} m=16"),
            );
            let pair = run_on(isa, &w, &x[(row - 1) * cols..(row + 1) * cols], 2);
            assert_same(&alone, &pair[n..], &format!("{isa:?} {qtype:?} m=2"));
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(4);
    for isa in Isa::available() {
        for qtype in ALL {
            let cols = test_cols(qtype)[1];
            let (n, m) = (300, 16);
            let w = random_tensor(qtype, n, cols, &mut rng);
            let x = random_x(m * cols, &mut rng);
            let one = pool(1).install(|| run_on(isa, &w, &x, m));
            let two = pool(2).install(|| run_on(isa, &w, &x, m));
            let five = pool(5).install(|| run_on(isa, &w, &x, m));
            assert_same(&two, &one, &format!("{isa:?} {qtype:?} 2 vs 1 threads"));
            assert_same(&five, &one, &format!("{isa:?} {qtype:?} 5 vs 1 threads"));
        }
    }
}

#[test]
fn nested_calls_from_rayon_jobs_agree_with_serial_calls() {
    // Calls from inside rayon jobs may re-enter on a thread whose buffers an
    // outer call holds; results must not change.
    let mut rng = Rng::new(5);
    let w = random_tensor(QType::Q4_1, 200, 576, &mut rng);
    let xs: Vec<Vec<f32>> = (0..8).map(|_| random_x(4 * 576, &mut rng)).collect();
    let serial: Vec<Vec<f32>> = xs.iter().map(|x| run_on(Isa::detect(), &w, x, 4)).collect();
    let nested: Vec<Vec<f32>> = pool(2).install(|| {
        xs.par_iter()
            .map(|x| run_on(Isa::detect(), &w, x, 4))
            .collect()
    });
    for (s, p) in serial.iter().zip(&nested) {
        assert_same(p, s, "nested vs serial");
    }
}

#[test]
fn empty_batch_and_empty_rows_are_handled() {
    let mut rng = Rng::new(6);
    let w = random_tensor(QType::Q8_0, 4, 64, &mut rng);
    let mut out = [];
    matmul(&w, &[], 0, &mut out);
    let w0 = random_tensor(QType::Q8_0, 0, 64, &mut rng);
    matmul(&w0, &random_x(64, &mut rng), 1, &mut []);
}

#[test]
#[should_panic(expected = "x is not")]
fn mismatched_x_length_panics() {
    let mut rng = Rng::new(8);
    let w = random_tensor(QType::Q8_0, 4, 64, &mut rng);
    matmul(&w, &[0.0; 63], 1, &mut [0.0; 4]);
}

#[test]
fn fused_matmuls_equal_separate_calls_bitwise() {
    let mut rng = Rng::new(11);
    let cols = 512;
    let m = 5;
    let x = random_x(m * cols, &mut rng);
    for isa in Isa::available() {
        // Mixed activation formats in one call, as Q/K/V of a Q5_0/Q8_0 file.
        let ws: Vec<Tensor> = [QType::Q5_0, QType::Q8_0, QType::Q4K, QType::F16]
            .iter()
            .enumerate()
            .map(|(i, q)| random_tensor(*q, 40 + 9 * i, cols, &mut rng))
            .collect();
        let refs: Vec<&Tensor> = ws.iter().collect();
        let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![f32::NAN; m * w.rows]).collect();
        let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        matmul_many_on(isa, &refs, &x, m, &mut views);
        for (w, got) in ws.iter().zip(&outs) {
            assert_same(
                got,
                &run_on(isa, w, &x, m),
                &format!("{isa:?} {:?} fused", w.qtype),
            );
        }
    }
}
