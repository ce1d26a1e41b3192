//! Measures SPS(B), forward steps per second by tokens in the batch, on the
//! backend the engine will run, and caches the table per model and machine.
//! A draft model's table and its target's are measured together
//! ([`for_target_and_draft`]): the gate that decides whether drafting pays
//! compares the two, so they must see the same machine.
//!
//! The probe batch is B decode rows of one token each at position
//! [`PROBE_POSITION`], all reading the same KV blocks. It runs before the
//! engine admits any row, so the blocks it writes hold nothing yet; rows
//! overwrite them before they read them. The contents do not matter for
//! timing, only the shape of the work does. A backend whose sequences keep
//! state outside the blocks (DeepSeek-V4) cannot start one mid-way, so its
//! rows decode at position 0 (see [`probe_position`]).

use std::path::PathBuf;
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

/// One model to profile: its backend, the device that backend runs on,
/// the largest batch to measure and the checkpoint's SHA-256.
pub struct ProbeModel<'a, E: Executor + ?Sized> {
    pub exec: &'a mut E,
    pub device: &'a Device,
    pub max_tokens: usize,
    pub model_sha256: &'a str,
}

impl<E: Executor + ?Sized> ProbeModel<'_, E> {
    /// Where this model's table is cached and the key it is stored under,
    /// in `$XDG_CACHE_HOME/specbatch` (else `~/.cache/specbatch`, else the
    /// temp dir). The key names everything the rates depend on: build
    /// (version and executable), model, the device (a GPU engine's rates
    /// are not the CPU's), CPU, threads, block size, probe and range.
    fn cache_entry(&self, block_size: usize) -> (PathBuf, String) {
        let position = probe_position(&*self.exec, block_size);
        let key = format!(
            "specbatch {} | model sha256 {} | device {} | cpu {} | threads {} | block {block_size} | probe position {position} | up to {} tokens",
            build_id(),
            self.model_sha256,
            self.device,
            cpu_name(),
            rayon::current_num_threads(),
            self.max_tokens,
        );
        // The key itself is stored in the file and compared in full; its
        // hash only names the file.
        let digest: String = Sha256::digest(key.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = crate::cache::cache_dir().join(format!("sps-{digest}.json"));
        (path, key)
    }
}

/// The table for one model on this machine, from the cache or measured
/// and stored there.
pub fn for_model<E: Executor + ?Sized>(
    model: ProbeModel<'_, E>,
    block_size: usize,
) -> Result<SpsTable, ProfileError> {
    let entry = model.cache_entry(block_size);
    if let Some(table) = cached(&entry) {
        return Ok(table);
    }
    announce(&[&entry]);
    let table = measure(model.exec, block_size, model.max_tokens)?;
    store(&table, &entry);
    Ok(table)
}

/// The tables of a target and its draft model, from the cache when both
/// are there, else both measured together (in alternating rounds, so that
/// their ratio is not skewed by the machine's load moving between two
/// separate probes) and both stored.
pub fn for_target_and_draft<T: Executor + ?Sized, D: Executor + ?Sized>(
    target: ProbeModel<'_, T>,
    draft: ProbeModel<'_, D>,
    block_size: usize,
) -> Result<(SpsTable, SpsTable), ProfileError> {
    let entries = [
        target.cache_entry(block_size),
        draft.cache_entry(block_size),
    ];
    if let (Some(t), Some(d)) = (cached(&entries[0]), cached(&entries[1])) {
        return Ok((t, d));
    }
    announce(&[&entries[0], &entries[1]]);
    let mut t = Probe::new(target.exec, block_size);
    let mut d = Probe::new(draft.exec, block_size);
    let sizes = [
        probe_sizes(target.max_tokens),
        probe_sizes(draft.max_tokens),
    ];
    let tables = SpsTable::profile_together(&[&sizes[0], &sizes[1]], |which, rows| {
        if which == 0 {
            t.time(rows)
        } else {
            d.time(rows)
        }
    });
    t.finish()?;
    d.finish()?;
    let [target_table, draft_table]: [SpsTable; 2] =
        tables?.try_into().expect("one table per model");
    store(&target_table, &entries[0]);
    store(&draft_table, &entries[1]);
    Ok((target_table, draft_table))
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

/// The table cached at `entry` (path, key), if any. A cache that cannot be
/// read is reported on stderr and ignored: it only saves time.
fn cached((path, key): &(PathBuf, String)) -> Option<SpsTable> {
    SpsTable::load(path, key).unwrap_or_else(|e| {
        eprintln!("warning: ignoring the step-rate cache: {e}");
        None
    })
}

/// Says on stderr that a probe is starting (it takes seconds) and where
/// its tables will be cached.
fn announce(entries: &[&(PathBuf, String)]) {
    let paths: Vec<String> = entries.iter().map(|e| e.0.display().to_string()).collect();
    eprintln!(
        "measuring the step rate for speculation (cached in {})",
        paths.join(", ")
    );
}

/// Stores `table` at `entry`; a cache that cannot be written is reported
/// on stderr.
fn store(table: &SpsTable, (path, key): &(PathBuf, String)) {
    if let Err(e) = table.save(path, key) {
        eprintln!("warning: could not cache the step rate: {e}");
    }
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
    let mut probe = Probe::new(exec, block_size);
    let table = SpsTable::profile(&probe_sizes(max_tokens), |rows| probe.time(rows));
    probe.finish()?;
    Ok(table?)
}

/// Times probe batches on one backend; the first backend failure is kept
/// for [`Probe::finish`] (timing goes on, its results are then discarded).
struct Probe<'a, E: Executor + ?Sized> {
    exec: &'a mut E,
    position: usize,
    table: Vec<u32>,
    failure: Option<BackendError>,
}

