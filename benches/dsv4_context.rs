//! DeepSeek-V4 at long context on this machine: prefill and decode time and
//! exact KV state bytes at each context length, for the `scale` checkpoint
//! (`scripts/make_dsv4_checkpoints.sh scale`), official numerics.
//!
//! Usage: cargo bench --bench dsv4_context -- [CHECKPOINT] [CONTEXT ...]
//! (defaults: models/dsv4-scale 8192 131072 1048576).
//!
//! Prints one CSV row per context plus the ratios against the first context:
//! compressed attention should keep the per-token cost close to flat (the
//! sliding and HCA parts are linear in context per token only through
//! len/128 rows; the CSA indexer scans len/4 keys per query).

use std::path::Path;
use std::time::Instant;

use specbatch::model::dsv4::forward::{Chunk, Dsv4Model};
use specbatch::model::dsv4::precision::Precision;
use specbatch::model::dsv4::state::KvFootprint;
use specbatch::model::dsv4::weights::Dsv4Weights;

const CHUNK: usize = 4096;
const DECODE: usize = 16;
/// Tokens between progress lines on stderr.
const PROGRESS_EVERY: usize = 65_536;

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (ckpt, rest) = match args.first() {
        Some(a) if a.parse::<usize>().is_err() => (a.clone(), &args[1..]),
        _ => ("models/dsv4-scale".to_string(), &args[..]),
    };
    let mut contexts: Vec<usize> = rest.iter().filter_map(|a| a.parse().ok()).collect();
    if contexts.is_empty() {
        contexts = vec![8192, 131_072, 1_048_576];
    }
    let w = Dsv4Weights::load(Path::new(&ckpt)).unwrap_or_else(|e| {
        eprintln!("error: {e} (run scripts/make_dsv4_checkpoints.sh scale)");
        std::process::exit(2);
    });
    let model = Dsv4Model::new(w, Precision::Official);
    let vocab = model.config().vocab_size as u64;
    let fp = KvFootprint::new(model.config());
    println!(
        "# checkpoint {ckpt}; KV bytes/token by kind: {:?}; fixed per sequence {} B",
        fp.per_token_by_kind(),
        fp.fixed
    );
    println!(
        "context,prefill_s,prefill_us_per_token,decode_ms_per_token,kv_bytes,kv_bytes_per_token,peak_rss_mb"
    );
    let mut first: Option<(f64, f64)> = None;
    for &n in &contexts {
        let mut state = model.new_state();
        // A fixed pseudo-random prompt (LCG), ids ≥ 3 to skip BOS/EOS/pad.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (3 + (x >> 33) % (vocab - 3)) as u32
        };
        let prompt: Vec<u32> = (0..n).map(|_| next()).collect();
        let t0 = Instant::now();
        let mut last = Vec::new();
        let mut chunk_t0 = Instant::now();
        for (i, part) in prompt.chunks(CHUNK).enumerate() {
            let mut chunks = [Chunk {
                state: &mut state,
                tokens: part,
                logits_for: 1,
            }];
            last = model.forward(&mut chunks).remove(0);
            // Long runs report as they go: the marginal cost per token of the
            // latest stretch shows how cost grows with context.
            let done = (i + 1) * CHUNK;
            if done.is_multiple_of(PROGRESS_EVERY) && done < n {
                eprintln!(
                    "#   {done} tokens: {:.0} s, last chunk {:.0} µs/token, state {} B",
                    t0.elapsed().as_secs_f64(),
                    chunk_t0.elapsed().as_secs_f64() * 1e6 / part.len() as f64,
                    state.bytes()
                );
            }
            chunk_t0 = Instant::now();
        }
        let prefill = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for _ in 0..DECODE {
            let tok = (0..last.len())
                .max_by(|&a, &b| last[a].total_cmp(&last[b]))
                .unwrap_or(0) as u32;
            let mut chunks = [Chunk {
                state: &mut state,
                tokens: &[tok],
                logits_for: 1,
            }];
            last = model.forward(&mut chunks).remove(0);
        }
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3 / DECODE as f64;
        let bytes = state.bytes();
        assert_eq!(bytes, fp.bytes(n + DECODE), "accounting");
        let us = prefill * 1e6 / n as f64;
        println!(
            "{n},{prefill:.2},{us:.1},{decode_ms:.2},{bytes},{:.1},{:.0}",
            bytes as f64 / (n + DECODE) as f64,
            peak_rss_bytes().unwrap_or(0) as f64 / 1e6
        );
        let (us0, dec0) = *first.get_or_insert((us, decode_ms));
        println!(
            "# vs first context: prefill per token ×{:.2}, decode per token ×{:.2}, context ×{:.0}",
            us / us0,
            decode_ms / dec0,
            n as f64 / contexts[0] as f64
        );
    }
}
