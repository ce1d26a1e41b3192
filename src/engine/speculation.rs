//! The engine's speculation state: the [`Drafter`], the verification
//! budget of each step (DSpark's Algorithm 1 over calibrated confidences
//! and the backend's measured step rate), and the run's speculation
//! counters.
//!
//! Per step the engine asks [`Speculator::propose`] for the drafts of the
//! rows about to decode, verifies them in the same forward pass as
//! everything else, reports each row's outcome with [`Speculator::record`]
//! and feeds every emitted token back with [`Speculator::extend`].
//!
//! Invariant: a draft never influences its own admission beyond what
//! Algorithm 1's early stop allows (the budget sees only the confidences of
//! this step's drafts, never their verification), so speculation leaves the
//! output distribution unchanged.

use std::collections::HashMap;

use super::drafter::Drafter;
use super::sampler::SamplingParams;
use super::scheduler::SeqId;
use crate::backend::executor::{BackendError, Executor};
use crate::spec::{Draft, SpecStats, SpsTable, StepRecord, Sts, budget};

/// How the engine speculates.
#[derive(Debug, Clone)]
pub struct SpeculationConfig {
    /// γ: the most draft tokens a row verifies per step.
    pub max_draft: usize,
    /// Forward steps per second by tokens in the batch, measured on the backend.
    pub sps: SpsTable,
    /// Per-position temperatures for the raw confidences (identity without).
    pub calibration: Option<Sts>,
}

/// A calibration run's data: each row's raw confidences this step, and the
/// verify rounds recorded so far.
type Recording = (HashMap<SeqId, Vec<f32>>, Vec<StepRecord>);

/// The drafter, budget and counters of one engine.
pub struct Speculator {
    cfg: SpeculationConfig,
    drafter: Box<dyn Drafter>,
    /// The last budget was zero for every row: this step decodes plainly.
    skip_next: bool,
    /// Calibration runs only (see [`Speculator::recording`]).
    recording: Option<Recording>,
    stats: SpecStats,
}

impl Speculator {
    pub fn new(cfg: SpeculationConfig, drafter: Box<dyn Drafter>) -> Speculator {
        Speculator {
            cfg,
            drafter,
            skip_next: false,
            recording: None,
            stats: SpecStats::default(),
        }
    }

    /// Held-out runs for calibration: every draft is verified in full and no
    /// calibration applies (the budget would bias which rounds are seen),
    /// and each verify round is kept as a [`StepRecord`] of raw
    /// confidences for [`Sts::fit`].
    pub fn recording(mut self) -> Speculator {
        self.cfg.calibration = None;
        self.recording = Some((HashMap::new(), Vec::new()));
        self
    }

    /// The verify rounds recorded so far (empty unless recording).
    pub fn take_records(&mut self) -> Vec<StepRecord> {
        self.recording
            .as_mut()
            .map(|(_, r)| std::mem::take(r))
            .unwrap_or_default()
    }

    /// A row joins with its prompt as its drafter's history.
    pub fn admit(
        &mut self,
        id: SeqId,
        prompt: &[u32],
        max_new_tokens: usize,
        sampling: &SamplingParams,
    ) {
        self.drafter.admit(id, prompt, max_new_tokens, sampling);
    }

    /// Drafts for this step's decoding rows (`(row, room)`), each cut to
    /// the prefix the budget admits; rows with an empty prefix are absent.
    pub fn propose(
        &mut self,
        rows: &[(SeqId, usize)],
        target: &mut dyn Executor,
    ) -> Result<HashMap<SeqId, Draft>, BackendError> {
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        self.stats.decode_steps += 1;
        if std::mem::take(&mut self.skip_next) {
            return Ok(HashMap::new());
        }
        let wanted: Vec<(SeqId, usize)> = rows
            .iter()
            .map(|&(id, room)| (id, self.cfg.max_draft.min(room)))
            .collect();
        let mut drafts = self.drafter.draft(&wanted, target)?;
        if let Some(sts) = &self.cfg.calibration {
            for (_, d) in &mut drafts {
                sts.apply(d);
            }
        }
        let confidences: Vec<&[f32]> = drafts.iter().map(|(_, d)| d.confidence()).collect();
        let lens = match &mut self.recording {
            Some((raw, _)) => {
                raw.clear();
                raw.extend(drafts.iter().map(|(id, d)| (*id, d.confidence().to_vec())));
                drafts.iter().map(|(_, d)| d.len()).collect()
            }
            None => budget::plan(&confidences, 0, &self.cfg.sps),
        };
        // A draft the budget declines did not pay: drafters that weigh their
        // own cost (the draft model) learn from it.
        for ((id, _), _) in drafts.iter().zip(&lens).filter(|(_, l)| **l == 0) {
            self.drafter.record(*id, 0, 0);
        }
        if lens.iter().all(|&l| l == 0) {
            // Drafting again next step would most likely be wasted too.
            self.skip_next = true;
            return Ok(HashMap::new());
        }
        self.stats.drafting_steps += 1;
        Ok(drafts
            .into_iter()
            .zip(lens)
            .filter(|(_, l)| *l > 0)
            .map(|((id, mut d), l)| {
                d.truncate(l);
                (id, d)
            })
            .collect())
    }

    /// Row `id` verified `verified` draft tokens and kept the first `accepted`.
    pub fn record(&mut self, id: SeqId, verified: usize, accepted: usize) {
        self.drafter.record(id, verified, accepted);
        if let Some((raw, records)) = &mut self.recording
            && let Some(c) = raw.get(&id)
        {
            records.push(StepRecord {
                raw: c[..verified.min(c.len())].to_vec(),
                accepted,
            });
        }
        self.stats.record_round(verified, accepted);
    }

    /// A token joined row `id`'s output.
    pub fn extend(&mut self, id: SeqId, token: u32) {
        self.drafter.extend(id, token);
    }

    pub fn release(&mut self, id: SeqId) {
        self.drafter.release(id);
    }

    pub fn stats(&self) -> &SpecStats {
        &self.stats
    }
}
