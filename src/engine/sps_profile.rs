//! Measures SPS(B), forward steps per second by tokens in the batch, on the
//! backend the engine will run, and caches the table per model and machine.
//!
//! The probe batch is B decode rows of one token each at position
//! [`PROBE_POSITION`], all reading the same KV blocks. It runs before the
//! engine admits any row, so the blocks it writes hold nothing yet; rows
//! overwrite them before they read them. The contents do not matter for
//! timing, only the shape of the work does.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::executor::{BackendError, Executor, ForwardBatch, SeqChunk};
use crate::kv::blocks_for;
use crate::spec::{SpsError, SpsTable};

/// Context each probe row attends over: typical of a short decode, and the
/// probe needs only a few KV blocks.
pub const PROBE_POSITION: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profiling the step rate: {0}")]
    Backend(#[from] BackendError),
    #[error("profiling the step rate: {0}")]
    Table(#[from] SpsError),
}

/// Batch sizes to measure, up to `max_tokens`: dense where SPS bends
/// (small batches), then ×1.5 steps.
pub fn probe_sizes(max_tokens: usize) -> Vec<usize> {
    let mut sizes = vec![];
    let mut b = 1usize;
    while b < max_tokens {
        sizes.push(b);
        b = if b < 4 { b + 1 } else { b + b / 2 };
    }
    sizes.push(max_tokens.max(1));
    sizes
}

/// Loads the table cached under `key` at `cache`, or measures it and
/// stores it there. A cache that cannot be read or written is reported on
/// stderr and the table measured afresh: it only saves time.
pub fn cached_or_measured<E: Executor + ?Sized>(
    exec: &mut E,
    block_size: usize,
    max_tokens: usize,
    cache: &Path,
    key: &str,
) -> Result<SpsTable, ProfileError> {
    match SpsTable::load(cache, key) {
        Ok(Some(table)) => return Ok(table),
        Ok(None) => {}
        Err(e) => eprintln!("warning: ignoring the step-rate cache: {e}"),
    }
    eprintln!(
        "measuring the step rate for speculation (cached in {})",
        cache.display()
    );
    let table = measure(exec, block_size, max_tokens)?;
    if let Err(e) = table.save(cache, key) {
        eprintln!("warning: could not cache the step rate: {e}");
    }
    Ok(table)
}

/// Times probe batches of every [`probe_sizes`] size.
pub fn measure<E: Executor + ?Sized>(
    exec: &mut E,
    block_size: usize,
    max_tokens: usize,
) -> Result<SpsTable, ProfileError> {
    let position = if blocks_for(PROBE_POSITION + 1, block_size) <= exec.kv_blocks() {
        PROBE_POSITION
    } else {
        0
    };
    let table: Vec<u32> = (0..blocks_for(position + 1, block_size) as u32).collect();
    let mut failure = None;
    let sps = SpsTable::profile(&probe_sizes(max_tokens), |rows| {
        let batch = ForwardBatch {
            seqs: (0..rows)
                .map(|i| SeqChunk {
                    seq_id: u64::MAX - i as u64,
                    tokens: vec![0],
                    start_pos: position,
                    block_table: table.clone(),
                    logits_for: 1,
                })
                .collect(),
        };
        let t0 = Instant::now();
        if let Err(e) = exec.forward(&batch) {
            failure.get_or_insert(e);
        }
        let took = t0.elapsed();
        batch.seqs.iter().for_each(|s| exec.release(s.seq_id));
        took.max(Duration::from_nanos(1))
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(sps?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sizes_cover_the_range_once_each() {
        assert_eq!(probe_sizes(1), vec![1]);
        assert_eq!(probe_sizes(20), vec![1, 2, 3, 4, 6, 9, 13, 19, 20]);
        let s = probe_sizes(384);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*s.last().unwrap(), 384);
    }
}
