//! The DSpark draft module on the tiny checkpoint with one
//! (`tests/fixtures/dsv4/tiny-dspark`, `make_checkpoint.py --dspark`):
//! parity of the exact-precision capture and drafts with the independent
//! numpy reference (`tests/fixtures/dsv4/dspark-golden`, written by
//! `tools/dsv4/dspark_reference.py`), and the invariants the engine relies
//! on in both precisions: chunking, batching and capture change nothing,
//! bad inputs are typed errors that change nothing.

mod common;

use common::{dsv4_model, f32_file, worst_relative};
use specbatch::model::dsv4::dspark::Drafter;
use specbatch::model::dsv4::dspark::absorb::Absorb;
use specbatch::model::dsv4::dspark::draft::{Draft, DraftRow};
use specbatch::model::dsv4::dspark::error::DsparkError;
use specbatch::model::dsv4::dspark::state::DraftState;
use specbatch::model::dsv4::forward::{Chunk, Dsv4Model};
use specbatch::model::dsv4::precision::Precision;
use specbatch::model::dsv4::state::SeqState;

const CHECKPOINT: &str = "tests/fixtures/dsv4/tiny-dspark";
const GOLDEN: &str = "tests/fixtures/dsv4/dspark-golden";

struct Round {
    anchor: u32,
    position: usize,
    tokens: Vec<u32>,
    confidence: Vec<f32>,
    logits: Vec<f32>,
}

struct Golden {
    prompt: Vec<u32>,
    context: usize,
    verify: usize,
    kept: usize,
    width: usize,
    /// `main_hidden` of positions `0..context + kept`.
    hidden: Vec<f32>,
    rounds: Vec<Round>,
}

fn golden() -> Golden {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{GOLDEN}/golden.json")).unwrap()).unwrap();
    let num = |k: &str| meta[k].as_u64().unwrap() as usize;
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect()
    };
    let vocab = num("vocab_size");
    let logits = f32_file(&format!("{GOLDEN}/logits.bin"));
    let rounds = meta["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let tokens = ids(&r["tokens"]);
            let n = tokens.len() * vocab;
            Round {
                anchor: r["anchor"].as_u64().unwrap() as u32,
                position: r["position"].as_u64().unwrap() as usize,
                confidence: r["confidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect(),
                logits: logits[i * n..(i + 1) * n].to_vec(),
                tokens,
            }
        })
        .collect();
    Golden {
        prompt: ids(&meta["prompt"]),
        context: num("context"),
        verify: num("verify"),
        kept: num("kept"),
        width: meta["hidden"]["width"].as_u64().unwrap() as usize,
        hidden: f32_file(&format!("{GOLDEN}/hidden.bin")),
        rounds,
    }
}

/// Feeds `tokens` to the target as one chunk, capturing the last `rows`
/// positions' `main_hidden`.
fn capture(
    m: &Dsv4Model,
    d: &Drafter<'_>,
    state: &mut SeqState,
    tokens: &[u32],
    rows: usize,
) -> specbatch::model::dsv4::dspark::capture::Captured {
    let mut chunks = [Chunk {
        state,
        tokens,
        logits_for: 1,
    }];
    m.forward_capture(&mut chunks, d.target_layers(), &[rows])
        .1
        .remove(0)
}

fn absorb(
    d: &Drafter<'_>,
    state: &mut DraftState,
    pos0: usize,
    hidden: &[f32],
) -> Result<(), DsparkError> {
    d.absorb(&mut [Absorb {
        state,
        pos0,
        hidden,
    }])
}

/// One draft whose sampler returns `script` in order.
fn draft_scripted(
    d: &Drafter<'_>,
    state: &DraftState,
    anchor: u32,
    script: &[u32],
) -> Result<Draft, DsparkError> {
    let mut calls = 0;
    let mut sample = |i: usize, _: &[f32]| {
        assert_eq!(i, calls, "positions are sampled in order");
        calls += 1;
        script[i]
    };
    let mut rows = [DraftRow {
        state,
        anchor,
        sample: &mut sample,
    }];
    Ok(d.draft(&mut rows)?.remove(0))
}

