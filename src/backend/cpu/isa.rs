//! Instruction-set selection for the CPU kernels, detected once per process.

use std::sync::OnceLock;

use crate::model::quant::{ActLayout, QType};

/// A kernel family. All families compute bit-identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable reference code.
    Scalar,
    /// AVX-512 F/BW/VL with VNNI int8 dot products.
    Avx512,
    /// AVX2 with F16C (no FMA: the numerics round products separately).
    Avx2,
}

impl Isa {
    /// The best family this CPU supports (cached after the first call).
    pub fn detect() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2]
                .into_iter()
                .find(|i| i.is_available())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// The family a matmul of `m` activation rows over weights of
    /// `formats` runs on: the best the CPU has ([`Isa::detect`]), except
    /// that where AVX2 is there too, decode and verify steps (up to
    /// `avx2::MAX_ROWS` rows) over Q4_K and Q4_1 weights take AVX2's
    /// natural-order kernels, which share each block's unpacking among the
    /// rows and run those formats faster than the AVX-512 ones (Q4_K at one
    /// row in 0.59x the time on a 2-vCPU Sapphire Rapids, `cargo bench
    /// --bench kernels`). Every family computes the same bits, so the
    /// choice never changes a result.
    pub fn for_matmul(formats: impl IntoIterator<Item = QType>, m: usize) -> Isa {
        let best = Isa::detect();
        #[cfg(target_arch = "x86_64")]
        if best == Isa::Avx512
            && m <= super::avx2::MAX_ROWS
            && Isa::Avx2.is_available()
            && formats
                .into_iter()
                .all(|q| matches!(q, QType::Q4K | QType::Q4_1))
        {
            return Isa::Avx2;
        }
        best
    }

    /// Whether this CPU can run the family.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => false,
        }
    }

    /// The order the family's kernels read `m` rows of Q8_0/Q8_1
    /// activations in. AVX-512 dots 16 blocks per register from the group
    /// layout. AVX2 dots natural-order blocks straight from the stored
    /// weights for a decode or verify step, and unpacks weight rows into
    /// the group layout for larger batches, where the unpacking pays for
    /// itself.
    pub fn act_layout(self, m: usize) -> ActLayout {
        match self {
            Isa::Scalar => ActLayout::Natural,
            Isa::Avx512 => ActLayout::Grouped,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if m <= super::avx2::MAX_ROWS => ActLayout::Natural,
            Isa::Avx2 => ActLayout::Grouped,
        }
    }

    /// Every family this CPU can run.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_q4_matmuls_take_avx2_where_avx512_is_the_best() {
        let best = Isa::detect();
        let both = best == Isa::Avx512 && Isa::Avx2.is_available();
        let q4 = [QType::Q4K, QType::Q4_1];
        for m in [1, 8] {
            let want = if both { Isa::Avx2 } else { best };
            assert_eq!(Isa::for_matmul(q4, m), want, "m = {m}");
        }
        // Past a verify step, or with any other format in the call, the
        // best family runs it.
        assert_eq!(Isa::for_matmul(q4, 9), best);
        assert_eq!(Isa::for_matmul([QType::Q4K, QType::Q6K], 1), best);
        assert_eq!(Isa::for_matmul([QType::Q8_0], 1), best);
        assert!(Isa::for_matmul(q4, 1).is_available());
    }
}
