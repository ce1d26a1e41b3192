//! Batched matmul over stored-format weights: `out[i][n] = dot(x[i], w[n])`.
//!
//! Activation rows are quantized once per call (into a thread-local buffer
//! reused across calls); rayon then splits the weight rows into chunks, and
//! each task streams its weight rows once, using each row for all `m`
//! activation rows while it is in cache. Chunking depends on `n` and the
//! thread count only, and no reduction is split across tasks, so every
//! output element is bitwise independent of `m`, of the other rows of `x`,
//! and of the thread count.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Range;

use rayon::prelude::*;

use super::isa::Isa;
use crate::model::quant::{self, ActFormat, ActRow, QuantActs};
use crate::model::tensor::Tensor;

thread_local! {
    static ACTS: RefCell<QuantActs> = RefCell::new(QuantActs::new());
}

/// `out = x · wᵀ`: `x` is `m × w.cols` row-major, `out` is `m × w.rows`.
///
/// Panics when the slice lengths do not match the shapes (a caller bug).
pub fn matmul(w: &Tensor, x: &[f32], m: usize, out: &mut [f32]) {
    matmul_on(Isa::detect(), w, x, m, out);
}

/// [`matmul`] with an explicit kernel family (which must be available on
/// this CPU: see [`Isa::is_available`]); for tests and benchmarks.
pub fn matmul_on(isa: Isa, w: &Tensor, x: &[f32], m: usize, out: &mut [f32]) {
    assert!(
        isa.is_available(),
        "{isa:?} kernels are not supported by this CPU"
    );
    assert_eq!(
        x.len(),
        m * w.cols,
        "matmul {}: x is not {m} rows of {}",
        w.name,
        w.cols
    );
    assert_eq!(
        out.len(),
        m * w.rows,
        "matmul {}: out is not {m} rows of {}",
        w.name,
        w.rows
    );
    if m == 0 || w.rows == 0 {
        return;
    }
    if w.cols == 0 {
        out.fill(0.0);
        return;
    }
    let format = w.qtype.act_format();
    if format == ActFormat::F32 {
        return run(isa, w, &Acts::f32(x, w.cols), m, out);
    }
    let mut quantize_and_run = |acts: &mut QuantActs| {
        acts.quantize(format, x, w.cols);
        run(isa, w, &Acts::quantized(acts), m, out);
    };
    ACTS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut acts) => quantize_and_run(&mut acts),
        // Re-entered from a rayon job stolen while this thread waits inside
        // an outer matmul: that call owns the buffer, so use a fresh one.
        Err(_) => quantize_and_run(&mut QuantActs::new()),
    });
}

/// Activation rows as the kernels see them, looked up once per call.
pub(super) struct Acts<'a> {
    rows: Vec<ActRow<'a>>,
}

impl<'a> Acts<'a> {
    fn f32(x: &'a [f32], cols: usize) -> Self {
        Acts {
            rows: x.chunks_exact(cols).map(ActRow::F32).collect(),
        }
    }

    fn quantized(a: &'a QuantActs) -> Self {
        Acts {
            rows: (0..a.rows()).map(|i| ActRow::Q8(a.row(i))).collect(),
        }
    }

    #[inline(always)]
    pub(super) fn row(&self, i: usize) -> ActRow<'a> {
        self.rows[i]
    }
}

fn run(isa: Isa, w: &Tensor, acts: &Acts<'_>, m: usize, out: &mut [f32]) {
    let n = w.rows;
    // About four tasks per thread so stealing evens out uneven progress.
    let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(8);
    let base = OutPtr(out.as_mut_ptr());
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let rows = c * chunk..n.min((c + 1) * chunk);
        // SAFETY: `out` (m × n) stays mutably borrowed until every task has
        // finished, and tasks get disjoint column ranges.
        let mut dst = unsafe { Cols::new(base, m, n, rows.clone()) };
        match isa {
            Isa::Scalar => scalar_rows(w, acts, rows, &mut dst),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `matmul_on` checked that the CPU supports the family.
            Isa::Avx512 => unsafe { super::avx512::rows(w, acts, rows, &mut dst) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 => unreachable!("checked by is_available"),
        }
    });
}

fn scalar_rows(w: &Tensor, acts: &Acts<'_>, rows: Range<usize>, dst: &mut Cols<'_>) {
    for n in rows {
        let row = w.row_bytes(n);
        for i in 0..dst.m() {
            dst.put(i, n, quant::dot_ref(w.qtype, row, acts.row(i)));
        }
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used to build `Cols` views over disjoint columns.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Write access to columns `cols` of every row of an `m × n` output.
pub(super) struct Cols<'a> {
    base: *mut f32,
    m: usize,
    n: usize,
    cols: Range<usize>,
    _out: PhantomData<&'a mut [f32]>,
}

impl Cols<'_> {
    /// SAFETY: `base` points to `m * n` writable floats that outlive the
    /// view, and no other live view or reference covers columns `cols`.
    unsafe fn new(base: OutPtr, m: usize, n: usize, cols: Range<usize>) -> Self {
        Cols {
            base: base.0,
            m,
            n,
            cols,
            _out: PhantomData,
        }
    }

    pub(super) fn m(&self) -> usize {
        self.m
    }

    pub(super) fn put(&mut self, i: usize, col: usize, v: f32) {
        assert!(
            i < self.m && self.cols.contains(&col),
            "write outside the task's columns"
        );
        // SAFETY: in bounds (checked above) and exclusively ours per `new`.
        unsafe { *self.base.add(i * self.n + col) = v }
    }
}

#[cfg(test)]
mod tests;
