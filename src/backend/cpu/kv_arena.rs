//! CPU storage for the KV cache: fixed-size blocks of f16 keys and values.
//!
//! Layout: block-major, then layer, then K|V, then slot, then the KV heads'
//! dims, so one sequence's keys for one layer are `block_size` contiguous rows
//! per block. Storage is allocated zeroed up front; the OS maps pages only as
//! blocks are first written, so an unused budget costs address space, not RAM.
//! Values are kept in f16 as llama.cpp does by default, halving memory.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

/// The KV blocks of one model on the CPU.
#[derive(Debug)]
pub struct KvArena {
    /// f16 bit patterns (u16 so the zeroed allocation stays lazy).
    data: Vec<u16>,
    pub block_size: usize,
    pub n_blocks: usize,
    n_layers: usize,
    head_dim: usize,
    kv_dim: usize,
}

impl KvArena {
    pub fn new(
        n_blocks: usize,
        block_size: usize,
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> KvArena {
        let kv_dim = n_kv_heads * head_dim;
        KvArena {
            data: vec![0u16; n_blocks * n_layers * 2 * block_size * kv_dim],
            block_size,
            n_blocks,
            n_layers,
            head_dim,
            kv_dim,
        }
    }

    /// Bytes one token occupies (all layers, K and V).
    pub fn bytes_per_token(n_layers: usize, kv_dim: usize) -> usize {
        n_layers * 2 * kv_dim * std::mem::size_of::<u16>()
    }

    fn row_index(&self, block: u32, layer: usize, value: bool, slot: usize) -> usize {
        let per_kv = self.block_size * self.kv_dim;
        ((block as usize * self.n_layers + layer) * 2 + usize::from(value)) * per_kv
            + slot * self.kv_dim
    }

    /// Stores one token's K and V rows (`kv_dim` each) for `layer`.
    pub fn write(&mut self, block: u32, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        let ki = self.row_index(block, layer, false, slot);
        self.data[ki..ki + self.kv_dim]
            .reinterpret_cast_mut::<f16>()
            .convert_from_f32_slice(k);
        let vi = self.row_index(block, layer, true, slot);
        self.data[vi..vi + self.kv_dim]
            .reinterpret_cast_mut::<f16>()
            .convert_from_f32_slice(v);
    }

    /// Decodes KV head `head` of K (or V, when `value`) for positions
    /// `0..n` of a sequence into `out` (`n * head_dim` floats).
    pub fn gather(
        &self,
        table: &[u32],
        layer: usize,
        value: bool,
        head: usize,
        n: usize,
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512 F, checked just above.
            unsafe { self.gather_avx512(table, layer, value, head, n, out) };
            return;
        }
        self.gather_with(table, layer, value, head, n, out, widen_portable);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn gather_avx512(
        &self,
        table: &[u32],
        layer: usize,
        value: bool,
        head: usize,
        n: usize,
        out: &mut [f32],
    ) {
        self.gather_with(table, layer, value, head, n, out, |s, d| {
            // SAFETY: this function's caller checked AVX-512 F.
            unsafe { widen_avx512(s, d) }
        });
    }

    /// [`gather`](Self::gather) with the widening `widen`, inlined into
    /// each instruction-set variant.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn gather_with(
        &self,
        table: &[u32],
        layer: usize,
        value: bool,
        head: usize,
        n: usize,
        out: &mut [f32],
        widen: impl Fn(&[f16], &mut [f32]),
    ) {
        for (pos, dst) in out.chunks_exact_mut(self.head_dim).take(n).enumerate() {
            widen(self.head_row(table, layer, value, head, pos), dst);
        }
    }

