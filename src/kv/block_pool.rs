//! A pool of fixed-size KV blocks under a hard budget, with reservations.
//!
//! Admission reserves, up front, every block a sequence can ever need
//! (prompt + max_new_tokens); blocks are then taken lazily as positions are
//! written. Invariant: the sum of reservations never exceeds the pool, so an
//! allocation inside a reservation cannot fail and no running sequence is
//! ever preempted for memory.

/// The free list and the reservation ledger.
#[derive(Debug)]
pub struct BlockPool {
    free: Vec<u32>,
    total: usize,
    reserved: usize,
}

impl BlockPool {
    pub fn new(total: usize) -> BlockPool {
        // Hand out low ids first: the backend maps pages lazily, so a small
        // job touches little memory.
        BlockPool {
            free: (0..total as u32).rev().collect(),
            total,
            reserved: 0,
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Blocks not yet handed out.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Promises `n` blocks to a new sequence, if the budget allows.
    pub fn try_reserve(&mut self, n: usize) -> Option<SeqBlocks> {
        if self.reserved + n > self.total {
            return None;
        }
        self.reserved += n;
        Some(SeqBlocks {
            table: Vec::new(),
            reserved: n,
        })
    }

    /// Grows `seq` to cover `n_blocks` blocks, within its reservation.
    /// Returns false (and changes nothing) if that exceeds the reservation.
    pub fn grow(&mut self, seq: &mut SeqBlocks, n_blocks: usize) -> bool {
        if n_blocks > seq.reserved {
            return false;
        }
        while seq.table.len() < n_blocks {
            // Cannot fail: reservations never exceed the pool, and every
            // taken block is counted in some reservation.
            let Some(b) = self.free.pop() else {
                return false;
            };
            seq.table.push(b);
        }
        true
    }

    /// Returns a finished sequence's blocks and reservation.
    pub fn release(&mut self, seq: SeqBlocks) {
        self.reserved -= seq.reserved;
        self.free.extend(seq.table.into_iter().rev());
    }
}

/// The blocks one sequence holds, in position order.
#[derive(Debug, PartialEq, Eq)]
pub struct SeqBlocks {
    pub table: Vec<u32>,
    reserved: usize,
}

impl SeqBlocks {
    pub fn reserved(&self) -> usize {
        self.reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_pool() {
        let mut pool = BlockPool::new(10);
        let mut a = pool.try_reserve(6).unwrap();
        assert!(pool.try_reserve(5).is_none());
        let mut b = pool.try_reserve(4).unwrap();
        assert!(pool.try_reserve(1).is_none());
        assert!(pool.grow(&mut a, 6));
        assert!(pool.grow(&mut b, 4));
        assert_eq!(pool.free_count(), 0);
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
        assert_eq!(pool.reserved(), 4);
        assert_eq!(pool.free_count(), 6);
        let c = pool.try_reserve(6).unwrap();
        assert_eq!(c.reserved(), 6);
    }

    #[test]
    fn lazy_growth_takes_low_ids_first() {
        let mut pool = BlockPool::new(4);
        let mut s = pool.try_reserve(3).unwrap();
        assert!(pool.grow(&mut s, 1));
        assert_eq!(s.table, vec![0]);
        assert!(pool.grow(&mut s, 3));
        assert_eq!(s.table, vec![0, 1, 2]);
        pool.release(s);
        assert_eq!(pool.reserved(), 0);
        assert_eq!(pool.free_count(), 4);
    }
}
