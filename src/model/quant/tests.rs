//! Codec tests on hand-built blocks (exact values), and reference dot
//! products against dequantized weights.

use super::testutil::{Rng, random_row, random_x};
use super::*;

fn decode(qtype: QType, bytes: &[u8]) -> Vec<f32> {
    let mut out = vec![f32::NAN; bytes.len() / qtype.block_bytes() * qtype.block_size()];
    dequantize_row(qtype, bytes, &mut out);
    out
}

#[test]
fn float_rows_decode_exactly() {
    let mut f32_row = 1.5f32.to_le_bytes().to_vec();
    f32_row.extend((-2.25f32).to_le_bytes());
    assert_eq!(decode(QType::F32, &f32_row), vec![1.5, -2.25]);
    // f16: 0x3C00 = 1.0, 0xC000 = -2.0, 0x0001 = 2^-24 (subnormal).
    assert_eq!(
        decode(QType::F16, &[0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00]),
        vec![1.0, -2.0, 2f32.powi(-24)]
    );
    // bf16: 0x3F80 = 1.0, 0xC0A0 = -5.0.
    assert_eq!(
        decode(QType::BF16, &[0x80, 0x3F, 0xA0, 0xC0]),
        vec![1.0, -5.0]
    );
}

#[test]
fn q8_0_block_decodes_exactly() {
    let mut b = vec![0x00, 0x38]; // d = 0.5
    let mut qs = [0u8; 32];
    qs[0] = 1;
    qs[1] = (-3i8) as u8;
    qs[31] = 127;
    qs[30] = (-128i8) as u8;
    b.extend(qs);
    let got = decode(QType::Q8_0, &b);
    assert_eq!(got[0], 0.5);
    assert_eq!(got[1], -1.5);
    assert_eq!(got[30], -64.0);
    assert_eq!(got[31], 63.5);
    assert!(got[2..30].iter().all(|&v| v == 0.0));
}

#[test]
fn q4_1_block_decodes_low_nibbles_first() {
    let mut b = vec![0x00, 0x34, 0x00, 0xBC]; // d = 0.25, m = -1.0
    let mut qs = [0u8; 16];
    qs[0] = 0x3A;
    qs[15] = 0xF0;
    b.extend(qs);
    let got = decode(QType::Q4_1, &b);
    assert_eq!(got[0], 10.0 * 0.25 - 1.0);
    assert_eq!(got[16], 3.0 * 0.25 - 1.0);
    assert_eq!(got[15], -1.0);
    assert_eq!(got[31], 15.0 * 0.25 - 1.0);
    assert_eq!(got[1], -1.0);
}

#[test]
fn q5_0_block_takes_fifth_bit_from_qh() {
    let mut b = vec![0x00, 0x40]; // d = 2.0
    b.extend(0x0002_0001u32.to_le_bytes()); // high bits of values 0 and 17
    let mut qs = [0u8; 16];
    qs[0] = 0x21;
    qs[1] = 0x0F;
    b.extend(qs);
    let got = decode(QType::Q5_0, &b);
    assert_eq!(got[0], (17.0 - 16.0) * 2.0);
    assert_eq!(got[16], (2.0 - 16.0) * 2.0);
    assert_eq!(got[1], (15.0 - 16.0) * 2.0);
    assert_eq!(got[17], 0.0);
    assert_eq!(got[2], -32.0);
    assert_eq!(got[31], -32.0);
}

