//! Tests of the QAT simulation points against references written here
//! independently: scales found by searching powers of two in f64, casts by
//! picking the nearest code value (ties to the even code), and the
//! Hadamard transform as an explicit Sylvester matrix product.

use super::*;
use crate::model::dsv4::codec::{E2M1_LUT, E4M3_LUT, round_to_bf16};
use crate::model::quant::testutil::Rng;

/// Smallest power of two s (as f64) with `m <= max · s`.
fn search_scale(m: f32, max: f32) -> f64 {
    let mut k = -160;
    while f64::from(max) * 2f64.powi(k) < f64::from(m) {
        k += 1;
    }
    2f64.powi(k)
}

/// The code value nearest to `v` among `values` (indexed by code, the
/// second half negative, NaN codes skipped), ties to the even code,
/// saturating like a clamp; a cast keeps the sign, so −tiny gives −0.
fn nearest_code_value(v: f64, values: &[f32]) -> f64 {
    let positive = &values[..values.len() / 2];
    let mut best: Option<(f64, usize)> = None;
    for (code, &c) in positive.iter().enumerate().filter(|(_, c)| !c.is_nan()) {
        let d = (f64::from(c) - v.abs()).abs();
        let better = match best {
            None => true,
            Some((bd, bc)) => {
                d < bd || (d == bd && code.is_multiple_of(2) && !bc.is_multiple_of(2))
            }
        };
        if better {
            best = Some((d, code));
        }
    }
    let (_, code) = best.expect("some code");
    f64::from(values[code]).copysign(v)
}

