//! KV cache bookkeeping, as plain data: which physical blocks each sequence
//! owns, which computed prefix blocks can be shared, and how much of the
//! memory budget is promised. No device types; the backend stores the
//! blocks' contents, indexed by the ids handed out here.

pub mod block_pool;
pub mod prefix_hash;

pub use block_pool::{BlockPool, SeqBlocks};
pub use prefix_hash::{BlockHash, chain_hashes};

/// Blocks needed to hold `tokens` tokens.
pub fn blocks_for(tokens: usize, block_size: usize) -> usize {
    tokens.div_ceil(block_size)
}
