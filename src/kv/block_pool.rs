//! A pool of fixed-size KV blocks under a hard budget: reference counts, a
//! free list, reservations, and an index of computed prefix blocks.
//!
//! Invariants:
//! - `in_use + promised <= total`, where `in_use` counts blocks with a
//!   reference and `promised` the blocks reserved by running sequences but
//!   not yet taken. Admission reserves every block a sequence can ever need,
//!   so taking a block inside a reservation cannot fail and no running
//!   sequence is ever preempted for memory.
//! - A block is shared (reference count > 1) only if it is a full block of
//!   prompt tokens published in the index; nobody writes to a published
//!   block again (sequences attach whole blocks and compute from the next
//!   block boundary), so sharing needs no copy-on-write.
//! - A published block whose last reference goes stays in the index as a
//!   cached block, evicted least-recently-released first and only when a
//!   reservation needs a block and the free list is empty.

use std::collections::{BTreeMap, HashMap};

use super::prefix_hash::BlockHash;

/// The blocks, their references and the prefix index.
#[derive(Debug)]
pub struct BlockPool {
    total: usize,
    refs: Vec<u32>,
    /// The hash a block is published under, if any.
    published: Vec<Option<BlockHash>>,
    index: HashMap<BlockHash, u32>,
    /// Unpublished blocks with no reference, lowest id last (taken first).
    free: Vec<u32>,
    /// Published blocks with no reference, by release tick (oldest first).
    cached: BTreeMap<u64, u32>,
    cached_tick: Vec<u64>,
    tick: u64,
    in_use: usize,
    promised: usize,
    evictions: u64,
}

/// The blocks one sequence holds, in position order, and what it may still take.
#[derive(Debug, PartialEq, Eq)]
pub struct SeqBlocks {
    pub table: Vec<u32>,
    promised: usize,
}

impl BlockPool {
    pub fn new(total: usize) -> BlockPool {
        // Hand out low ids first: the backend maps pages lazily, so a small
        // job touches little memory.
        BlockPool {
            total,
            refs: vec![0; total],
            published: vec![None; total],
            index: HashMap::new(),
            free: (0..total as u32).rev().collect(),
            cached: BTreeMap::new(),
            cached_tick: vec![0; total],
            tick: 0,
            in_use: 0,
            promised: 0,
            evictions: 0,
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Blocks held by a sequence or a pin.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Blocks promised to running sequences and not yet taken.
    pub fn promised(&self) -> usize {
        self.promised
    }

    /// Published blocks kept for reuse with no holder.
    pub fn cached(&self) -> usize {
        self.cached.len()
    }

    /// Cached blocks dropped from the index to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// How many leading `hashes` name published blocks.
    pub fn lookup(&self, hashes: &[BlockHash]) -> usize {
        hashes
            .iter()
            .take_while(|h| self.index.contains_key(h))
            .count()
    }

    /// Admits a sequence that needs `need` blocks in all, attaching the
    /// published blocks of its first `shared` hashes (all must be published:
    /// see [`BlockPool::lookup`]) and reserving the rest. `None` when the
    /// budget cannot take it now; nothing changes then.
    pub fn try_admit(&mut self, shared: &[BlockHash], need: usize) -> Option<SeqBlocks> {
        let blocks: Vec<u32> = shared.iter().map(|h| self.index[h]).collect();
        let reviving = blocks
            .iter()
            .filter(|&&b| self.refs[b as usize] == 0)
            .count();
        let fresh = need.saturating_sub(blocks.len());
        if self.in_use + self.promised + reviving + fresh > self.total {
            return None;
        }
        for &b in &blocks {
            self.acquire(b);
        }
        self.promised += fresh;
        Some(SeqBlocks {
            table: blocks,
            promised: fresh,
        })
    }

    /// Grows `seq` to `n_blocks` blocks within its reservation. Returns false
    /// (and changes nothing) if that exceeds the reservation.
    pub fn grow(&mut self, seq: &mut SeqBlocks, n_blocks: usize) -> bool {
        let more = n_blocks.saturating_sub(seq.table.len());
        if more > seq.promised {
            return false;
        }
        for _ in 0..more {
            let b = self.take();
            seq.table.push(b);
        }
        seq.promised -= more;
        self.promised -= more;
        true
    }

    /// A free block, evicting the oldest cached block if needed. Callers hold
    /// a reservation, which guarantees one exists.
    fn take(&mut self) -> u32 {
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                let (_, b) = self
                    .cached
                    .pop_first()
                    .expect("a reservation guarantees a free or cached block");
                let hash = self.published[b as usize]
                    .take()
                    .expect("cached is published");
                self.index.remove(&hash);
                self.evictions += 1;
                b
            }
        };
        self.refs[b as usize] = 1;
        self.in_use += 1;
        b
    }