/// Block round trip by the definition, in f64.
fn reference_round_trip(x: &[f32], block: usize, floor: f32, max: f32, lut: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    for chunk in x.chunks(block) {
        let amax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let s = search_scale(amax.max(floor), max);
        out.extend(
            chunk
                .iter()
                .map(|&v| (nearest_code_value(f64::from(v) / s, lut) * s) as f32),
        );
    }
    out
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn scales_are_exact_at_and_around_powers_of_two() {
    for (max, floor) in [(448.0f32, 1e-4f32), (6.0, 6.0 * f32::MIN_POSITIVE)] {
        for k in -100..=100 {
            let at = (f64::from(max) * 2f64.powi(k)) as f32;
            let pow = 2f32.powi(k);
            for m in [
                at,
                at.next_up(),
                at.next_down(),
                pow,
                pow.next_up(),
                pow.next_down(),
            ] {
                let m = m.max(floor);
                assert_eq!(
                    f64::from(pow2_scale(m, max)),
                    search_scale(m, max),
                    "{m:e} / {max}"
                );
            }
        }
        for m in [floor, f32::MAX] {
            assert_eq!(f64::from(pow2_scale(m, max)), search_scale(m, max), "{m:e}");
        }
    }
}

fn random_blocks(rng: &mut Rng, len: usize) -> Vec<f32> {
    // Magnitudes over many binades, plus exact scale-boundary values.
    let mut x: Vec<f32> = (0..len)
        .map(|i| rng.uniform(-1.0, 1.0) * 2f32.powi((i % 40) as i32 - 20))
        .collect();
    x[3] = 448.0 * 4.0;
    x[70] = (448.0f32 * 0.5).next_up();
    x[200] = 6.0 * 2f32.powi(-3);
    x
}

#[test]
fn fp8_round_trip_matches_definition() {
    let mut rng = Rng::new(8);
    for (len, block) in [(448, 64), (300, 128), (130, 128), (5, 64)] {
        let mut x = random_blocks(&mut rng, len.max(201));
        x.truncate(len);
        let want = reference_round_trip(&x, block, 1e-4, 448.0, &E4M3_LUT);
        fp8_round_trip(&mut x, block);
        assert_eq!(bits(&x), bits(&want), "len {len} block {block}");
    }
}

#[test]
fn fp4_round_trip_matches_definition() {
    let mut rng = Rng::new(4);
    for (len, block) in [(256, 32), (250, 32), (7, 32)] {
        let mut x = random_blocks(&mut rng, len.max(201));
        x.truncate(len);
        let want = reference_round_trip(&x, block, 6.0 * f32::MIN_POSITIVE, 6.0, &E2M1_LUT);
        fp4_round_trip(&mut x, block);
        assert_eq!(bits(&x), bits(&want), "len {len} block {block}");
    }
}

#[test]
fn round_trips_are_idempotent_and_keep_zero_blocks() {
    let mut rng = Rng::new(1);
    let once8 = {
        let mut x = random_blocks(&mut rng, 512);
        fp8_round_trip(&mut x, 128);
        x
    };
    let mut twice8 = once8.clone();
    fp8_round_trip(&mut twice8, 128);
    assert_eq!(bits(&once8), bits(&twice8));

    let mut once4 = random_blocks(&mut rng, 512);
    fp4_round_trip(&mut once4, 32);
    let mut twice4 = once4.clone();
    fp4_round_trip(&mut twice4, 32);
    assert_eq!(bits(&once4), bits(&twice4));

    let mut zeros = vec![0.0f32, -0.0, 0.0];
    fp8_round_trip(&mut zeros, 64);
    assert_eq!(bits(&zeros), bits(&[0.0, -0.0, 0.0]));
    fp4_round_trip(&mut zeros, 32);
    assert_eq!(bits(&zeros), bits(&[0.0, -0.0, 0.0]));
}

#[test]
fn round_trips_pass_nan_and_infinity_through() {
    let mut x = vec![1.0, f32::NAN, f32::INFINITY, -2.0];
    fp8_round_trip(&mut x, 4);
    assert!(x[1].is_nan());
    assert_eq!(x[2], f32::INFINITY);
    let mut y = vec![1.0, f32::NAN, -2.0];
    fp4_round_trip(&mut y, 4);
    assert_eq!((y[0], y[2]), (1.0, -2.0));
    assert!(y[1].is_nan());
}

/// Entry (i, j) of the Sylvester Hadamard matrix: (−1)^popcount(i & j).
fn sylvester(i: usize, j: usize) -> f64 {
    if (i & j).count_ones().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

#[test]
fn hadamard_equals_sylvester_matrix_product() {
    let mut rng = Rng::new(2);
    for log in 1..=7 {
        let n = 1 << log;
        let x: Vec<f32> = (0..n).map(|_| rng.uniform(-4.0, 4.0)).collect();
        let mut got = x.clone();
        hadamard_in_place(&mut got).expect("power of two");
        for (i, &g) in got.iter().enumerate() {
            let dot: f64 = (0..n).map(|j| sylvester(i, j) * f64::from(x[j])).sum();
            let want = dot / (n as f64).sqrt();
            let bound: f64 = x.iter().map(|v| f64::from(v.abs())).sum::<f64>();
            assert!(
                (f64::from(g) - want).abs() <= 1e-6 * bound,
                "n {n} i {i}: {g} vs {want}"
            );
        }
    }
}

#[test]
fn hadamard_twice_is_identity() {
    let mut rng = Rng::new(3);
    for log in 0..=7 {
        let x: Vec<f32> = (0..1 << log).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let mut y = x.clone();
        hadamard_in_place(&mut y).expect("power of two");
        hadamard_in_place(&mut y).expect("power of two");
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= 1e-6, "n {}: {a} vs {b}", x.len());
        }
    }
}

#[test]
fn hadamard_rejects_other_lengths() {
    for len in [0, 3, 96, 129] {
        let mut x = vec![1.0; len];
        assert_eq!(hadamard_in_place(&mut x), Err(HadamardLengthError { len }));
        assert!(x.iter().all(|&v| v == 1.0), "untouched on error");
    }
}

#[test]
fn bf16_in_place_rounds_each_value() {
    let mut rng = Rng::new(5);
    let x: Vec<f32> = (0..100).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let mut y = x.clone();
    round_bf16_in_place(&mut y);
    let want: Vec<f32> = x.iter().map(|&v| round_to_bf16(v)).collect();
    assert_eq!(bits(&y), bits(&want));
}
