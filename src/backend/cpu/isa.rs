//! Instruction-set selection for the CPU kernels, detected once per process.

use std::sync::OnceLock;

/// A kernel family. All families compute bit-identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable reference code.
    Scalar,
    /// AVX-512 F/BW/VL with VNNI int8 dot products.
    Avx512,
}

impl Isa {
    /// The best family this CPU supports (cached after the first call).
    pub fn detect() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            if Isa::Avx512.is_available() {
                Isa::Avx512
            } else {
                Isa::Scalar
            }
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
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 => false,
        }
    }

    /// Every family this CPU can run.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx512]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }
}