#[test]
fn q4_k_block_unpacks_six_bit_scales_and_mins() {
    let mut b = vec![0x00, 0x3C, 0x00, 0x38]; // d = 1.0, dmin = 0.5
    let mut scales = [0u8; 12];
    scales[0] = 0xC5; // sc0 = 5; top bits 3 -> sc4 bits 4..6
    scales[4] = 0x87; // mn0 = 7; top bits 2 -> mn4 bits 4..6
    scales[8] = 0x92; // sc4 low = 2, mn4 low = 9
    b.extend(scales);
    let mut qs = [0u8; 128];
    qs[0] = 0x3C; // value 0 = 12 (sub-block 0), value 32 = 3 (sub-block 1)
    qs[64] = 0x0B; // value 128 = 11 (sub-block 4)
    b.extend(qs);
    assert_eq!(q4_k::scale_min(0, &scales), (5, 7));
    assert_eq!(q4_k::scale_min(4, &scales), (2 | 48, 9 | 32));
    let got = decode(QType::Q4K, &b);
    let mut want = vec![0.0f32; 256];
    want[..32].fill(-3.5);
    want[128..160].fill(-20.5);
    want[0] = 5.0 * 12.0 - 3.5;
    want[128] = 50.0 * 11.0 - 20.5;
    assert_eq!(got, want);
}

#[test]
fn q6_k_block_interleaves_ql_and_qh() {
    let mut b = vec![0u8; 210];
    b[0] = 0x5A; // ql[0]: value 0 low bits 10, value 64 low bits 5
    b[128] = 0xD9; // qh[0] = 0b11_01_10_01: high bits of values 0, 32, 64, 96
    b[127] = 0xF0; // ql[127]: value 255 low bits 15
    b[128 + 63] = 0xC0; // qh[63]: value 255 high bits 3
    b[192] = 3; // scale of values 0..16
    b[192 + 4] = (-2i8) as u8; // values 64..80
    b[192 + 15] = 1; // values 240..256
    b[208..210].copy_from_slice(&[0x00, 0x38]); // d = 0.5
    let got = decode(QType::Q6K, &b);
    let mut want = vec![0.0f32; 256];
    want[..16].fill(0.5 * 3.0 * -32.0);
    want[64..80].fill(0.5 * -2.0 * -32.0);
    want[240..256].fill(0.5 * -32.0);
    want[0] = 0.5 * 3.0 * (26.0 - 32.0);
    want[64] = 0.5 * -2.0 * (21.0 - 32.0);
    want[255] = 0.5 * 31.0;
    assert_eq!(got, want);
}

#[test]
#[should_panic(expected = "do not hold")]
fn dequantize_row_rejects_a_short_row() {
    dequantize_row(QType::Q8_0, &[0u8; 33], &mut [0.0; 32]);
}

const ALL: [QType; 8] = QType::ALL;

/// Row lengths exercising partial 16-block groups and several super-blocks.
fn test_cols(qtype: QType) -> &'static [usize] {
    match qtype.block_size() {
        256 => &[256, 1536],
        32 => &[64, 576, 1056],
        _ => &[100, 576],
    }
}

/// The activation row as the kernel sees it: dequantized (`d * q`).
fn act_values(a: &Q8Row<'_>, format: ActFormat, cols: usize) -> Vec<f64> {
    let bs = format.block_size();
    (0..cols)
        .map(|j| {
            let (b, v) = (j / bs, j % bs);
            let q = if bs == 32 { a.q[a.pos(b, v)] } else { a.q[j] };
            f64::from(a.d[b]) * f64::from(q)
        })
        .collect()
}

/// Q4_1's min term uses the f16 block sum `s` where the dequantized dot
/// uses `d * sum(q)`: allow both roundings of that term.
fn q4_1_min_slack(w: &[u8], a: &Q8Row<'_>) -> f64 {
    w.chunks_exact(20)
        .enumerate()
        .map(|(b, blk)| {
            f64::from(f16_at(&blk[2..]).abs()) * (f64::from(a.s[b].abs()) + 1e-30) * 2f64.powi(-9)
        })
        .sum()
}

