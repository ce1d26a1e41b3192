//! The engine's speculation state: one drafter per decoding row, the
//! verification budget of each step (DSpark's Algorithm 1 over calibrated
//! confidences and the backend's measured step rate), and the run's
//! speculation counters.
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

use super::scheduler::SeqId;
use crate::spec::{Draft, NgramConfig, NgramDrafter, SpecStats, SpsTable, Sts, budget};

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

/// Drafters and counters of one engine.
#[derive(Debug)]
pub struct Speculator {
    cfg: SpeculationConfig,
    drafters: HashMap<SeqId, NgramDrafter>,
    /// The last budget was zero for every row: this step decodes plainly.
    skip_next: bool,
    stats: SpecStats,
}

impl Speculator {
    pub fn new(cfg: SpeculationConfig) -> Speculator {
        Speculator {
            cfg,
            drafters: HashMap::new(),
            skip_next: false,
            stats: SpecStats::default(),
        }
    }

    /// A row joins with its prompt as the history its drafter matches.
    pub fn admit(&mut self, id: SeqId, prompt: &[u32]) {
        let mut d =
            NgramDrafter::new(NgramConfig::default()).expect("the default n-gram range is valid");
        d.extend(prompt);
        self.drafters.insert(id, d);
    }

    /// Drafts for this step's decoding rows (`(row, room)`), each cut to
    /// the prefix the budget admits; rows with an empty prefix are absent.
    pub fn propose(&mut self, rows: &[(SeqId, usize)]) -> HashMap<SeqId, Draft> {
        if rows.is_empty() {
            return HashMap::new();
        }
        self.stats.decode_steps += 1;
        if std::mem::take(&mut self.skip_next) {
            return HashMap::new();
        }
        let drafts: Vec<(SeqId, Draft)> = rows
            .iter()
            .filter_map(|&(id, room)| {
                let drafter = self.drafters.get_mut(&id)?;
                let mut draft = drafter.draft(self.cfg.max_draft.min(room));
                if let Some(sts) = &self.cfg.calibration {
                    sts.apply(&mut draft);
                }
                Some((id, draft))
            })
            .collect();
        let confidences: Vec<&[f32]> = drafts.iter().map(|(_, d)| d.confidence()).collect();
        let lens = budget::plan(&confidences, 0, &self.cfg.sps);
        if lens.iter().all(|&l| l == 0) {
            // Drafting again next step would most likely be wasted too.
            self.skip_next = true;
            return HashMap::new();
        }
        self.stats.drafting_steps += 1;
        drafts
            .into_iter()
            .zip(lens)
            .filter(|(_, l)| *l > 0)
            .map(|((id, mut d), l)| {
                d.truncate(l);
                (id, d)
            })
            .collect()
    }

    /// Row `id` verified `verified` draft tokens and kept the first `accepted`.
    pub fn record(&mut self, id: SeqId, verified: usize, accepted: usize) {
        if let Some(d) = self.drafters.get_mut(&id) {
            d.record(verified, accepted);
        }
        self.stats.record_round(verified, accepted);
    }

    /// A token joined row `id`'s output.
    pub fn extend(&mut self, id: SeqId, token: u32) {
        if let Some(d) = self.drafters.get_mut(&id) {
            d.extend(&[token]);
        }
    }

    pub fn release(&mut self, id: SeqId) {
        self.drafters.remove(&id);
    }

    pub fn stats(&self) -> &SpecStats {
        &self.stats
    }
}