/// The two rounds of the reference scenario; returns the draft states
/// after each absorb and the drafts.
fn scenario(m: &Dsv4Model, g: &Golden) -> (Vec<DraftState>, Vec<Draft>, Vec<f32>) {
    let d = m.drafter().expect("tiny-dspark has a drafter");
    let mut target = m.new_state();
    let mut state = d.new_state();
    let (ctx, window) = (g.context, d.context_window());
    // Prefill: only the last window of rows can matter.
    let pre = capture(m, &d, &mut target, &g.prompt[..ctx], window);
    assert_eq!((pre.pos0, pre.rows()), (ctx - window, window));
    absorb(&d, &mut state, pre.pos0, &pre.hidden).unwrap();
    let mut states = vec![state.clone()];
    let r1 = &g.rounds[0];
    let first = draft_scripted(&d, &state, r1.anchor, &r1.tokens).unwrap();
    // Verify [anchor, d1, d2, d3]; the anchor and two drafts are kept.
    let verify = &g.prompt[ctx..ctx + g.verify];
    let ver = capture(m, &d, &mut target, verify, g.verify);
    assert_eq!(ver.pos0, ctx);
    absorb(&d, &mut state, ctx, ver.first(g.kept)).unwrap();
    states.push(state.clone());
    let r2 = &g.rounds[1];
    let second = draft_scripted(&d, &state, r2.anchor, &r2.tokens).unwrap();
    let mut hidden = pre.hidden;
    hidden.extend_from_slice(ver.first(g.kept));
    (states, vec![first, second], hidden)
}

#[test]
fn exact_capture_and_drafts_match_the_numpy_reference() {
    let g = golden();
    let m = dsv4_model(CHECKPOINT, Precision::Exact);
    let (states, drafts, hidden) = scenario(&m, &g);
    let window = m.config().window;
    let want = &g.hidden[(g.context - window) * g.width..];
    let err = worst_relative(&hidden, want, g.width);
    eprintln!("main_hidden: worst relative error {err:e}");
    assert!(err < 2e-5, "main_hidden: worst relative error {err:e}");
    let vocab = m.config().vocab_size;
    for ((r, dr), st) in g.rounds.iter().zip(&drafts).zip(&states) {
        assert_eq!(st.len(), r.position);
        assert_eq!(dr.tokens, r.tokens);
        // f32 here, float64 there; measured ~1e-6.
        let err = worst_relative(&dr.logits, &r.logits, vocab);
        eprintln!(
            "round at {}: logits worst relative error {err:e}",
            r.position
        );
        assert!(err < 2e-5, "round at {}: logits {err:e}", r.position);
        for (a, b) in dr.confidence.iter().zip(&r.confidence) {
            assert!(
                (a - b).abs() <= 2e-5 * b.abs().max(1.0),
                "round at {}: confidence {a} vs {b}",
                r.position
            );
        }
    }
}

#[test]
fn chunked_capture_and_absorb_fill_the_same_ring() {
    let g = golden();
    for p in [Precision::Exact, Precision::Official] {
        let m = dsv4_model(CHECKPOINT, p);
        let d = m.drafter().unwrap();
        let (states, _, _) = scenario(&m, &g);
        // Every row captured, in chunks of 17 and 23, absorbed one by one.
        let mut target = m.new_state();
        let mut state = d.new_state();
        for part in g.prompt[..g.context].chunks(17) {
            let cap = capture(&m, &d, &mut target, part, part.len());
            absorb(&d, &mut state, cap.pos0, &cap.hidden).unwrap();
        }
        assert_eq!(state, states[0], "{p:?}");
    }
}

#[test]
fn capture_leaves_the_logits_unchanged() {
    let g = golden();
    let m = dsv4_model(CHECKPOINT, Precision::Official);
    let d = m.drafter().unwrap();
    let ids = &g.prompt[..g.context];
    let mut plain_state = m.new_state();
    let plain = m.forward(&mut [Chunk {
        state: &mut plain_state,
        tokens: ids,
        logits_for: ids.len(),
    }]);
    let mut cap_state = m.new_state();
    let (captured, _) = m.forward_capture(
        &mut [Chunk {
            state: &mut cap_state,
            tokens: ids,
            logits_for: ids.len(),
        }],
        d.target_layers(),
        &[5],
    );
    assert_eq!(plain, captured);
}

