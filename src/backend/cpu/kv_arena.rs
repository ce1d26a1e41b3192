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
        for (pos, dst) in out.chunks_exact_mut(self.head_dim).take(n).enumerate() {
            self.head_row(table, layer, value, head, pos)
                .convert_to_f32_slice(dst);
        }
    }

    /// Like [`gather`](Self::gather), but in tiles of `tile` positions,
    /// each dimension-major: position `p`'s dimension `d` lands at
    /// `out[(p / tile) * tile * head_dim + d * tile + p % tile]`, so a
    /// kernel can run along a tile's positions with unit stride and the
    /// transposition stays within a few cache lines. `out` holds
    /// `n.div_ceil(tile) * tile * head_dim` floats; a partial last tile's
    /// unused lanes are left as they are.
    pub fn gather_tiles(
        &self,
        table: &[u32],
        layer: usize,
        head: usize,
        n: usize,
        tile: usize,
        out: &mut [f32],
    ) {
        let hd = self.head_dim;
        let mut row = vec![0.0f32; hd];
        for (t, dst) in out.chunks_exact_mut(tile * hd).enumerate() {
            for (i, pos) in (t * tile..n.min((t + 1) * tile)).enumerate() {
                self.head_row(table, layer, false, head, pos)
                    .convert_to_f32_slice(&mut row);
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
        // one position, the rest of it is left as it was (NaN).
        let mut tiles = vec![f32::NAN; 12];
        a.gather_tiles(&table, 1, 1, 4, 3, &mut tiles);
        let want = [2.0, 12.0, 22.0, 3.0, 13.0, 23.0, 32.0];
        assert_eq!(&tiles[..7], &want);
        assert!(tiles[7].is_nan() && tiles[8].is_nan() && tiles[10].is_nan());
        assert_eq!(tiles[9], 33.0);
    }
}
