//! Rolling a DeepSeek-V4 sequence back into its latest chunk (what the
//! engine does after a partially accepted verify) changes no logit: feed a
//! prompt, a chunk whose tail is wrong, cut back to the end of its true part,
//! feed the true continuation, and every logit equals, bit for bit, the run
//! that never took the detour. On the tiny checkpoint (window 32, ratios 4
//! and 16) and on `dsv4-tok` (window 128, ratios 4 and 128), with chunks that
//! open and close compressor windows and wrap the ring; and through the
//! executor, which cuts back when a chunk starts inside the latest one.

mod common;

use std::path::Path;

use specbatch::backend::cpu::dsv4::CpuDsv4Executor;
use specbatch::backend::executor::{Executor, ForwardBatch, SeqChunk};
use specbatch::model::dsv4::forward::{Chunk, Dsv4Model};
use specbatch::model::dsv4::precision::Precision;
use specbatch::model::dsv4::state::SeqState;
use specbatch::model::dsv4::weights::Dsv4Weights;

fn load(dir: &Path) -> Dsv4Model {
    let w = Dsv4Weights::load(dir)
        .unwrap_or_else(|e| panic!("{e} (dsv4-tok: run scripts/make_dsv4_checkpoints.sh tok)"));
    Dsv4Model::new(w, Precision::Official)
}

fn tiny() -> Dsv4Model {
    load(&common::root().join("tests/fixtures/dsv4/tiny"))
}

/// Logits of the last `logits_for` tokens of `tokens`, fed as one chunk.
fn feed(m: &Dsv4Model, state: &mut SeqState, tokens: &[u32], logits_for: usize) -> Vec<f32> {
    m.forward(&mut [Chunk {
        state,
        tokens,
        logits_for,
    }])
    .remove(0)
}

/// A fixed token sequence (LCG), ids ≥ 3.
fn ids(m: &Dsv4Model, n: usize) -> Vec<u32> {
    let vocab = m.config().vocab_size as u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (3 + (x >> 33) % (vocab - 3)) as u32
        })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// For each `(p, k)`: the prompt `ids[..p]`, then a chunk of `k` tokens at
/// `p` whose tokens from the cut on are wrong, cut back to every length in
/// `p..=p + k`, then the true tokens up to `p + k + more`, one chunk.
fn assert_detours_change_nothing(m: &Dsv4Model, cases: &[(usize, usize)], more: usize) {
    let end = cases.iter().map(|(p, k)| p + k + more).max().unwrap();
    let ids = ids(m, end);
    let vocab = m.config().vocab_size;
    let straight = feed(m, &mut m.new_state(), &ids, end);
    let row = |pos: usize| &straight[pos * vocab..(pos + 1) * vocab];
    let rows = |a: usize, b: usize| &straight[a * vocab..b * vocab];
    for &(p, k) in cases {
        let mut prompt = m.new_state();
        feed(m, &mut prompt, &ids[..p], 0);
        for cut in p..=p + k {
            let what = format!("chunk {p}..{} cut at {cut}", p + k);
            let mut st = prompt.clone();
            let detour: Vec<u32> = (p..p + k)
                .map(|i| if i < cut { ids[i] } else { ids[i] ^ 1 })
                .collect();
            let verify = feed(m, &mut st, &detour, k);
            assert!(
                same_bits(&verify[..(cut - p) * vocab], rows(p, cut)),
                "{what}"
            );
            if cut < p + k {
                assert!(!same_bits(&verify[(cut - p) * vocab..], rows(cut, p + k)));
            }
            st.rollback(&m.weights, cut).unwrap();
            let rest = &ids[cut..p + k + more];
            let got = feed(m, &mut st, rest, rest.len());
            assert!(same_bits(&got, rows(cut, p + k + more)), "{what}");
        }
        // Token by token after a cut, as the engine decodes.
        let mut st = prompt.clone();
        let detour: Vec<u32> = ids[p..p + k].iter().map(|t| t ^ 1).collect();
        feed(m, &mut st, &detour, k);
        st.rollback(&m.weights, p).unwrap();
        for pos in p..p + k + more {
            let got = feed(m, &mut st, &ids[pos..pos + 1], 1);
            assert!(
                same_bits(&got, row(pos)),
                "chunk {p}..{} token {pos}",
                p + k
            );
        }
    }
}

#[test]
fn tiny_detours_through_ratio_4_and_16_windows_and_the_ring_change_nothing() {
    // A first chunk; the widest verify (17) closing ratio-4 and ratio-16
    // windows inside; a chunk past the window of 32 (ring wrap) that closes
    // both kinds of window in its middle.
    assert_detours_change_nothing(&tiny(), &[(1, 5), (13, 17), (42, 9)], 20);
}

#[test]
fn dsv4_tok_detours_through_the_ratio_128_window_and_the_ring_change_nothing() {
    let m = load(&common::model_dir().join("dsv4-tok"));
    assert_eq!(m.config().window, 128);
    assert!(m.config().compress_ratios.contains(&128));
    // Positions 123..131 close the first ratio-128 window (at 127) and wrap
    // the ring of 128.
    assert_detours_change_nothing(&m, &[(123, 8)], 6);
}

#[test]
fn the_executor_cuts_back_into_the_latest_chunk_only() {
    let m = tiny();
    let ids = ids(&m, 40);
    let vocab = m.config().vocab_size;
    let straight = feed(&m, &mut m.new_state(), &ids, ids.len());
    let mut exec = CpuDsv4Executor::new(m, 64 << 20, 16, 2);
    let chunk = |start: usize, tokens: Vec<u32>, logits_for: usize| ForwardBatch {
        seqs: vec![SeqChunk {
            seq_id: 7,
            tokens,
            start_pos: start,
            block_table: Vec::new(),
            logits_for,
        }],
    };
    exec.forward(&chunk(0, ids[..20].to_vec(), 1)).unwrap();
    // A verify of 5 of which 2 stand, then the next chunk at 22.
    let wrong: Vec<u32> = ids[20..25].iter().map(|t| t ^ 1).collect();
    let verify = [&ids[20..22], &wrong[2..]].concat();
    exec.forward(&chunk(20, verify, 5)).unwrap();
    let got = exec.forward(&chunk(22, ids[22..26].to_vec(), 4)).unwrap();
    assert!(same_bits(&got[0], &straight[22 * vocab..26 * vocab]));
    for (start, len) in [(21, 26), (27, 26)] {
        let e = exec
            .forward(&chunk(start, vec![ids[start]], 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "chunk starts at {start} but the sequence holds {len} tokens and can be cut back only to 22"
            )),
            "{e}"
        );
    }
    // A prefill chunk keeps no record: only its end is a valid start.
    exec.forward(&chunk(22, ids[22..30].to_vec(), 1)).unwrap();
    let e = exec
        .forward(&chunk(29, vec![ids[29]], 1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("starts at 29 but the sequence holds 30 tokens"),
        "{e}"
    );
    let got = exec.forward(&chunk(30, ids[30..31].to_vec(), 1)).unwrap();
    assert!(same_bits(&got[0], &straight[30 * vocab..31 * vocab]));
}
