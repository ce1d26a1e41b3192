//! Scalar codecs of the DeepSeek-V4 checkpoint and its simulated
//! low-precision casts: FP8 E4M3 ("fn" variant), the E8M0 power-of-two
//! scale, FP4 E2M1, and bf16.
//!
//! Invariants:
//! - Every decoder returns the exact value of its code (all of them fit an
//!   f32 exactly), and the lookup tables hold exactly the decoders' values.
//! - Every encoder rounds to nearest, ties to even, and saturates finite
//!   out-of-range magnitudes (and infinities) to the largest finite code,
//!   as the reference kernels' `clamp` followed by a cast does. Signs,
//!   negative zero included, are kept.

/// E4M3 "fn": exponent bias 7, three mantissa bits, subnormals, no
/// infinities; the all-ones magnitude (0x7F) is the only NaN.
const E4M3_MANTISSA_BITS: u32 = 3;
const E4M3_MIN_EXPONENT: i32 = -6;
const E4M3_MAX: f32 = 448.0;
const E4M3_MAX_CODE: u8 = 0x7E;
const E4M3_NAN: u8 = 0x7F;

/// E2M1: exponent bias 1, one mantissa bit, subnormal 0.5, no NaN or inf.
const E2M1_MANTISSA_BITS: u32 = 1;
const E2M1_MIN_EXPONENT: i32 = 0;
const E2M1_MAX: f32 = 6.0;
const E2M1_MAX_CODE: u8 = 0x7;

/// 2^k as an f32 for k in the normal range [-126, 127], built from its bits
/// so it is exact (no `powi` rounding, usable in const context).
pub(crate) const fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// Unbiased binary exponent of a finite positive f32 (f32 subnormals give
/// -127, below every minimum exponent used here, which is all callers need).
pub(crate) const fn exponent(a: f32) -> i32 {
    ((a.to_bits() >> 23) & 0xFF) as i32 - 127
}

/// The value of an FP8 E4M3 byte.
pub const fn e4m3_to_f32(b: u8) -> f32 {
    let magnitude = b & 0x7F;
    let value = if magnitude == E4M3_NAN {
        f32::NAN
    } else {
        let exp_field = (magnitude >> 3) as i32;
        let mantissa = (magnitude & 0x7) as f32;
        if exp_field == 0 {
            mantissa * pow2(E4M3_MIN_EXPONENT - 3)
        } else {
            (8.0 + mantissa) * pow2(exp_field - 7 - 3)
        }
    };
    if b & 0x80 != 0 { -value } else { value }
}

/// The nearest E4M3 byte to `x` (ties to even), saturating to ±448; NaN
/// becomes 0x7F.
pub fn f32_to_e4m3(x: f32) -> u8 {
    if x.is_nan() {
        return E4M3_NAN;
    }
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    let a = x.abs();
    let magnitude = if a >= E4M3_MAX {
        E4M3_MAX_CODE
    } else {
        encode_magnitude(a, E4M3_MANTISSA_BITS, E4M3_MIN_EXPONENT)
    };
    sign | magnitude
}

/// The code of a finite magnitude `a` below the format's maximum, in a
/// minifloat with `m` mantissa bits and minimum normal exponent `emin`.
///
/// With `e = max(exponent(a), emin)` the code's step is 2^(e-m), so
/// `n = a / 2^(e-m)` rounded to even is the code's significand: in
/// [2^m, 2^(m+1)] for normals and below 2^m for subnormals. The code
/// `((e - emin) << m) + n` covers both, and a significand that rounds up to
/// 2^(m+1) carries into the next exponent by plain integer addition.
fn encode_magnitude(a: f32, m: u32, emin: i32) -> u8 {
    let e = exponent(a).max(emin);
    // Multiplying by a power of two is exact here: the result is below
    // 2^(m+1) and far above the f32 subnormal range unless it rounds to 0.
    let n = (a * pow2(m as i32 - e)).round_ties_even() as u32;
    (((e - emin) as u32) << m) as u8 + n as u8
}

/// The value of an E8M0 scale byte: 2^(b − 127); byte 0 is the f32
/// subnormal 2^−127 and 255 is NaN.
pub const fn e8m0_to_f32(b: u8) -> f32 {
    match b {
        0 => f32::from_bits(1 << 22),
        255 => f32::NAN,
        _ => f32::from_bits((b as u32) << 23),
    }
}

/// The value of an FP4 E2M1 code (low four bits of `nibble`; bit 3 is the
/// sign): magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
pub const fn e2m1_to_f32(nibble: u8) -> f32 {
    let exp_field = ((nibble >> 1) & 0x3) as i32;
    let mantissa = (nibble & 0x1) as f32;
    let value = if exp_field == 0 {
        mantissa * 0.5
    } else {
        (2.0 + mantissa) * pow2(exp_field - 1 - 1)
    };
    if nibble & 0x8 != 0 { -value } else { value }
}

/// The nearest E2M1 code to `x` (ties to even), saturating to ±6. E2M1 has
/// no NaN; NaN becomes +0 so a NaN cannot turn into a large finite weight.
pub fn f32_to_e2m1(x: f32) -> u8 {
    if x.is_nan() {
        return 0;
    }
    let sign = if x.is_sign_negative() { 0x8 } else { 0 };
    let a = x.abs();
    let magnitude = if a >= E2M1_MAX {
        E2M1_MAX_CODE
    } else {
        encode_magnitude(a, E2M1_MANTISSA_BITS, E2M1_MIN_EXPONENT)
    };
    sign | magnitude
}

/// The bf16 value nearest to `x` (ties to even), as an f32. Finite values
/// past the bf16 range become infinities, as IEEE rounding says; NaN stays
/// NaN (made quiet, so truncation cannot turn it into an infinity).
pub fn round_to_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return f32::from_bits((bits | 0x0040_0000) & 0xFFFF_0000);
    }
    // Adding 0x7FFF plus the lowest kept bit rounds the dropped half to
    // nearest, ties to even; a carry out of the mantissa bumps the exponent.
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1));
    f32::from_bits(rounded & 0xFFFF_0000)
}

/// The value of a bf16 bit pattern.
pub const fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Every E4M3 byte's value, for kernels that decode many weights.
pub static E4M3_LUT: [f32; 256] = {
    let mut t = [0.0; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = e4m3_to_f32(b as u8);
        b += 1;
    }
    t
};

/// Every E8M0 byte's value.
pub static E8M0_LUT: [f32; 256] = {
    let mut t = [0.0; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = e8m0_to_f32(b as u8);
        b += 1;
    }
    t
};

/// Every E2M1 code's value.
pub static E2M1_LUT: [f32; 16] = {
    let mut t = [0.0; 16];
    let mut b = 0;
    while b < 16 {
        t[b] = e2m1_to_f32(b as u8);
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests;