    /// Like [`gather`](Self::gather) for keys, but in tiles of `tile`
    /// positions, each dimension-major: position `p`'s dimension `d` lands
    /// at `out[(p / tile) * tile * head_dim + d * tile + p % tile]`, so a
    /// kernel can run along a tile's positions with unit stride and the
    /// transposition stays within a few cache lines. `out` holds
    /// `n.div_ceil(tile) * tile * head_dim` floats; a partial last tile's
    /// spare lanes get arbitrary values.
    pub fn gather_tiles(
        &self,
        table: &[u32],
        layer: usize,
        head: usize,
        n: usize,
        tile: usize,
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512 F, checked just above.
            unsafe { self.gather_tiles_avx512(table, layer, head, n, tile, out) };
            return;
        }
        self.gather_tiles_with(table, layer, head, n, tile, out, widen_portable);
    }

    /// [`gather_tiles`](Self::gather_tiles) on AVX-512: tiles of 16
    /// positions are transposed in registers, 16 dimensions at a time,
    /// instead of stored one value at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn gather_tiles_avx512(
        &self,
        table: &[u32],
        layer: usize,
        head: usize,
        n: usize,
        tile: usize,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let hd = self.head_dim;
        if tile != 16 || !hd.is_multiple_of(16) {
            self.gather_tiles_with(table, layer, head, n, tile, out, |s, d| {
                // SAFETY: this function's caller checked AVX-512 F.
                unsafe { widen_avx512(s, d) }
            });
            return;
        }
        let stages = transpose_stages();
        for (t, dst) in out.chunks_exact_mut(16 * hd).enumerate() {
            let (p0, m) = (16 * t, (n - 16 * t).min(16));
            // Past the last position, repeat it: those lanes are spare.
            let rows: [&[f16]; 16] = std::array::from_fn(|i| {
                self.head_row(table, layer, false, head, p0 + i.min(m - 1))
            });
            for d0 in (0..hd).step_by(16) {
                // SAFETY: dimensions d0..d0 + 16 lie inside every row
                // (hd is a multiple of 16); the stores fill dimensions
                // d0..d0 + 16 of the tile, inside `dst`.
                unsafe {
                    let mut z: [__m512; 16] = std::array::from_fn(|i| {
                        _mm512_cvtph_ps(_mm256_loadu_si256(rows[i][d0..].as_ptr() as *const _))
                    });
                    transpose16(&mut z, &stages);
                    for (k, v) in z.iter().enumerate() {
                        _mm512_storeu_ps(dst[(d0 + k) * 16..].as_mut_ptr(), *v);
                    }
                }
            }
        }
    }

    /// [`gather_tiles`](Self::gather_tiles) with the widening `widen`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn gather_tiles_with(
        &self,
        table: &[u32],
        layer: usize,
        head: usize,
        n: usize,
        tile: usize,
        out: &mut [f32],
        widen: impl Fn(&[f16], &mut [f32]),
    ) {
        let hd = self.head_dim;
        let mut row = vec![0.0f32; hd];
        for (t, dst) in out.chunks_exact_mut(tile * hd).enumerate() {
            for (i, pos) in (t * tile..n.min((t + 1) * tile)).enumerate() {
                widen(self.head_row(table, layer, false, head, pos), &mut row);
                for (d, &x) in row.iter().enumerate() {
                    dst[d * tile + i] = x;
                }
            }
        }
    }

    /// The stored f16 row of KV head `head` of K (or V) at sequence
    /// position `pos`, found through the sequence's block table.
    fn head_row(
        &self,
        table: &[u32],
        layer: usize,
        value: bool,
        head: usize,
        pos: usize,
    ) -> &[f16] {
        let hd = self.head_dim;
        let i = self.row_index(
            table[pos / self.block_size],
            layer,
            value,
            pos % self.block_size,
        ) + head * hd;
        self.data[i..i + hd].reinterpret_cast::<f16>()
    }
}

/// Widens f16 values to f32 (`src` and `dst` of equal length).
fn widen_portable(src: &[f16], dst: &mut [f32]) {
    src.convert_to_f32_slice(dst);
}

/// [`widen_portable`], 16 values per instruction; inlined into the AVX-512
/// gathers (a call per row of 64 or 128 values would cost as much as the
/// conversion).
///
/// SAFETY: the CPU must support AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn widen_avx512(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), dst.len());
    let mut s = src.chunks_exact(16);
    let mut d = dst.chunks_exact_mut(16);
    for (s, d) in (&mut s).zip(&mut d) {
        // SAFETY: 16 f16 are read and 16 f32 written, inside the chunks;
        // the caller guarantees AVX-512 F.
        unsafe {
            let v = _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr() as *const _));
            _mm512_storeu_ps(d.as_mut_ptr(), v);
        }
    }
    widen_portable(s.remainder(), d.into_remainder());
}

