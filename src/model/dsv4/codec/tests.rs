//! Codec tests: every code decoded against its sign/exponent/mantissa
//! formula (written here independently, in f64), encoders against the
//! decoders at every code, every midpoint and its neighbours.

use super::*;

/// Value of a sign/exponent/mantissa minifloat by its textbook definition.
fn minifloat(sign: u8, exp_field: u8, mantissa: u8, mantissa_bits: i32, bias: i32) -> f64 {
    let s = if sign == 1 { -1.0 } else { 1.0 };
    let frac = f64::from(mantissa) / 2f64.powi(mantissa_bits);
    if exp_field == 0 {
        s * frac * 2f64.powi(1 - bias)
    } else {
        s * (1.0 + frac) * 2f64.powi(i32::from(exp_field) - bias)
    }
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn e4m3_decodes_every_code_by_definition() {
    for b in 0..=255u8 {
        let (sign, exp_field, mantissa) = (b >> 7, (b >> 3) & 0xF, b & 0x7);
        let got = e4m3_to_f32(b);
        if exp_field == 0xF && mantissa == 0x7 {
            assert!(got.is_nan(), "{b:#04x}");
            continue;
        }
        let want = minifloat(sign, exp_field, mantissa, 3, 7);
        assert_eq!(f64::from(got), want, "{b:#04x}");
        assert_eq!(got.is_sign_negative(), sign == 1, "{b:#04x} sign");
    }
    assert_eq!(e4m3_to_f32(0x7E), 448.0);
    assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
}

#[test]
fn e8m0_decodes_every_code_by_definition() {
    for b in 0..=254u8 {
        let want = 2f64.powi(i32::from(b) - 127);
        assert_eq!(f64::from(e8m0_to_f32(b)), want, "{b}");
    }
    assert!(e8m0_to_f32(0).is_subnormal());
    assert!(e8m0_to_f32(255).is_nan());
}

#[test]
fn e2m1_decodes_every_code_by_definition() {
    for b in 0..16u8 {
        let want = minifloat(b >> 3, (b >> 1) & 0x3, b & 0x1, 1, 1);
        let got = e2m1_to_f32(b);
        assert_eq!(f64::from(got), want, "{b:#x}");
        assert_eq!(got.is_sign_negative(), b >= 8, "{b:#x} sign");
    }
    let magnitudes: Vec<f32> = (0..8).map(e2m1_to_f32).collect();
    assert_eq!(magnitudes, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
}

#[test]
fn lookup_tables_equal_scalar_decoders() {
    for b in 0..=255u8 {
        assert!(same(E4M3_LUT[usize::from(b)], e4m3_to_f32(b)), "e4m3 {b}");
        assert!(same(E8M0_LUT[usize::from(b)], e8m0_to_f32(b)), "e8m0 {b}");
    }
    for b in 0..16u8 {
        assert!(same(E2M1_LUT[usize::from(b)], e2m1_to_f32(b)), "e2m1 {b}");
    }
}

#[test]
fn e4m3_encode_inverts_decode_on_every_code() {
    for b in (0..=255u8).filter(|b| b & 0x7F != 0x7F) {
        assert_eq!(f32_to_e4m3(e4m3_to_f32(b)), b, "{b:#04x}");
    }
}

#[test]
fn e2m1_encode_inverts_decode_on_every_code() {
    for b in 0..16u8 {
        assert_eq!(f32_to_e2m1(e2m1_to_f32(b)), b, "{b:#x}");
    }
}

/// Between consecutive positive codes `c` and `c + 1` (codes are monotone
/// in value): the midpoint goes to the even code, its neighbours to the
/// nearer code; the same holds mirrored for negative values.
fn check_midpoints(max_code: u8, sign_bit: u8, decode: fn(u8) -> f32, encode: fn(f32) -> u8) {
    for c in 0..max_code {
        let (lo, hi) = (decode(c), decode(c + 1));
        let mid = ((f64::from(lo) + f64::from(hi)) / 2.0) as f32;
        assert_eq!(f64::from(mid), (f64::from(lo) + f64::from(hi)) / 2.0);
        let even = if c.is_multiple_of(2) { c } else { c + 1 };
        for (x, want) in [(mid, even), (mid.next_down(), c), (mid.next_up(), c + 1)] {
            assert_eq!(encode(x), want, "{x:e} between codes {c} and {}", c + 1);
            assert_eq!(encode(-x), want | sign_bit, "{:e}", -x);
        }
    }
}

#[test]
fn e4m3_rounds_ties_to_even_between_every_pair_of_codes() {
    check_midpoints(0x7E, 0x80, e4m3_to_f32, f32_to_e4m3);
}

#[test]
fn e2m1_rounds_ties_to_even_between_every_pair_of_codes() {
    check_midpoints(0x7, 0x8, e2m1_to_f32, f32_to_e2m1);
}

#[test]
fn e4m3_saturates_and_maps_nan() {
    for x in [
        448.0f32.next_up(),
        464.0,
        480.0,
        1e30,
        f32::MAX,
        f32::INFINITY,
    ] {
        assert_eq!(f32_to_e4m3(x), 0x7E, "{x}");
        assert_eq!(f32_to_e4m3(-x), 0xFE, "{}", -x);
    }
    assert_eq!(f32_to_e4m3(f32::NAN), 0x7F);
    assert_eq!(f32_to_e4m3(-f32::NAN), 0x7F);
}

#[test]
fn e4m3_subnormal_boundaries_and_zeros() {
    assert_eq!(f32_to_e4m3(0.0), 0x00);
    assert_eq!(f32_to_e4m3(-0.0), 0x80);
    // f32 subnormals and everything up to half the smallest code are zero.
    assert_eq!(f32_to_e4m3(f32::from_bits(1)), 0x00);
    assert_eq!(f32_to_e4m3(-f32::MIN_POSITIVE), 0x80);
    assert_eq!(f32_to_e4m3(2f32.powi(-10)), 0x00);
    assert_eq!(f32_to_e4m3(2f32.powi(-10).next_up()), 0x01);
    // Largest subnormal 7·2^-9, smallest normal 2^-6, and between them.
    assert_eq!(f32_to_e4m3(7.0 * 2f32.powi(-9)), 0x07);
    assert_eq!(f32_to_e4m3(2f32.powi(-6)), 0x08);
    assert_eq!(f32_to_e4m3(7.5 * 2f32.powi(-9)), 0x08);
    assert_eq!(f32_to_e4m3(2f32.powi(-6).next_down()), 0x08);
}

#[test]
fn e2m1_saturates_and_keeps_signs() {
    for x in [6.0f32.next_up(), 7.0, 100.0, f32::INFINITY] {
        assert_eq!(f32_to_e2m1(x), 0x7, "{x}");
        assert_eq!(f32_to_e2m1(-x), 0xF, "{}", -x);
    }
    assert_eq!(f32_to_e2m1(-0.0), 0x8);
    assert_eq!(f32_to_e2m1(0.25), 0x0);
    assert_eq!(f32_to_e2m1(0.25f32.next_up()), 0x1);
    assert_eq!(f32_to_e2m1(f32::NAN), 0x0);
}

#[test]
fn bf16_rounding_matches_ties_to_even() {
    let ulp = 2f32.powi(-7);
    assert_eq!(round_to_bf16(1.0 + ulp / 2.0), 1.0);
    assert_eq!(round_to_bf16(1.0 + ulp + ulp / 2.0), 1.0 + 2.0 * ulp);
    assert_eq!(round_to_bf16((1.0 + ulp / 2.0).next_up()), 1.0 + ulp);
    assert_eq!(round_to_bf16(-(1.0 + ulp / 2.0)), -1.0);
    assert_eq!(round_to_bf16(f32::MAX), f32::INFINITY);
    assert_eq!(round_to_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
    assert!(round_to_bf16(f32::NAN).is_nan());
    // A NaN whose payload lives only in the dropped bits stays NaN.
    assert!(round_to_bf16(f32::from_bits(0x7F80_0001)).is_nan());
    assert!(round_to_bf16(-0.0).is_sign_negative());
}

#[test]
fn bf16_rounding_agrees_with_half_crate_on_a_bit_sweep() {
    for bits in (0..=u32::MAX)
        .step_by(65_519)
        .chain([0x3F80_8000, 0x3F81_8000])
    {
        let x = f32::from_bits(bits);
        let want = half::bf16::from_f32(x).to_f32();
        let got = round_to_bf16(x);
        assert!(same(got, want), "{bits:#010x}");
    }
}

#[test]
fn bf16_bits_decode_every_pattern() {
    for b in 0..=u16::MAX {
        let want = half::bf16::from_bits(b).to_f32();
        assert!(same(bf16_bits_to_f32(b), want), "{b:#06x}");
    }
}