impl<'a, E: Executor + ?Sized> Probe<'a, E> {
    fn new(exec: &'a mut E, block_size: usize) -> Self {
        let position = probe_position(&*exec, block_size);
        let table = (0..blocks_for(position + 1, block_size) as u32).collect();
        Probe {
            exec,
            position,
            table,
            failure: None,
        }
    }

    /// One forward of `rows` decode rows, timed.
    fn time(&mut self, rows: usize) -> Duration {
        let batch = ForwardBatch {
            seqs: (0..rows)
                .map(|i| SeqChunk {
                    seq_id: u64::MAX - i as u64,
                    tokens: vec![0],
                    start_pos: self.position,
                    block_table: self.table.clone(),
                    logits_for: 1,
                })
                .collect(),
        };
        let t0 = Instant::now();
        if let Err(e) = self.exec.forward(&batch) {
            self.failure.get_or_insert(e);
        }
        let took = t0.elapsed();
        batch.seqs.iter().for_each(|s| self.exec.release(s.seq_id));
        took.max(Duration::from_nanos(1))
    }

    fn finish(self) -> Result<(), BackendError> {
        self.failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
    fn a_target_and_its_draft_are_measured_together_then_both_read_back() {
        use crate::backend::cpu::dsv4::CpuDsv4Executor;
        use crate::model::dsv4::forward::Dsv4Model;
        use crate::model::dsv4::precision::Precision;
        use crate::model::dsv4::weights::Dsv4Weights;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dsv4/tiny");
        let exec = || {
            let model = Dsv4Model::new(Dsv4Weights::load(&dir).unwrap(), Precision::Official);
            CpuDsv4Executor::new(model, 64 << 20, 16, 4)
        };
        let (mut target, mut draft) = (exec(), exec());
        // Hashes no other run uses, so the first call cannot hit a cache.
        let nonce = format!("{:?}", Instant::now());
        let (t_sha, d_sha) = (format!("target {nonce}"), format!("draft {nonce}"));
        let mut probes = || {
            let t = ProbeModel {
                exec: &mut target,
                device: &Device::Cpu,
                max_tokens: 3,
                model_sha256: &t_sha,
            };
            let d = ProbeModel {
                exec: &mut draft,
                device: &Device::Cpu,
                max_tokens: 2,
                model_sha256: &d_sha,
            };
            let entries = [t.cache_entry(16), d.cache_entry(16)];
            (for_target_and_draft(t, d, 16).unwrap(), entries)
        };
        let ((t, d), entries) = probes();
        let sizes = |table: &SpsTable| table.points().iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(sizes(&t), vec![1, 2, 3]);
        assert_eq!(sizes(&d), vec![1, 2]);
        // Timings never repeat to the nanosecond: equal tables were read
        // back, bit for bit (serde_json's `float_roundtrip`).
        let (again, _) = probes();
        assert_eq!(again, (t, d));
        for (path, _) in entries {
            std::fs::remove_file(path).unwrap();
        }
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