    fn acquire(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        if *r == 0 {
            self.cached.remove(&self.cached_tick[b as usize]);
            self.in_use += 1;
        }
        *r += 1;
    }

    fn drop_ref(&mut self, b: u32) {
        let r = &mut self.refs[b as usize];
        debug_assert!(*r > 0, "block {b} released more often than taken");
        *r -= 1;
        if *r > 0 {
            return;
        }
        self.in_use -= 1;
        if self.published[b as usize].is_some() {
            self.tick += 1;
            self.cached_tick[b as usize] = self.tick;
            self.cached.insert(self.tick, b);
        } else {
            self.free.push(b);
        }
    }

    /// Publishes a held, fully computed block under `hash`. Returns false when
    /// another block already holds that prefix (this one stays private).
    pub fn publish(&mut self, block: u32, hash: BlockHash) -> bool {
        debug_assert!(self.refs[block as usize] > 0, "publish a held block");
        if self.index.contains_key(&hash) || self.published[block as usize].is_some() {
            return false;
        }
        self.index.insert(hash, block);
        self.published[block as usize] = Some(hash);
        true
    }

    /// Adds a reference to held blocks (a group pin), so they outlive their
    /// sequences.
    pub fn pin(&mut self, blocks: &[u32]) {
        for &b in blocks {
            debug_assert!(self.refs[b as usize] > 0, "pin a held block");
            self.acquire(b);
        }
    }

    /// Drops the references [`BlockPool::pin`] added.
    pub fn unpin(&mut self, blocks: &[u32]) {
        for &b in blocks {
            self.drop_ref(b);
        }
    }

    /// Returns a finished sequence's blocks and the rest of its reservation.
    pub fn release(&mut self, seq: SeqBlocks) {
        self.promised -= seq.promised;
        for &b in seq.table.iter().rev() {
            self.drop_ref(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u128) -> BlockHash {
        1000 + i
    }

    #[test]
    fn reservations_never_exceed_the_pool() {
        let mut pool = BlockPool::new(10);
        let mut a = pool.try_admit(&[], 6).unwrap();
        assert!(pool.try_admit(&[], 5).is_none());
        let mut b = pool.try_admit(&[], 4).unwrap();
        assert!(pool.try_admit(&[], 1).is_none());
        assert!(pool.grow(&mut a, 6));
        assert!(pool.grow(&mut b, 4));
        assert_eq!((pool.in_use(), pool.promised()), (10, 0));
        assert!(
            !pool.grow(&mut b, 5),
            "growth beyond the reservation is refused"
        );
        assert_eq!(b.table.len(), 4);
        let mut all: Vec<u32> = a.table.iter().chain(&b.table).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..10).collect::<Vec<_>>(),
            "every block handed out once"
        );
        pool.release(a);
        assert_eq!(pool.in_use(), 4);
        assert!(pool.try_admit(&[], 6).is_some());
    }

    #[test]
    fn lazy_growth_takes_low_ids_first_and_release_returns_the_promise() {
        let mut pool = BlockPool::new(4);
        let mut s = pool.try_admit(&[], 3).unwrap();
        assert!(pool.grow(&mut s, 1));
        assert_eq!(s.table, vec![0]);
        assert_eq!(pool.promised(), 2);
        pool.release(s);
        assert_eq!((pool.in_use(), pool.promised()), (0, 0));
        let mut t = pool.try_admit(&[], 4).unwrap();
        assert!(pool.grow(&mut t, 4));
        assert_eq!(t.table, vec![0, 1, 2, 3]);
    }

