//! Stored tensor formats (GGUF block quantizations and plain floats): block
//! layouts, decoding, and the quantized dot products the CPU kernels use.

/// A stored element format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_1,
    Q5_0,
    Q4K,
    Q6K,
}

impl QType {
    /// Values per block.
    pub fn block_size(self) -> usize {
        match self {
            QType::F32 | QType::F16 | QType::BF16 => 1,
            QType::Q8_0 | QType::Q4_1 | QType::Q5_0 => 32,
            QType::Q4K | QType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::F32 => 4,
            QType::F16 | QType::BF16 => 2,
            QType::Q8_0 => 34,
            QType::Q4_1 => 20,
            QType::Q5_0 => 22,
            QType::Q4K => 144,
            QType::Q6K => 210,
        }
    }

    /// Bytes of one row of `cols` values (`cols` a multiple of the block size).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_size() * self.block_bytes()
    }
}
