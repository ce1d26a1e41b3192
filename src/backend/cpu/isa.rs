//! Instruction-set selection for the CPU kernels, detected once per process.

use std::sync::OnceLock;

use crate::model::quant::ActLayout;

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
    /// activations in. The SIMD families dot natural-order blocks straight
    /// from the stored weights for a decode or verify step, and unpack
    /// weight rows into the group layout for larger batches, where the
    /// unpacking pays for itself.
    pub fn act_layout(self, m: usize) -> ActLayout {
        match self {
            Isa::Scalar => ActLayout::Natural,
            Isa::Avx512 | Isa::Avx2 if m <= super::matmul::MAX_ROWS => ActLayout::Natural,
            Isa::Avx512 | Isa::Avx2 => ActLayout::Grouped,
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