#[test]
fn batched_drafts_equal_drafts_alone() {
    let g = golden();
    let m = dsv4_model(CHECKPOINT, Precision::Official);
    let d = m.drafter().unwrap();
    let (states, alone, _) = scenario(&m, &g);
    let scripts: Vec<&[u32]> = g.rounds.iter().map(|r| &r.tokens[..]).collect();
    let mut s0 = |i: usize, _: &[f32]| scripts[0][i];
    let mut s1 = |i: usize, _: &[f32]| scripts[1][i];
    let mut rows = [
        DraftRow {
            state: &states[0],
            anchor: g.rounds[0].anchor,
            sample: &mut s0,
        },
        DraftRow {
            state: &states[1],
            anchor: g.rounds[1].anchor,
            sample: &mut s1,
        },
    ];
    assert_eq!(d.draft(&mut rows).unwrap(), alone);
}

#[test]
fn official_drafts_stay_close_to_exact() {
    // The simulation points perturb the same module; a broken one (a scale
    // applied twice, a missing de-quantization) would not stay this close.
    let g = golden();
    let (_, exact, _) = scenario(&dsv4_model(CHECKPOINT, Precision::Exact), &g);
    let (_, official, _) = scenario(&dsv4_model(CHECKPOINT, Precision::Official), &g);
    let l2 = |v: &mut dyn Iterator<Item = f32>| v.map(|x| x * x).sum::<f32>().sqrt();
    for (e, o) in exact.iter().zip(&official) {
        assert_ne!(e.logits, o.logits, "the simulation points changed nothing");
        let rel = l2(&mut e.logits.iter().zip(&o.logits).map(|(a, b)| a - b))
            / l2(&mut e.logits.iter().copied());
        eprintln!("official vs exact draft logits: relative L2 {rel:e}");
        assert!(rel < 0.35, "relative L2 {rel}");
    }
}

#[test]
fn the_drafter_has_a_fixed_state_size_and_reads_the_config() {
    let m = dsv4_model(CHECKPOINT, Precision::Exact);
    let d = m.drafter().unwrap();
    assert_eq!(m.weights.dspark_stages(), 3);
    assert_eq!(d.target_layers(), [2, 3, 4]);
    assert_eq!((d.config().block_size, d.config().markov_rank), (5, 16));
    let c = m.config();
    assert_eq!(d.state_bytes(), 3 * c.window * c.head_dim * 4);
    assert_eq!(d.new_state().bytes(), d.state_bytes());
}

#[test]
fn a_checkpoint_without_a_draft_module_has_no_drafter() {
    let m = dsv4_model("tests/fixtures/dsv4/tiny", Precision::Exact);
    assert_eq!(m.weights.dspark_stages(), 0);
    assert!(m.drafter().is_none());
}

#[test]
fn bad_inputs_are_typed_errors_that_change_nothing() {
    let g = golden();
    let m = dsv4_model(CHECKPOINT, Precision::Exact);
    let d = m.drafter().unwrap();
    let (states, _, hidden) = scenario(&m, &g);
    let vocab = m.config().vocab_size as u32;
    let script = &g.rounds[1].tokens;
    let st = &states[1];
    assert!(matches!(
        draft_scripted(&d, st, vocab, script),
        Err(DsparkError::Token { token, .. }) if token == vocab
    ));
    let mut bad = script.clone();
    bad[2] = vocab + 7;
    assert!(matches!(
        draft_scripted(&d, st, g.rounds[1].anchor, &bad),
        Err(DsparkError::Token { .. })
    ));

    let width = g.width;
    let row = &hidden[..width];
    let mut state = st.clone();
    let mut try_absorb = |pos0: usize, hidden: &[f32]| absorb(&d, &mut state, pos0, hidden);
    let len = st.len();
    // A gap smaller than a window, a position already absorbed, half a row.
    assert!(matches!(
        try_absorb(len + 1, row),
        Err(DsparkError::Gap { .. })
    ));
    assert!(matches!(
        try_absorb(len - 1, row),
        Err(DsparkError::Gap { .. })
    ));
    assert!(matches!(
        try_absorb(len, &row[..width / 2]),
        Err(DsparkError::HiddenWidth { .. })
    ));
    assert_eq!(&state, st);
}
