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
use crate::model::quant::{self, ActFormat, ActLayout, ActRow, Q8Row, QuantActs};
use crate::model::tensor::Tensor;

thread_local! {
    /// Quantized activation buffers, one per activation format of a call.
    static ACTS: RefCell<Vec<QuantActs>> = const { RefCell::new(Vec::new()) };
}

/// `out = x · wᵀ`: `x` is `m × w.cols` row-major, `out` is `m × w.rows`,
/// on the best kernel family this CPU has ([`Isa::detect`]).
///
/// Panics when the slice lengths do not match the shapes (a caller bug).
pub fn matmul(w: &Tensor, x: &[f32], m: usize, out: &mut [f32]) {
    matmul_on(Isa::detect(), w, x, m, out);
}

/// Several matmuls over the same input `x` (Q, K and V; gate and up) in one
/// parallel dispatch: fewer thread-pool wake-ups per layer, and bitwise the
/// same results as separate [`matmul`] calls.
pub fn matmul_many(ws: &[&Tensor], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
    matmul_many_on(Isa::detect(), ws, x, m, outs);
}

/// [`matmul`] with an explicit kernel family (which must be available on
/// this CPU: see [`Isa::is_available`]); for tests and benchmarks.
pub fn matmul_on(isa: Isa, w: &Tensor, x: &[f32], m: usize, out: &mut [f32]) {
    matmul_many_on(isa, &[w], x, m, &mut [out]);
}

/// [`matmul_many`] with an explicit kernel family.
pub fn matmul_many_on(isa: Isa, ws: &[&Tensor], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
    assert!(
        isa.is_available(),
        "{isa:?} kernels are not supported by this CPU"
    );
    assert_eq!(ws.len(), outs.len(), "one output per weight");
    for (w, out) in ws.iter().zip(outs.iter()) {
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
    }
    if m == 0 {
        return;
    }
    let Some(cols) = ws.first().map(|w| w.cols) else {
        return;
    };
    if cols == 0 {
        outs.iter_mut().for_each(|o| o.fill(0.0));
        return;
    }
    let mut formats: Vec<ActFormat> = Vec::new();
    for w in ws {
        let f = w.qtype.act_format();
        if f != ActFormat::F32 && !formats.contains(&f) {
            formats.push(f);
        }
    }
    let mut quantize_and_run = |bufs: &mut Vec<QuantActs>| {
        if bufs.len() < formats.len() {
            bufs.resize_with(formats.len(), QuantActs::new);
        }
        for (f, b) in formats.iter().zip(bufs.iter_mut()) {
            b.quantize(*f, isa.act_layout(m), x, cols);
        }
        let acts: Vec<Acts<'_>> = ws
            .iter()
            .map(
                |w| match formats.iter().position(|f| *f == w.qtype.act_format()) {
                    Some(i) => Acts::quantized(&bufs[i]),
                    None => Acts::f32(x, cols),
                },
            )
            .collect();
        run(isa, ws, &acts, m, outs);
    };
    ACTS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => quantize_and_run(&mut bufs),
        // Re-entered from a rayon job stolen while this thread waits inside
        // an outer matmul: that call owns the buffers, so use fresh ones.
        Err(_) => quantize_and_run(&mut Vec::new()),
    });
}

/// Activation rows as the kernels see them, looked up once per call.
pub(super) struct Acts<'a> {
    rows: Vec<ActRow<'a>>,
    layout: ActLayout,
}

impl<'a> Acts<'a> {
    fn f32(x: &'a [f32], cols: usize) -> Self {
        Acts {
            rows: x.chunks_exact(cols).map(ActRow::F32).collect(),
            layout: ActLayout::Natural,
        }
    }

    fn quantized(a: &'a QuantActs) -> Self {
        Acts {
            rows: (0..a.rows()).map(|i| ActRow::Q8(a.row(i))).collect(),
            layout: a.layout(),
        }
    }

    /// The order of the quantized rows' 32-value blocks.
    pub(super) fn layout(&self) -> ActLayout {
        self.layout
    }

    #[inline(always)]
    pub(super) fn row(&self, i: usize) -> ActRow<'a> {
        self.rows[i]
    }

    /// The quantized activation row `i` (kernels for block weights are only
    /// reached with their quantized activation format).
    #[inline(always)]
    pub(super) fn q8(&self, i: usize) -> Q8Row<'a> {
        match self.rows[i] {
            ActRow::Q8(r) => r,
            ActRow::F32(_) => unreachable!("block weights always get quantized activations"),
        }
    }
}