    #[test]
    fn published_blocks_are_shared_then_cached_then_evicted_oldest_first() {
        let mut pool = BlockPool::new(4);
        let mut a = pool.try_admit(&[], 3).unwrap();
        assert!(pool.grow(&mut a, 2));
        assert!(pool.publish(a.table[0], h(0)));
        assert!(pool.publish(a.table[1], h(1)));
        assert!(!pool.publish(a.table[1], h(9)), "a block has one identity");
        assert_eq!(pool.lookup(&[h(0), h(1), h(2)]), 2);
        assert_eq!(pool.lookup(&[h(1)]), 1);
        assert_eq!(pool.lookup(&[h(5), h(0)]), 0);

        // b shares both blocks: only its third block is new.
        let mut b = pool.try_admit(&[h(0), h(1)], 3).unwrap();
        assert_eq!(b.table, a.table);
        assert!(pool.grow(&mut b, 3));
        assert_eq!(pool.in_use(), 3);
        pool.release(a);
        assert_eq!(pool.in_use(), 3, "b still holds the shared blocks");
        pool.release(b);
        assert_eq!((pool.in_use(), pool.cached()), (0, 2));

        // A cached prefix is revived by the next sequence that needs it.
        let c = pool.try_admit(&[h(0)], 1).unwrap();
        assert_eq!(c.table, vec![0]);
        assert_eq!(pool.cached(), 1);
        pool.release(c);
        // Needing all four blocks evicts both cached ones, h(1) first (older).
        let mut d = pool.try_admit(&[], 4).unwrap();
        assert!(pool.grow(&mut d, 3));
        assert_eq!(pool.evictions(), 1);
        assert_eq!(pool.lookup(&[h(0)]), 1);
        assert_eq!(pool.lookup(&[h(0), h(1)]), 1);
        assert!(pool.grow(&mut d, 4));
        assert_eq!((pool.evictions(), pool.lookup(&[h(0)])), (2, 0));
    }

    #[test]
    fn reviving_cached_blocks_counts_against_the_budget() {
        let mut pool = BlockPool::new(3);
        let mut a = pool.try_admit(&[], 2).unwrap();
        assert!(pool.grow(&mut a, 2));
        pool.publish(a.table[0], h(0));
        pool.publish(a.table[1], h(1));
        pool.release(a);
        let _big = pool.try_admit(&[], 2).unwrap();
        // 2 promised + 2 revived would be 4 > 3.
        assert!(pool.try_admit(&[h(0), h(1)], 2).is_none());
        assert!(pool.try_admit(&[h(0)], 1).is_some());
    }

    #[test]
    fn pins_keep_blocks_out_of_the_cache() {
        let mut pool = BlockPool::new(3);
        let mut a = pool.try_admit(&[], 1).unwrap();
        assert!(pool.grow(&mut a, 1));
        pool.publish(a.table[0], h(0));
        let pinned = a.table.clone();
        pool.pin(&pinned);
        pool.release(a);
        assert_eq!((pool.in_use(), pool.cached()), (1, 0));
        // The pinned block cannot be evicted: only two blocks remain.
        assert!(pool.try_admit(&[], 3).is_none());
        let mut b = pool.try_admit(&[], 2).unwrap();
        assert!(pool.grow(&mut b, 2));
        assert_eq!(pool.lookup(&[h(0)]), 1);
        pool.unpin(&pinned);
        assert_eq!(pool.cached(), 1);
    }

    #[test]
    fn a_second_copy_of_a_prefix_stays_private() {
        let mut pool = BlockPool::new(2);
        let mut a = pool.try_admit(&[], 1).unwrap();
        let mut b = pool.try_admit(&[], 1).unwrap();
        assert!(pool.grow(&mut a, 1) && pool.grow(&mut b, 1));
        assert!(pool.publish(a.table[0], h(0)));
        assert!(!pool.publish(b.table[0], h(0)));
        pool.release(b);
        pool.release(a);
        assert_eq!(pool.cached(), 1, "only the published copy is cached");
    }
}