/// Permutation indices for [`transpose16`]: per stage `s`, the two outputs
/// of a register pair.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose_stages() -> [[std::arch::x86_64::__m512i; 2]; 4] {
    use std::arch::x86_64::*;
    // Stage s swaps register-index bit s with lane bit s: output v of a
    // register pair takes lane L from input (bit s of L), lane L with bit s
    // set to v.
    let stage = |s: u32, v: u32| {
        let idx: [i32; 16] = std::array::from_fn(|l| {
            let l = l as u32;
            ((((l >> s) & 1) << 4) | (l & !(1 << s)) | (v << s)) as i32
        });
        // SAFETY: reads 16 i32 from a 16-element array.
        unsafe { _mm512_loadu_si512(idx.as_ptr() as *const _) }
    };
    [0, 1, 2, 3].map(|s| [stage(s, 0), stage(s, 1)])
}

/// Transposes 16 registers of 16 floats (register `r`, lane `l` becomes
/// register `l`, lane `r`): four stages of two-source permutes, each
/// swapping one register-index bit with one lane bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(
    z: &mut [std::arch::x86_64::__m512; 16],
    stages: &[[std::arch::x86_64::__m512i; 2]; 4],
) {
    use std::arch::x86_64::*;
    for (s, [i0, i1]) in stages.iter().enumerate() {
        let bit = 1 << s;
        for r in (0..16).filter(|r| r & bit == 0) {
            let (a, b) = (z[r], z[r | bit]);
            z[r] = _mm512_permutex2var_ps(a, *i0, b);
            z[r | bit] = _mm512_permutex2var_ps(a, *i1, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_gather_round_trips_through_f16() {
        let mut a = KvArena::new(4, 2, 3, 2, 2);
        let table = [3u32, 1];
        for pos in 0..4 {
            let k: Vec<f32> = (0..4).map(|d| (pos * 10 + d) as f32).collect();
            let v: Vec<f32> = k.iter().map(|x| -x).collect();
            a.write(table[pos / 2], 1, pos % 2, &k, &v);
        }
        let mut out = vec![0.0; 8];
        a.gather(&table, 1, false, 1, 4, &mut out);
        assert_eq!(out, [2.0, 3.0, 12.0, 13.0, 22.0, 23.0, 32.0, 33.0]);
        a.gather(&table, 1, true, 0, 2, &mut out[..4]);
        assert_eq!(&out[..4], &[-0.0, -1.0, -10.0, -11.0]);
        // Other layers stay untouched.
        a.gather(&table, 0, false, 0, 2, &mut out[..4]);
        assert_eq!(&out[..4], &[0.0; 4]);
        // Tiles of 3 positions, each dimension-major; the second tile holds
        // one position.
        let mut tiles = vec![f32::NAN; 12];
        a.gather_tiles(&table, 1, 1, 4, 3, &mut tiles);
        assert_eq!(&tiles[..7], &[2.0, 12.0, 22.0, 3.0, 13.0, 23.0, 32.0]);
        assert_eq!(tiles[9], 33.0);
    }

    /// Tiles of 16 positions over 32-dimension heads (the in-register
    /// transposition where the CPU has AVX-512), with a partial last tile
    /// and the second of two heads.
    #[test]
    fn key_tiles_of_16_hold_every_position_dimension_major() {
        let (hd, n) = (32, 37);
        let mut a = KvArena::new(3, 16, 1, 2, hd);
        let table = [2u32, 0, 1];
        // Exact in f16 (below 2048), distinct per position and dimension,
        // negative for the first head.
        let key = |pos: usize, c: usize| {
            let v = (pos * 32 + c % 32) as f32;
            if c < hd { -v } else { v }
        };
        for pos in 0..n {
            let k: Vec<f32> = (0..2 * hd).map(|c| key(pos, c)).collect();
            a.write(table[pos / 16], 0, pos % 16, &k, &k);
        }
        let mut tiles = vec![f32::NAN; 3 * 16 * hd];
        a.gather_tiles(&table, 0, 1, n, 16, &mut tiles);
        for pos in 0..n {
            for d in 0..hd {
                let got = tiles[pos / 16 * 16 * hd + d * 16 + pos % 16];
                assert_eq!(got, key(pos, hd + d), "position {pos}, dimension {d}");
            }
        }
    }
}
