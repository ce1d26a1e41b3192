//! Statistical proof that verification is lossless, and that the proof has
//! teeth.
//!
//! A toy target over 4 tokens gives a fixed distribution conditioned on the
//! previous token; a toy drafter does the same with other numbers (one row
//! has zeros, so the replacement must supply tokens the drafter never
//! proposes). From anchor 0 we generate 20 000 three-token continuations by
//! draft-and-verify rounds and compare the 64-cell joint histogram with the
//! exact target probabilities by Pearson's chi-square (63 degrees of
//! freedom). A correct rule must pass at significance 0.001; deliberately
//! broken rules must fail the same test. Seeds are fixed, so the outcome is
//! reproducible; a correct rule would fail for 0.1% of seeds.

use super::*;
use crate::engine::sampler::SamplingParams;

const VOCAB: usize = 4;
const TRIALS: usize = 20_000;
const ANCHOR: u32 = 0;
/// Chi-square quantile at 1 − 0.001 for 63 degrees of freedom (standard
/// tables give 103.442; the regularised incomplete gamma agrees to 1e-3).
const CRITICAL_63_DF: f64 = 103.442;

/// Target: row = previous token, column = next token.
const P: [[f64; VOCAB]; VOCAB] = [
    [0.4, 0.3, 0.2, 0.1],
    [0.1, 0.4, 0.3, 0.2],
    [0.2, 0.1, 0.4, 0.3],
    [0.3, 0.2, 0.1, 0.4],
];
/// Drafter: deliberately unlike the target.
const Q: [[f64; VOCAB]; VOCAB] = [
    [0.1, 0.2, 0.3, 0.4],
    [0.5, 0.5, 0.0, 0.0],
    [0.6, 0.2, 0.1, 0.1],
    [0.1, 0.1, 0.1, 0.7],
];

type Rule = fn(&[TokenDist], &Draft, &mut Sampler) -> Verdict;

fn row(table: &[[f64; VOCAB]; VOCAB], prev: u32) -> TokenDist {
    let w = table[prev as usize]
        .iter()
        .enumerate()
        .map(|(t, &p)| (t as u32, p))
        .collect();
    TokenDist::from_weights(w).expect("toy rows are distributions")
}

fn sampler(seed: u64) -> Sampler {
    Sampler::new(SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        seed,
    })
}

/// How a drafter proposes the next token after `prev`.
enum Drafter {
    /// Samples from Q with its own random stream.
    Sampled(Sampler),
    /// Always the most likely Q token: point-mass draft distributions.
    Deterministic,
}

impl Drafter {
    fn propose(&mut self, prev: u32) -> (u32, TokenDist) {
        let q = row(&Q, prev);
        match self {
            Drafter::Sampled(s) => (s.sample_from(&q), q),
            Drafter::Deterministic => {
                let t = q.entries()[0].0;
                (t, TokenDist::point(t))
            }
        }
    }
}

/// One continuation of three tokens by draft-and-verify rounds. The verify
/// length cycles 1, 2, 3 with the trial: it must not depend on the drafts.
fn continuation(trial: usize, rule: Rule, drafter: &mut Drafter, target: &mut Sampler) -> usize {
    let verify_len = 1 + trial % 3;
    let mut out = Vec::new();
    let mut anchor = ANCHOR;
    while out.len() < 3 {
        let mut draft = Draft::default();
        let mut targets = vec![row(&P, anchor)];
        let mut prev = anchor;
        for _ in 0..verify_len {
            let (t, q) = drafter.propose(prev);
            draft.push(t, 1.0, q);
            targets.push(row(&P, t));
            prev = t;
        }
        let v = rule(&targets, &draft, target);
        out.extend(v.tokens);
        anchor = out[out.len() - 1];
    }
    out[..3]
        .iter()
        .fold(0, |cell, &t| cell * VOCAB + t as usize)
}

