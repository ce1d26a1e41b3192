//! The DSpark draft module's root `config.json` keys (`dspark.md` §1.2): the
//! block size γ, the Markov rank, the noise token that fills the block after
//! the anchor, and the target layers whose residual streams feed the
//! drafter.
//!
//! Invariant: the keys come as a set (a config with any `dspark_*` key must
//! have all four), and inside a checked `Dsv4Config` γ and the rank are
//! positive, the noise token is in the vocabulary and every target layer
//! exists.

use super::super::config::Keys;
use super::super::error::Dsv4Error;

const BLOCK_SIZE: &str = "dspark_block_size";
const MARKOV_RANK: &str = "dspark_markov_rank";
const NOISE_TOKEN: &str = "dspark_noise_token_id";
const TARGET_LAYERS: &str = "dspark_target_layer_ids";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsparkConfig {
    /// γ: block queries per round (the anchor and γ − 1 noise tokens), and
    /// so draft tokens per round.
    pub block_size: usize,
    /// r of the Markov tables `markov_w1`/`markov_w2` ([vocab, r]).
    pub markov_rank: usize,
    pub noise_token: u32,
    /// Main layers after which the residual stream is captured, in the
    /// order their means are concatenated into `main_hidden`.
    pub target_layers: Vec<usize>,
}

impl DsparkConfig {
    /// `None` when the config has no `dspark_*` key at all.
    pub(in crate::model::dsv4) fn read(k: &Keys<'_>) -> Result<Option<DsparkConfig>, Dsv4Error> {
        let keys = [BLOCK_SIZE, MARKOV_RANK, NOISE_TOKEN, TARGET_LAYERS];
        if keys.iter().all(|key| k.find(&[key]).is_none()) {
            return Ok(None);
        }
        if k.find(&[TARGET_LAYERS]).is_none() {
            return Err(k.err(TARGET_LAYERS, "missing (the other dspark_* keys are set)"));
        }
        let target_layers = k.usize_list(TARGET_LAYERS)?;
        let noise = k.usize(&[NOISE_TOKEN])?;
        Ok(Some(DsparkConfig {
            block_size: k.usize(&[BLOCK_SIZE])?,
            markov_rank: k.usize(&[MARKOV_RANK])?,
            noise_token: u32::try_from(noise)
                .map_err(|_| k.err(NOISE_TOKEN, format!("{noise} is not a token id")))?,
            target_layers,
        }))
    }

    /// Consistency with the base model: (key at fault, why).
    pub(in crate::model::dsv4) fn check(
        &self,
        n_layers: usize,
        vocab: usize,
    ) -> Result<(), (&'static str, String)> {
        if self.block_size == 0 {
            return Err((BLOCK_SIZE, "must be positive".into()));
        }
        if self.markov_rank == 0 {
            return Err((MARKOV_RANK, "must be positive".into()));
        }
        if self.noise_token as usize >= vocab {
            return Err((
                NOISE_TOKEN,
                format!("{} is outside the vocabulary of {vocab}", self.noise_token),
            ));
        }
        if self.target_layers.is_empty() {
            return Err((TARGET_LAYERS, "is empty".into()));
        }
        if let Some(l) = self.target_layers.iter().find(|&&l| l >= n_layers) {
            return Err((
                TARGET_LAYERS,
                format!("layer {l} does not exist (num_hidden_layers {n_layers})"),
            ));
        }
        Ok(())
    }

    /// Width of `main_hidden`: one hidden-size mean per target layer.
    pub fn hidden_width(&self, hidden: usize) -> usize {
        self.target_layers.len() * hidden
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::super::super::config::{Dsv4Config, tests::tiny};
    use super::*;

    fn tiny_dspark() -> Value {
        let mut v = tiny();
        v["compress_ratios"] = json!([0, 4, 128, 4, 16, 0, 0, 0]);
        v["dspark_block_size"] = json!(5);
        v["dspark_markov_rank"] = json!(16);
        v["dspark_noise_token_id"] = json!(511);
        v["dspark_target_layer_ids"] = json!([2, 3, 4]);
        v
    }

    #[test]
    fn reads_the_four_keys() {
        let c = Dsv4Config::from_json(Path::new("c.json"), &tiny_dspark()).unwrap();
        let d = c.dspark.unwrap();
        assert_eq!(
            d,
            DsparkConfig {
                block_size: 5,
                markov_rank: 16,
                noise_token: 511,
                target_layers: vec![2, 3, 4]
            }
        );
        assert_eq!(d.hidden_width(c.hidden), 3 * 256);
    }

    #[test]
    fn a_config_without_dspark_keys_has_none() {
        let c = Dsv4Config::from_json(Path::new("c.json"), &tiny()).unwrap();
        assert_eq!(c.dspark, None);
    }

    #[test]
    fn bad_dspark_keys_are_named() {
        let cases: [(&str, Value); 5] = [
            (TARGET_LAYERS, Value::Null),
            (TARGET_LAYERS, json!([2, 3, 5])),
            (NOISE_TOKEN, json!(512)),
            (BLOCK_SIZE, json!(0)),
            (MARKOV_RANK, json!(-1)),
        ];
        for (key, val) in cases {
            let mut v = tiny_dspark();
            v[key] = val.clone();
            let e = Dsv4Config::from_json(Path::new("c.json"), &v)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{key}`")), "{key} = {val}: {e}");
        }
    }
}