/// Computes weight row `n`'s outputs for every activation row: `dot_r` on
/// `R` rows at a time while that many remain, then `dot1` on each of the
/// rest. A kernel's multi-row dot computes each row exactly as if alone, so
/// the split never changes a result.
#[inline(always)]
pub(super) fn for_act_rows<const R: usize>(
    acts: &Acts<'_>,
    n: usize,
    dst: &mut Cols<'_>,
    mut dot_r: impl FnMut(&[Q8Row<'_>; R]) -> [f32; R],
    mut dot1: impl FnMut(&[Q8Row<'_>; 1]) -> [f32; 1],
) {
    let m = dst.m();
    let mut i = 0;
    while i < m {
        if m - i >= R {
            let a: [Q8Row<'_>; R] = std::array::from_fn(|r| acts.q8(i + r));
            for (r, v) in dot_r(&a).into_iter().enumerate() {
                dst.put(i + r, n, v);
            }
            i += R;
        } else {
            dst.put(i, n, dot1(&[acts.q8(i)])[0]);
            i += 1;
        }
    }
}

/// The largest kernel tile of the natural-order block kernels, so a verify
/// pass of up to eight tokens reads and unpacks each weight block once;
/// also the most activation rows that AVX2 takes 32-value-block formats
/// for in natural order (`Isa::act_layout`).
pub(super) const MAX_ROWS: usize = 8;

/// A block-format kernel: dots of one stored weight row with `R` (1 to
/// [`MAX_ROWS`]) quantized activation rows, each computed exactly as if
/// alone.
pub(super) trait RowsDot {
    /// SAFETY: the CPU must support the features of the kernel's family.
    unsafe fn dot<const R: usize>(row: &[u8], a: &[Q8Row<'_>; R]) -> [f32; R];
}

/// Runs kernel `K` on weight rows `rows` against every activation row, in
/// tiles of [`MAX_ROWS`] activation rows and one tile of the rest. Always
/// inlined into a family's dispatch, whose features the kernel then runs
/// with.
///
/// SAFETY: the CPU must support the features of `K`'s family.
#[inline(always)]
pub(super) unsafe fn tiles<K: RowsDot>(
    w: &Tensor,
    acts: &Acts<'_>,
    rows: Range<usize>,
    dst: &mut Cols<'_>,
) {
    // The match below names every tile size.
    const { assert!(MAX_ROWS == 8) };
    let m = dst.m();
    for n in rows {
        let row = w.row_bytes(n);
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MAX_ROWS);
            // SAFETY: forwarded from the caller.
            unsafe {
                match r {
                    8 => tile::<K, 8>(row, acts, i, n, dst),
                    7 => tile::<K, 7>(row, acts, i, n, dst),
                    6 => tile::<K, 6>(row, acts, i, n, dst),
                    5 => tile::<K, 5>(row, acts, i, n, dst),
                    4 => tile::<K, 4>(row, acts, i, n, dst),
                    3 => tile::<K, 3>(row, acts, i, n, dst),
                    2 => tile::<K, 2>(row, acts, i, n, dst),
                    _ => tile::<K, 1>(row, acts, i, n, dst),
                }
            }
            i += r;
        }
    }
}

/// Checks that every Q8_K activation row of a K-quant tile covers `nb`
/// super-blocks (the kernels then read them unchecked).
#[inline(always)]
pub(super) fn check_k_rows<const R: usize>(a: &[Q8Row<'_>; R], nb: usize) {
    for r in a {
        assert!(r.q.len() == 256 * nb && r.sums.len() == 16 * nb && r.d.len() == nb);
    }
}

/// Activation rows `i..i + R` against weight row `n`.
///
/// SAFETY: the CPU must support the features of `K`'s family.
#[inline(always)]
unsafe fn tile<K: RowsDot, const R: usize>(
    row: &[u8],
    acts: &Acts<'_>,
    i: usize,
    n: usize,
    dst: &mut Cols<'_>,
) {
    let a: [Q8Row<'_>; R] = std::array::from_fn(|r| acts.q8(i + r));
    // SAFETY: forwarded from the caller.
    let out = unsafe { K::dot::<R>(row, &a) };
    for (r, v) in out.into_iter().enumerate() {
        dst.put(i + r, n, v);
    }
}

fn run(isa: Isa, ws: &[&Tensor], acts: &[Acts<'_>], m: usize, outs: &mut [&mut [f32]]) {
    // About four tasks per thread and weight so stealing evens out uneven
    // progress; chunking never changes an element's arithmetic.
    let threads = rayon::current_num_threads() * 4;
    let mut tasks: Vec<(usize, Range<usize>)> = Vec::new();
    for (t, w) in ws.iter().enumerate() {
        let n = w.rows;
        let chunk = n.div_ceil(threads).max(8);
        tasks.extend((0..n.div_ceil(chunk)).map(|c| (t, c * chunk..n.min((c + 1) * chunk))));
    }
    let bases: Vec<OutPtr> = outs.iter_mut().map(|o| OutPtr(o.as_mut_ptr())).collect();
    tasks.into_par_iter().for_each(|(t, rows)| {
        let w = ws[t];
        // SAFETY: every output stays mutably borrowed until every task has
        // finished, and tasks of one output get disjoint column ranges.
        let mut dst = unsafe { Cols::new(bases[t], m, w.rows, rows.clone()) };
        match isa {
            Isa::Scalar => scalar_rows(w, &acts[t], rows, &mut dst),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `matmul_many_on` checked that the CPU supports the family.
            Isa::Avx512 => unsafe { super::avx512::rows(w, &acts[t], rows, &mut dst) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `matmul_many_on` checked that the CPU supports the family.
            Isa::Avx2 => unsafe { super::avx2::rows(w, &acts[t], rows, &mut dst) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => unreachable!("checked by is_available"),
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