fn plain(_: usize, target: &mut Sampler) -> usize {
    let mut prev = ANCHOR;
    let mut cell = 0;
    for _ in 0..3 {
        prev = target.sample_from(&row(&P, prev));
        cell = cell * VOCAB + prev as usize;
    }
    cell
}

/// Pearson's statistic of the observed cells against the exact target law.
fn chi_square(mut generate: impl FnMut(usize) -> usize) -> f64 {
    let mut observed = [0usize; VOCAB * VOCAB * VOCAB];
    for trial in 0..TRIALS {
        observed[generate(trial)] += 1;
    }
    let mut stat = 0.0;
    for (cell, &o) in observed.iter().enumerate() {
        let (a, b, c) = (cell / 16, cell / 4 % 4, cell % 4);
        let p = P[ANCHOR as usize][a] * P[a][b] * P[b][c];
        let e = TRIALS as f64 * p; // >= 20 for these tables
        stat += (o as f64 - e).powi(2) / e;
    }
    stat
}

fn speculative(rule: Rule, drafter: Drafter) -> f64 {
    let (mut drafter, mut target) = (drafter, sampler(2024));
    chi_square(|trial| continuation(trial, rule, &mut drafter, &mut target))
}

fn correct(targets: &[TokenDist], draft: &Draft, s: &mut Sampler) -> Verdict {
    verify(targets, draft, |_| false, s)
}

/// Broken: every draft stands, then the bonus.
fn accept_always(targets: &[TokenDist], draft: &Draft, s: &mut Sampler) -> Verdict {
    let len = targets.len() - 1;
    let mut tokens = draft.tokens()[..len].to_vec();
    tokens.push(draw(&targets[len], s));
    Verdict {
        accepted: len,
        tokens,
    }
}

/// Broken: a rejection is replaced by a draw from p instead of the residual.
fn replace_from_target(targets: &[TokenDist], draft: &Draft, s: &mut Sampler) -> Verdict {
    let len = targets.len() - 1;
    let mut tokens = Vec::new();
    for (k, (&d, q)) in draft
        .tokens()
        .iter()
        .zip(draft.dists())
        .take(len)
        .enumerate()
    {
        if !accepts(&targets[k], q, d, s) {
            tokens.push(draw(&targets[k], s));
            return Verdict {
                accepted: k,
                tokens,
            };
        }
        tokens.push(d);
    }
    tokens.push(draw(&targets[len], s));
    Verdict {
        accepted: len,
        tokens,
    }
}

#[test]
fn plain_sampling_passes_the_test() {
    let mut target = sampler(2024);
    let stat = chi_square(|trial| plain(trial, &mut target));
    println!("chi-square, plain sampling: {stat:.1} (critical {CRITICAL_63_DF})");
    assert!(stat < CRITICAL_63_DF, "{stat}");
}

#[test]
fn speculative_sampling_from_a_sampled_draft_is_lossless() {
    let stat = speculative(correct, Drafter::Sampled(sampler(7)));
    println!("chi-square, sampled draft: {stat:.1} (critical {CRITICAL_63_DF})");
    assert!(stat < CRITICAL_63_DF, "{stat}");
}

#[test]
fn speculative_sampling_from_a_deterministic_draft_is_lossless() {
    let stat = speculative(correct, Drafter::Deterministic);
    println!("chi-square, deterministic draft: {stat:.1} (critical {CRITICAL_63_DF})");
    assert!(stat < CRITICAL_63_DF, "{stat}");
}

#[test]
fn accepting_every_draft_fails_the_test() {
    let stat = speculative(accept_always, Drafter::Sampled(sampler(7)));
    println!("chi-square, accept always: {stat:.1} (critical {CRITICAL_63_DF})");
    assert!(stat > CRITICAL_63_DF, "{stat}");
}

#[test]
fn replacing_from_the_target_instead_of_the_residual_fails_the_test() {
    let stat = speculative(replace_from_target, Drafter::Sampled(sampler(7)));
    println!("chi-square, replacement from p: {stat:.1} (critical {CRITICAL_63_DF})");
    assert!(stat > CRITICAL_63_DF, "{stat}");
}
