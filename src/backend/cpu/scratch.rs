//! Per-thread scratch buffers in which the SIMD kernels prepare one weight
//! row at a time (unpacked quants, widened scales). Buffers only grow and
//! carry nothing from one row to the next that a kernel reads before
//! writing, so reuse never changes a result.

use std::cell::RefCell;

/// Buffers for one prepared weight row; each kernel uses the ones it needs.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) bytes: Vec<u8>,
    pub(super) f0: Vec<f32>,
    pub(super) f1: Vec<f32>,
}

impl Scratch {
    /// Sizes the buffers the 32-value-block kernels unpack a row of `cols`
    /// values into: quants in `bytes`, block scales in `f0`, Q4_1 mins in
    /// `f1`.
    pub(super) fn fit_q32_row(&mut self, cols: usize) {
        let nb = cols / 32;
        self.bytes.resize(cols, 0);
        self.f0.resize(nb, 0.0);
        self.f1.resize(nb, 0.0);
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's buffers, or with fresh ones when a call
/// re-entered from a rayon job (stolen while this thread waits inside a
/// kernel) finds them borrowed.
pub(super) fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}
