//! A weight tensor kept in its stored format, borrowed from a memory map.
//!
//! Invariant: `bytes()` is exactly `rows * qtype.row_bytes(cols)` long; the
//! loader checks this before a `Tensor` exists, so kernels never bounds-check
//! block counts again.

use std::sync::Arc;

use memmap2::Mmap;

use crate::model::quant::QType;

/// Weight storage: a memory-mapped checkpoint file, or owned bytes (tests,
/// tensors converted at load).
#[derive(Debug, Clone)]
pub enum Storage {
    Mapped(Arc<Mmap>),
    Owned(Arc<Vec<u8>>),
}

impl Storage {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A 1-D or 2-D weight in a stored block format. Shapes are outermost-first:
/// a matrix is `rows × cols`, and each row is `cols` values stored in blocks.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub qtype: QType,
    pub rows: usize,
    pub cols: usize,
    storage: Storage,
    offset: usize,
}

impl Tensor {
    /// Creates a tensor over `storage[offset..]`. Returns `None` when the
    /// storage is too short or `cols` is not a whole number of blocks.
    pub fn new(
        name: impl Into<String>,
        qtype: QType,
        rows: usize,
        cols: usize,
        storage: Storage,
        offset: usize,
    ) -> Option<Tensor> {
        if !cols.is_multiple_of(qtype.block_size()) {
            return None;
        }
        let len = rows.checked_mul(qtype.row_bytes(cols))?;
        let end = offset.checked_add(len)?;
        if end > storage.as_slice().len() {
            return None;
        }
        Some(Tensor {
            name: name.into(),
            qtype,
            rows,
            cols,
            storage,
            offset,
        })
    }

    /// The tensor's raw bytes in its stored format.
    pub fn bytes(&self) -> &[u8] {
        let len = self.rows * self.qtype.row_bytes(self.cols);
        &self.storage.as_slice()[self.offset..self.offset + len]
    }

    /// The stored bytes of one row.
    #[inline]
    pub fn row_bytes(&self, row: usize) -> &[u8] {
        let rb = self.qtype.row_bytes(self.cols);
        &self.bytes()[row * rb..(row + 1) * rb]
    }

    /// The first `n` rows (all of them when there are fewer), sharing the
    /// storage: rows are stored one after another, so a prefix is a view.
    pub fn first_rows(&self, n: usize) -> Tensor {
        Tensor {
            rows: n.min(self.rows),
            ..self.clone()
        }
    }
}