#[test]
fn reference_dot_matches_dequantized_weights_times_quantized_activations() {
    let mut rng = Rng::new(7);
    for qtype in ALL {
        for &cols in test_cols(qtype) {
            for _ in 0..4 {
                let w = random_row(qtype, cols, &mut rng);
                let x = random_x(cols, &mut rng);
                let mut wd = vec![0.0f32; cols];
                dequantize_row(qtype, &w, &mut wd);
                let format = qtype.act_format();
                let mut acts = QuantActs::new();
                let (got, xs, slack) = if format == ActFormat::F32 {
                    let xs = x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
                    (dot_ref(qtype, &w, ActRow::F32(&x)), xs, 0.0)
                } else {
                    acts.quantize(format, ActLayout::Grouped, &x, cols);
                    let a = acts.row(0);
                    let slack = if qtype == QType::Q4_1 {
                        q4_1_min_slack(&w, &a)
                    } else {
                        0.0
                    };
                    (
                        dot_ref(qtype, &w, ActRow::Q8(a)),
                        act_values(&a, format, cols),
                        slack,
                    )
                };
                let exact: f64 = wd.iter().zip(&xs).map(|(&w, &x)| f64::from(w) * x).sum();
                let mag: f64 = wd
                    .iter()
                    .zip(&xs)
                    .map(|(&w, &x)| (f64::from(w) * x).abs())
                    .sum();
                let err = (f64::from(got) - exact).abs();
                assert!(
                    err <= 2e-5 * mag + slack,
                    "{qtype:?} cols {cols}: got {got}, want {exact} (err {err}, magnitude {mag})"
                );
            }
        }
    }
}

#[test]
fn reference_dot_tracks_the_unquantized_product() {
    // Activation rounding moves each value by at most half a step
    // (amax / 254) plus the f16 rounding of the step: bound the error by
    // 0.6 steps per |weight|.
    let mut rng = Rng::new(11);
    for qtype in ALL {
        let format = qtype.act_format();
        if format == ActFormat::F32 {
            continue;
        }
        for &cols in test_cols(qtype) {
            let w = random_row(qtype, cols, &mut rng);
            let x = random_x(cols, &mut rng);
            let mut wd = vec![0.0f32; cols];
            dequantize_row(qtype, &w, &mut wd);
            let mut acts = QuantActs::new();
            acts.quantize(format, ActLayout::Natural, &x, cols);
            let a = acts.row(0);
            let got = f64::from(dot_ref(qtype, &w, ActRow::Q8(a)));
            let bs = format.block_size();
            let mut bound = if qtype == QType::Q4_1 {
                q4_1_min_slack(&w, &a)
            } else {
                0.0
            };
            let mut exact = 0.0f64;
            for (wb, xb) in wd.chunks(bs).zip(x.chunks(bs)) {
                let step = f64::from(xb.iter().fold(0.0f32, |m, v| m.max(v.abs()))) / 127.0;
                for (&w, &x) in wb.iter().zip(xb) {
                    exact += f64::from(w) * f64::from(x);
                    bound += f64::from(w).abs() * (0.6 * step + 2e-5 * f64::from(x).abs());
                }
            }
            assert!(
                (got - exact).abs() <= bound,
                "{qtype:?} cols {cols}: got {got}, want {exact}, bound {bound}"
            );
            let scale: f64 = wd
                .iter()
                .zip(&x)
                .map(|(&w, &x)| (f64::from(w) * f64::from(x)).abs())
                .sum();
            // The bound still catches layout or scale mistakes, whose error is
            // of the order of the product's own magnitude (outliers in x make
            // 256-value blocks coarse, hence the margin).
            assert!(bound < 0.25 * scale, "{qtype:?}: bound {bound} vs {scale}");
        }
    }
}

#[test]
fn q4_k_scales_mins_unpack_all_sub_blocks_as_scale_min_does() {
    let mut rng = Rng::new(21);
    for _ in 0..64 {
        let s = rng.bytes(12);
        let (sc, mn) = q4_k::scales_mins(&s);
        for j in 0..8 {
            let want = q4_k::scale_min(j, &s);
            assert_eq!(
                ((sc >> (8 * j)) as u8, (mn >> (8 * j)) as u8),
                want,
                "sub-block {j}"
            );
        }
    }
}
