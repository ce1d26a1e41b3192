//! Chained hashes of fixed-size token blocks: the identity of a prefix.
//!
//! `h[i] = sha256(h[i-1] ‖ tokens of block i as little-endian u32)`, cut to
//! 128 bits, with `h[-1] = 0`. Equal hashes mean equal token prefixes (a
//! collision at 128 bits is not a practical concern; a 64-bit hash over a
//! corpus-scale job would be), so the KV index and the planner can compare
//! prefixes by one number. Only full blocks are hashed: a partial last block
//! is never shared.

use sha2::{Digest, Sha256};

/// The hash of a block and of everything before it.
pub type BlockHash = u128;

/// One hash per full block of `tokens`.
pub fn chain_hashes(tokens: &[u32], block_size: usize) -> Vec<BlockHash> {
    let mut parent: BlockHash = 0;
    tokens
        .chunks_exact(block_size)
        .map(|block| {
            let mut h = Sha256::new();
            h.update(parent.to_le_bytes());
            for t in block {
                h.update(t.to_le_bytes());
            }
            let digest = h.finalize();
            let mut cut = [0u8; 16];
            cut.copy_from_slice(&digest[..16]);
            parent = BlockHash::from_le_bytes(cut);
            parent
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_identify_prefixes_not_blocks() {
        let a = chain_hashes(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 4);
        assert_eq!(a.len(), 2, "the partial last block is not hashed");
        let b = chain_hashes(&[1, 2, 3, 4, 5, 6, 7, 8], 4);
        assert_eq!(a, b);
        let c = chain_hashes(&[0, 2, 3, 4, 5, 6, 7, 8], 4);
        assert_ne!(a[0], c[0]);
        assert_ne!(a[1], c[1], "same block after a different prefix differs");
        let swapped = chain_hashes(&[5, 6, 7, 8, 1, 2, 3, 4], 4);
        assert_ne!(swapped[1], a[1]);
        assert!(chain_hashes(&[1, 2, 3], 4).is_empty());
    }

    #[test]
    fn hash_is_stable_across_runs() {
        // Plans written by one process are read by another: pin the function.
        let h = chain_hashes(&[0, 1, 2, 3], 4);
        let mut sha = Sha256::new();
        sha.update([0u8; 16]);
        for t in 0u32..4 {
            sha.update(t.to_le_bytes());
        }
        let d = sha.finalize();
        assert_eq!(h[0].to_le_bytes(), d[..16]);
    }
}
