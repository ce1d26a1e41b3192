//! Causal attention over the paged KV cache, on the CPU.
//!
//! Work is split by (sequence, KV head): each task decodes that head's keys
//! and values once and serves every query head of its group and every token
//! of the chunk. Each token's scores are reduced in position order, so the
//! result is the same whether the token arrives alone (decode) or inside a
//! prefill chunk, and whatever else shares the step.
//!
//! A score is `q · k` summed over dimensions in order. Keys are gathered in
//! tiles of [`TILE`] positions, each dimension-major, so that order is kept
//! while a tile's positions are computed at once (one vector lane per
//! position), which the compiler vectorizes without reassociating anything.

use std::cell::RefCell;

use rayon::prelude::*;

use super::kv_arena::KvArena;
use super::ops::softmax;

/// One sequence's queries for one layer.
pub struct ChunkQueries<'a> {
    pub block_table: &'a [u32],
    /// Position of the first query token.
    pub start_pos: usize,
    /// `n_tokens × n_heads × head_dim` query rows (already rotated).
    pub q: &'a [f32],
    pub n_tokens: usize,
}

/// Attention geometry.
#[derive(Debug, Clone, Copy)]
pub struct HeadLayout {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Computes attention for every chunk of a step; returns, per chunk,
/// `n_tokens × n_heads × head_dim` outputs.
pub fn attend(
    arena: &KvArena,
    layer: usize,
    chunks: &[ChunkQueries<'_>],
    h: HeadLayout,
) -> Vec<Vec<f32>> {
    let group = h.n_heads / h.n_kv_heads;
    let hd = h.head_dim;
    let q_dim = h.n_heads * hd;
    let tasks: Vec<(usize, usize)> = (0..chunks.len())
        .flat_map(|c| (0..h.n_kv_heads).map(move |g| (c, g)))
        .collect();
    let parts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(c, g)| {
            let ch = &chunks[c];
            let n = ch.start_pos + ch.n_tokens;
            with_kv_buffers(n.div_ceil(TILE) * TILE * hd, n * hd, |k_tiles, v| {
                arena.gather_tiles(ch.block_table, layer, g, n, TILE, k_tiles);
                arena.gather(ch.block_table, layer, true, g, n, v);
                attend_head_group(ch, g, h, k_tiles, v)
            })
        })
        .collect();
    let mut results: Vec<Vec<f32>> = chunks
        .iter()
        .map(|c| vec![0.0; c.n_tokens * q_dim])
        .collect();
    for (&(c, g), part) in tasks.iter().zip(parts) {
        for t in 0..chunks[c].n_tokens {
            let src = &part[t * group * hd..(t + 1) * group * hd];
            let dst = t * q_dim + g * group * hd;
            results[c][dst..dst + group * hd].copy_from_slice(src);
        }
    }
    results
}

/// Every token of chunk `ch` against KV head `g`'s keys (`k_tiles`, see
/// `KvArena::gather_tiles`) and values (`v`, position-major), for the
/// query heads that share it: `n_tokens × group × head_dim` outputs.
fn attend_head_group(
    ch: &ChunkQueries<'_>,
    g: usize,
    h: HeadLayout,
    k_tiles: &[f32],
    v: &[f32],
) -> Vec<f32> {
    let group = h.n_heads / h.n_kv_heads;
    let hd = h.head_dim;
    let q_dim = h.n_heads * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0.0; ch.n_tokens * group * hd];
    let mut scores = vec![0.0; ch.start_pos + ch.n_tokens];
    for t in 0..ch.n_tokens {
        let visible = ch.start_pos + t + 1;
        for j in 0..group {
            let head = g * group + j;
            let q = &ch.q[t * q_dim + head * hd..t * q_dim + (head + 1) * hd];
            let s = &mut scores[..visible];
            scores_into(q, k_tiles, scale, s);
            softmax(s);
            let o = &mut out[(t * group + j) * hd..(t * group + j + 1) * hd];
            weighted_sum_into(s, v, o);
        }
    }
    out
}

thread_local! {
    /// Gathered keys and values, reused across calls (they only grow).
    static KV_BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on this thread's key and value buffers, sized to `k_len` and
/// `v_len` floats. Their contents are stale: the gathers overwrite every
/// value the kernels read (a partial key tile's spare lanes are never
/// read), so reuse never changes a result and saves zeroing the history's
/// size of memory per call.
fn with_kv_buffers<T>(
    k_len: usize,
    v_len: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> T,
) -> T {
    let run = |bufs: &mut (Vec<f32>, Vec<f32>)| {
        if bufs.0.len() < k_len {
            bufs.0.resize(k_len, 0.0);
        }
        if bufs.1.len() < v_len {
            bufs.1.resize(v_len, 0.0);
        }
        f(&mut bufs.0[..k_len], &mut bufs.1[..v_len])
    };
    KV_BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => run(&mut bufs),
        // Re-entered from a rayon job stolen while this thread waits:
        // that call owns the buffers.
        Err(_) => run(&mut Default::default()),
    })
}

/// Positions (or dimensions) kept in registers at once.
const TILE: usize = 16;

