//! Measures SPS(B), forward steps per second by tokens in the batch, on the
//! backend the engine will run, and caches the table per model and machine.
//!
//! The probe batch is B decode rows of one token each at position
//! [`PROBE_POSITION`], all reading the same KV blocks. It runs before the
//! engine admits any row, so the blocks it writes hold nothing yet; rows
//! overwrite them before they read them. The contents do not matter for
//! timing, only the shape of the work does. A backend whose sequences keep
//! state outside the blocks (DeepSeek-V4) cannot start one mid-way, so its
//! rows decode at position 0 (see [`probe_position`]).

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::backend::device::Device;
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

/// The most tokens a step of speculating decode rows can hold: every row's
/// anchor and `max_draft` drafts, within `max_batch_tokens`.
pub fn probe_limit(max_batch_tokens: usize, max_running: usize, max_draft: usize) -> usize {
    max_batch_tokens.min(max_running * (1 + max_draft))
}

/// The table for this model on this machine, from the cache in
/// `$XDG_CACHE_HOME/specbatch` (else `~/.cache/specbatch`, else the temp
/// dir), or measured and stored there. The key names everything the rates
/// depend on: build (version and executable), model, the device `exec`
/// runs on (a GPU engine's rates are not the CPU's), CPU, threads, block
/// size, probe and range.
pub fn for_model<E: Executor + ?Sized>(
    exec: &mut E,
    device: &Device,
    block_size: usize,
    max_tokens: usize,
    model_sha256: &str,
) -> Result<SpsTable, ProfileError> {
    let position = probe_position(exec, block_size);
    let key = format!(
        "specbatch {} | model sha256 {model_sha256} | device {device} | cpu {} | threads {} | block {block_size} | probe position {position} | up to {max_tokens} tokens",
        build_id(),
        cpu_name(),
        rayon::current_num_threads(),
    );
    // The key itself is stored in the file and compared in full; its hash
    // only names the file.
    let digest: String = Sha256::digest(key.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cache = crate::cache::cache_dir().join(format!("sps-{digest}.json"));
    cached_or_measured(exec, block_size, max_tokens, &cache, &key)
}

/// The crate version and the running executable's size and modification
/// time: a rebuild with faster or slower kernels keeps the version but
/// changes the rates, so it must not reuse a table measured before it.
fn build_id() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{} bytes, modified {modified}", m.len())
        })
        .unwrap_or_else(|_| "unknown executable".to_string());
    format!("{} ({exe})", env!("CARGO_PKG_VERSION"))
}

/// The CPU model as /proc/cpuinfo names it (Linux), else "unknown".
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Loads the table cached under `key` at `cache`, or measures it and
/// stores it there. A cache that cannot be read or written is reported on
/// stderr and the table measured afresh: it only saves time.
fn cached_or_measured<E: Executor + ?Sized>(
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

/// Where the probe rows decode: [`PROBE_POSITION`] when a sequence's state
/// is all in its KV blocks (the backend shares prefix blocks) and the
/// blocks fit, else 0.
pub fn probe_position<E: Executor + ?Sized>(exec: &E, block_size: usize) -> usize {
    let fits = blocks_for(PROBE_POSITION + 1, block_size) <= exec.kv_blocks();
    if exec.shares_prefix_blocks() && fits {
        PROBE_POSITION
    } else {
        0
    }
}

/// Times probe batches of every [`probe_sizes`] size.
pub fn measure<E: Executor + ?Sized>(
    exec: &mut E,
    block_size: usize,
    max_tokens: usize,
) -> Result<SpsTable, ProfileError> {
    let position = probe_position(exec, block_size);
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
    fn a_backend_that_cannot_start_mid_sequence_is_probed_from_position_0() {
        use crate::backend::cpu::dsv4::CpuDsv4Executor;
        use crate::model::dsv4::forward::Dsv4Model;
        use crate::model::dsv4::precision::Precision;
        use crate::model::dsv4::weights::Dsv4Weights;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dsv4/tiny");
        let model = Dsv4Model::new(Dsv4Weights::load(&dir).unwrap(), Precision::Official);
        let mut exec = CpuDsv4Executor::new(model, 64 << 20, 16, 4);
        assert!(blocks_for(PROBE_POSITION + 1, 16) <= exec.kv_blocks());
        assert_eq!(probe_position(&exec, 16), 0);
        let table = measure(&mut exec, 16, 4).unwrap();
        assert!(table.steps_per_second(4) > 0.0);
        assert_eq!(exec.state_bytes(), 0, "the probe rows are released");
    }

    #[test]
    fn probe_sizes_cover_the_range_once_each() {
        assert_eq!(probe_sizes(1), vec![1]);
        assert_eq!(probe_sizes(20), vec![1, 2, 3, 4, 6, 9, 13, 19, 20]);
        let s = probe_sizes(384);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*s.last().unwrap(), 384);
    }
}
