//! The DSpark draft module's tensors (`dspark.md` §1.2), under `mtp.{i}.`:
//! every stage is a normal V4 block (window-only attention, score-routed
//! MoE with its own experts, both mHC sites); `mtp.0` adds `main_proj` and
//! `main_norm`, the last stage the final `norm`, `hc_head_*`, the Markov
//! tables and the confidence head. There is no `mtp.*` embedding or head:
//! the target's are used.
//!
//! Invariants:
//! - The stage count is the number of distinct `i` in the `mtp.{i}.` names,
//!   never `num_nextn_predict_layers` (most DSpark configs say 1).
//! - A loaded module has every tensor with its official dtype and shape, and
//!   `compress_ratios` has exactly one trailing 0 per stage; anything else is
//!   a [`Dsv4Error`] naming the tensor or key.

use std::collections::HashSet;

use super::super::config::Dsv4Config;
use super::super::error::Dsv4Error;
use super::super::matrix::Matrix;
use super::super::take::Take;
use super::super::weights::{BlockWeights, MhcWeights};

/// The tensor that only a DSpark module has: a checkpoint that holds it
/// without the `dspark_*` config keys has lost its config, not its drafter.
const MAIN_PROJ: &str = "mtp.0.main_proj.weight";

#[derive(Debug)]
pub struct DsparkWeights {
    /// `mtp.0 → mtp.1 → …`, each a window-only, score-routed block.
    pub stages: Vec<BlockWeights>,
    /// FP8 `[hidden, targets·hidden]`: `main_hidden` → `main_x` (no bias).
    pub main_proj: Matrix,
    pub main_norm: Vec<f32>,
    /// The last stage's norm before the target head.
    pub norm: Vec<f32>,
    /// The last stage's sigmoid-gated collapse of the hc streams.
    pub hc_head: MhcWeights,
    /// BF16 `[vocab, rank]`: the Markov embedding of the previous token.
    pub markov_w1: Matrix,
    /// BF16 `[vocab, rank]`: rank → vocabulary bias.
    pub markov_w2: Matrix,
    /// BF16 `[1, hidden + rank]`, no bias: `[x ; markov_w1[prev]]` → logit.
    pub confidence: Matrix,
}

impl DsparkWeights {
    /// The draft module, if the checkpoint has one (see the module header).
    /// A config with `dspark_*` keys and no `mtp.*` tensor (a checkpoint
    /// stripped of its drafter) loads without one.
    pub(in crate::model::dsv4) fn load(
        t: &mut Take<'_>,
        c: &Dsv4Config,
    ) -> Result<Option<DsparkWeights>, Dsv4Error> {
        let config_err = |key: &str, message: String| Dsv4Error::Config {
            path: t.dir().join("config.json"),
            key: key.to_string(),
            message,
        };
        let Some(dc) = &c.dspark else {
            if t.st.raw(MAIN_PROJ).is_some() {
                return Err(config_err(
                    "dspark_*",
                    format!("missing, but the checkpoint has the DSpark tensor `{MAIN_PROJ}`"),
                ));
            }
            return Ok(None);
        };
        let n = stage_count(t.st.tensor_names());
        if n == 0 {
            return Ok(None);
        }
        let trailing = &c.compress_ratios[c.n_layers..];
        if trailing.len() != n {
            return Err(config_err(
                "compress_ratios",
                format!(
                    "has {} entries after the {} main layers; the checkpoint has {n} DSpark stages",
                    trailing.len(),
                    c.n_layers
                ),
            ));
        }
        if let Some((i, r)) = trailing.iter().enumerate().find(|(_, r)| **r != 0) {
            return Err(config_err(
                "compress_ratios",
                format!("DSpark stage {i} has ratio {r}; the stages are window-only (0)"),
            ));
        }
        let stages = (0..n)
            .map(|i| t.block(c, &format!("mtp.{i}"), 0, false))
            .collect::<Result<Vec<_>, _>>()?;
        let (d, last) = (c.hidden, format!("mtp.{}", n - 1));
        let rank = dc.markov_rank;
        Ok(Some(DsparkWeights {
            stages,
            main_proj: t.fp8_matrix("mtp.0.main_proj", d, dc.hidden_width(d))?,
            main_norm: t.bf16s("mtp.0.main_norm.weight", d)?,
            norm: t.bf16s(&format!("{last}.norm.weight"), d)?,
            hc_head: t.mhc(&format!("{last}.hc_head"), c, c.hc_mult, 1)?,
            markov_w1: t.bf16_matrix(
                &format!("{last}.markov_head.markov_w1"),
                c.vocab_size,
                rank,
            )?,
            markov_w2: t.bf16_matrix(
                &format!("{last}.markov_head.markov_w2"),
                c.vocab_size,
                rank,
            )?,
            confidence: t.bf16_matrix(&format!("{last}.confidence_head.proj"), 1, d + rank)?,
        }))
    }

    /// The module's matrices, appended to `out`.
    pub(in crate::model::dsv4) fn matrices<'a>(&'a self, out: &mut Vec<&'a Matrix>) {
        for s in &self.stages {
            s.matrices(out);
        }
        out.extend([
            &self.main_proj,
            &self.hc_head.mix,
            &self.markov_w1,
            &self.markov_w2,
            &self.confidence,
        ]);
    }
}

/// The distinct stage indices among `mtp.{i}.*` tensor names.
fn stage_count<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names
        .filter_map(|n| n.strip_prefix("mtp.")?.split_once('.'))
        .filter_map(|(i, _)| i.parse::<usize>().ok())
        .collect::<HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_count_distinct_indices() {
        let names = [
            "layers.0.attn.wq_a.weight",
            "mtp.0.main_proj.weight",
            "mtp.0.attn.wkv.weight",
            "mtp.1.norm.weight",
            "mtp.x.norm.weight",
            "mtp.2",
        ];
        assert_eq!(stage_count(names.into_iter()), 2);
        assert_eq!(stage_count(["embed.weight"].into_iter()), 0);
    }
}