/// `acc[i] += x · row[i]` over a whole tile (fixed length, so the compiler
/// keeps `acc` in vector registers) or over a shorter tail.
#[inline(always)]
fn axpy_tile(acc: &mut [f32; TILE], x: f32, row: &[f32]) {
    if let Ok(row) = <&[f32; TILE]>::try_from(row) {
        for i in 0..TILE {
            acc[i] += x * row[i];
        }
    } else {
        for (a, &r) in acc.iter_mut().zip(row) {
            *a += x * r;
        }
    }
}

/// `s[p] = (Σ_d q[d] · k[d][p]) · scale` for `p < s.len()`, the sum taken
/// in dimension order; `k_tiles` holds tiles of [`TILE`] positions, each
/// dimension-major (`KvArena::gather_tiles`). A tile of positions
/// accumulates in registers over all dimensions before it is stored.
fn scores_into(q: &[f32], k_tiles: &[f32], scale: f32, s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512 F, checked just above.
        unsafe { scores_avx512(q, k_tiles, scale, s) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { scores_avx2(q, k_tiles, scale, s) };
        return;
    }
    scores_portable(q, k_tiles, scale, s);
}

/// `o[d] += Σ_p w[p] · v[p][d]`, the sum taken in position order; `v` is
/// position-major with `o.len()` dimensions per position.
fn weighted_sum_into(w: &[f32], v: &[f32], o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512 F, checked just above.
        unsafe { weighted_sum_avx512(w, v, o) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { weighted_sum_avx2(w, v, o) };
        return;
    }
    weighted_sum_portable(w, v, o);
}

// The AVX2 and AVX-512 builds compile the portable loops with wider vectors
// (a whole tile per register on AVX-512); each lane still adds its products
// in the portable order, and Rust never contracts `a * b + c` into an FMA,
// so every build gives the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scores_avx2(q: &[f32], k_tiles: &[f32], scale: f32, s: &mut [f32]) {
    scores_portable(q, k_tiles, scale, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weighted_sum_avx2(w: &[f32], v: &[f32], o: &mut [f32]) {
    weighted_sum_portable(w, v, o);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scores_avx512(q: &[f32], k_tiles: &[f32], scale: f32, s: &mut [f32]) {
    scores_portable(q, k_tiles, scale, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn weighted_sum_avx512(w: &[f32], v: &[f32], o: &mut [f32]) {
    weighted_sum_portable(w, v, o);
}

#[inline(always)]
fn scores_portable(q: &[f32], k_tiles: &[f32], scale: f32, s: &mut [f32]) {
    let hd = q.len();
    for (tile, k) in s.chunks_mut(TILE).zip(k_tiles.chunks_exact(TILE * hd)) {
        // -0.0 is the additive identity: each sum starts at exactly q0·k0.
        let mut acc = [-0.0f32; TILE];
        for (&qd, kd) in q.iter().zip(k.chunks_exact(TILE)) {
            axpy_tile(&mut acc, qd, &kd[..tile.len()]);
        }
        for (o, a) in tile.iter_mut().zip(acc) {
            *o = a * scale;
        }
    }
}

#[inline(always)]
fn weighted_sum_portable(w: &[f32], v: &[f32], o: &mut [f32]) {
    let hd = o.len();
    for (t, tile) in o.chunks_mut(TILE).enumerate() {
        let d0 = t * TILE;
        let mut acc = [0.0f32; TILE];
        acc[..tile.len()].copy_from_slice(tile);
        for (p, &wp) in w.iter().enumerate() {
            axpy_tile(&mut acc, wp, &v[p * hd + d0..p * hd + d0 + tile.len()]);
        }
        tile.copy_from_slice(&acc[..tile.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 8e6 - 1.0
            })
            .collect()
    }

    /// The tiled loops give exactly the in-order sums of their definitions,
    /// for lengths that are and are not whole tiles.
    #[test]
    fn tiled_sums_equal_in_order_sums() {
        for (hd, n) in [(64, 37), (48, 16), (128, 5), (20, 50)] {
            let q = values(hd, 1);
            let k = values(n * hd, 2);
            let v = values(n * hd, 3);
            let mut k_tiles = vec![0.0; n.div_ceil(TILE) * TILE * hd];
            for p in 0..n {
                for d in 0..hd {
                    k_tiles[p / TILE * TILE * hd + d * TILE + p % TILE] = k[p * hd + d];
                }
            }
            let visible = n - 2;
            let mut s = vec![0.0; visible];
            scores_into(&q, &k_tiles, 0.125, &mut s);
            for (p, &got) in s.iter().enumerate() {
                let want = q.iter().zip(&k[p * hd..]).map(|(a, b)| a * b).sum::<f32>() * 0.125;
                assert_eq!(got.to_bits(), want.to_bits(), "score {p} (hd {hd})");
            }
            let mut o = values(hd, 4);
            let mut want = o.clone();
            weighted_sum_into(&s, &v, &mut o);
            for (p, &w) in s.iter().enumerate() {
                for (od, vd) in want.iter_mut().zip(&v[p * hd..(p + 1) * hd]) {
                    *od += w * vd;
                }
            }
            assert_eq!(
                o.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
