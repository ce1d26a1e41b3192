//! The DeepSeek-V4 hyper-parameters, read from an HF root `config.json` or
//! from the official inference-side names (`dim`, `n_layers`, …), and the
//! per-layer attention schedule derived from `compress_ratios`.
//!
//! Invariant: a `Dsv4Config` that exists is internally consistent (every
//! divisibility the forward pass relies on holds); the checkpoint's tensors
//! are checked against it separately, in `weights`.

use std::path::Path;

use serde_json::Value;

use super::dspark::config::DsparkConfig;
use super::error::Dsv4Error;

/// Which attention a layer runs, from its compress ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Ratio 0: the sliding window only, RoPE θ without YaRN.
    Sliding,
    /// Ratio 4: overlapping compressor plus the Lightning indexer's top-k.
    Csa,
    /// Any other ratio: non-overlapping compressor, all entries visible.
    Hca,
}

/// The ratio at which the official code switches a compressor to the
/// overlapping (CSA) form and gives the layer an indexer.
pub const CSA_RATIO: usize = 4;

impl LayerKind {
    /// The attention of a layer with compress ratio `ratio`.
    pub fn of_ratio(ratio: usize) -> LayerKind {
        match ratio {
            0 => LayerKind::Sliding,
            CSA_RATIO => LayerKind::Csa,
            _ => LayerKind::Hca,
        }
    }
}

/// YaRN frequency interpolation of the compressed layers' RoPE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    pub factor: f64,
    pub original_max_positions: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
}

/// Expert weight storage of the routed experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertDtype {
    Fp4,
    Fp8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dsv4Config {
    pub vocab_size: usize,
    pub hidden: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub rope_dim: usize,
    pub q_lora_rank: usize,
    pub o_groups: usize,
    pub o_lora_rank: usize,
    pub n_routed_experts: usize,
    pub n_active_experts: usize,
    pub n_shared_experts: usize,
    pub moe_inter: usize,
    pub n_hash_layers: usize,
    pub route_scale: f32,
    pub swiglu_limit: f32,
    /// One ratio per main layer, then one per MTP block (or DSpark stage).
    pub compress_ratios: Vec<usize>,
    pub window: usize,
    pub index_heads: usize,
    pub index_head_dim: usize,
    pub index_topk: usize,
    pub rope_theta: f64,
    pub compress_rope_theta: f64,
    pub yarn: Option<Yarn>,
    pub max_positions: usize,
    pub hc_mult: usize,
    pub hc_iters: usize,
    pub hc_eps: f32,
    pub rms_eps: f32,
    /// `num_nextn_predict_layers`: the MTP blocks of a non-DSpark
    /// checkpoint. A DSpark checkpoint's stage count comes from its tensors.
    pub n_mtp: usize,
    /// The DSpark keys (`dspark_*`), when the config has any.
    pub dspark: Option<DsparkConfig>,
    pub bos_id: u32,
    pub eos_id: u32,
    pub expert_dtype: ExpertDtype,
}

/// Reads keys by their HF name or, failing that, the inference-side name.
pub(super) struct Keys<'a> {
    pub(super) path: &'a Path,
    pub(super) v: &'a Value,
}

impl Keys<'_> {
    pub(super) fn err(&self, key: &str, message: impl Into<String>) -> Dsv4Error {
        Dsv4Error::Config {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn find(&self, names: &[&str]) -> Option<&Value> {
        names
            .iter()
            .find_map(|n| self.v.get(*n).filter(|v| !v.is_null()))
    }

    pub(super) fn usize(&self, names: &[&str]) -> Result<usize, Dsv4Error> {
        let v = self
            .find(names)
            .ok_or_else(|| self.err(names[0], "missing"))?;
        v.as_u64().map(|n| n as usize).ok_or_else(|| {
            self.err(
                names[0],
                format!("expected a non-negative integer, found {v}"),
            )
        })
    }

    pub(super) fn usize_list(&self, name: &str) -> Result<Vec<usize>, Dsv4Error> {
        let v = self
            .find(&[name])
            .ok_or_else(|| self.err(name, "missing"))?;
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .map(|r| r.as_u64().map(|r| r as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                self.err(
                    name,
                    format!("expected a list of non-negative integers, found {v}"),
                )
            })
    }

    fn usize_or(&self, names: &[&str], default: usize) -> Result<usize, Dsv4Error> {
        match self.find(names) {
            None => Ok(default),
            Some(_) => self.usize(names),
        }
    }

    fn f64(&self, names: &[&str]) -> Result<f64, Dsv4Error> {
        let v = self
            .find(names)
            .ok_or_else(|| self.err(names[0], "missing"))?;
        v.as_f64()
            .ok_or_else(|| self.err(names[0], format!("expected a number, found {v}")))
    }

    fn f64_or(&self, names: &[&str], default: f64) -> Result<f64, Dsv4Error> {
        match self.find(names) {
            None => Ok(default),
            Some(_) => self.f64(names),
        }
    }

    fn str_or<'s>(&'s self, names: &[&str], default: &'s str) -> Result<&'s str, Dsv4Error> {
        match self.find(names) {
            None => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.err(names[0], format!("expected a string, found {v}"))),
        }
    }
}

fn yarn(k: &Keys<'_>) -> Result<Option<Yarn>, Dsv4Error> {
    let scaling = k.v.get("rope_scaling").filter(|v| !v.is_null());
    let nested = scaling.map(|v| Keys { path: k.path, v });
    let pick = |names: &[&str], default: Option<f64>| -> Result<Option<f64>, Dsv4Error> {
        if let Some(n) = &nested
            && n.find(names).is_some()
        {
            return n.f64(names).map(Some);
        }
        match (k.find(names), default) {
            (Some(_), _) => k.f64(names).map(Some),
            (None, d) => Ok(d),
        }
    };
    if let Some(n) = &nested {
        let kind = n.str_or(&["type", "rope_type"], "yarn")?;
        if kind != "yarn" {
            return Err(k.err(
                "rope_scaling.type",
                format!("`{kind}` is not supported (only yarn)"),
            ));
        }
    }
    let factor = pick(&["factor", "rope_factor"], None)?;
    let Some(factor) = factor.filter(|f| *f > 1.0) else {
        return Ok(None);
    };
    let original = pick(
        &["original_max_position_embeddings", "original_seq_len"],
        None,
    )?
    .ok_or_else(|| k.err("rope_scaling.original_max_position_embeddings", "missing"))?;
    Ok(Some(Yarn {
        factor,
        original_max_positions: original,
        beta_fast: pick(&["beta_fast"], Some(32.0))?.unwrap_or(32.0),
        beta_slow: pick(&["beta_slow"], Some(1.0))?.unwrap_or(1.0),
    }))
}

impl Dsv4Config {
    /// Reads `config.json` (already parsed) from `path`.
    pub fn from_json(path: &Path, v: &Value) -> Result<Dsv4Config, Dsv4Error> {
        let k = Keys { path, v };
        let model_type = k.str_or(&["model_type"], "deepseek_v4")?;
        if model_type != "deepseek_v4" {
            return Err(k.err("model_type", format!("`{model_type}` is not deepseek_v4")));
        }
        let kv_heads = k.usize_or(&["num_key_value_heads"], 1)?;
        if kv_heads != 1 {
            return Err(k.err("num_key_value_heads", "DeepSeek-V4 has one shared K=V head"));
        }
        let score = k.str_or(&["scoring_func", "score_func"], "sqrtsoftplus")?;
        if score != "sqrtsoftplus" {
            return Err(k.err(
                "scoring_func",
                format!("`{score}` is not supported (sqrtsoftplus)"),
            ));
        }
        if k.find(&["norm_topk_prob"]).and_then(Value::as_bool) == Some(false) {
            return Err(k.err("norm_topk_prob", "false is not supported"));
        }
        let expert_dtype = match k.str_or(&["expert_dtype"], "fp4")? {
            "fp4" => ExpertDtype::Fp4,
            "fp8" => ExpertDtype::Fp8,
            other => return Err(k.err("expert_dtype", format!("`{other}` (expected fp4 or fp8)"))),
        };
        let compress_ratios = k.usize_list("compress_ratios")?;
        let c = Dsv4Config {
            vocab_size: k.usize(&["vocab_size"])?,
            hidden: k.usize(&["hidden_size", "dim"])?,
            n_layers: k.usize(&["num_hidden_layers", "n_layers"])?,
            n_heads: k.usize(&["num_attention_heads", "n_heads"])?,
            head_dim: k.usize(&["head_dim"])?,
            rope_dim: k.usize(&["qk_rope_head_dim", "rope_head_dim"])?,
            q_lora_rank: k.usize(&["q_lora_rank"])?,
            o_groups: k.usize(&["o_groups"])?,
            o_lora_rank: k.usize(&["o_lora_rank"])?,
            n_routed_experts: k.usize(&["n_routed_experts"])?,
            n_active_experts: k.usize(&["num_experts_per_tok", "n_activated_experts"])?,
            n_shared_experts: k.usize_or(&["n_shared_experts"], 1)?,
            moe_inter: k.usize(&["moe_intermediate_size", "moe_inter_dim"])?,
            n_hash_layers: k.usize_or(&["num_hash_layers", "n_hash_layers"], 0)?,
            route_scale: k.f64_or(&["routed_scaling_factor", "route_scale"], 1.0)? as f32,
            swiglu_limit: k.f64_or(&["swiglu_limit"], 0.0)? as f32,
            compress_ratios,
            window: k.usize(&["sliding_window", "window_size"])?,
            index_heads: k.usize(&["index_n_heads"])?,
            index_head_dim: k.usize(&["index_head_dim"])?,
            index_topk: k.usize(&["index_topk"])?,
            rope_theta: k.f64(&["rope_theta"])?,
            compress_rope_theta: k.f64(&["compress_rope_theta"])?,
            yarn: yarn(&k)?,
            max_positions: k.usize(&["max_position_embeddings", "max_seq_len"])?,
            hc_mult: k.usize(&["hc_mult"])?,
            hc_iters: k.usize(&["hc_sinkhorn_iters"])?,
            hc_eps: k.f64(&["hc_eps"])? as f32,
            rms_eps: k.f64_or(&["rms_norm_eps", "norm_eps"], 1e-6)? as f32,
            n_mtp: k.usize_or(&["num_nextn_predict_layers"], 0)?,
            dspark: DsparkConfig::read(&k)?,
            bos_id: k.usize_or(&["bos_token_id"], 0)? as u32,
            eos_id: k.usize_or(&["eos_token_id"], 1)? as u32,
            expert_dtype,
        };
        c.check().map_err(|(key, msg)| k.err(key, msg))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("hidden_size", self.hidden),
            ("num_hidden_layers", self.n_layers),
            ("num_attention_heads", self.n_heads),
            ("head_dim", self.head_dim),
            ("q_lora_rank", self.q_lora_rank),
            ("o_groups", self.o_groups),
            ("o_lora_rank", self.o_lora_rank),
            ("n_routed_experts", self.n_routed_experts),
            ("num_experts_per_tok", self.n_active_experts),
            ("moe_intermediate_size", self.moe_inter),
            ("sliding_window", self.window),
            ("hc_mult", self.hc_mult),
            ("hc_sinkhorn_iters", self.hc_iters),
            ("vocab_size", self.vocab_size),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be positive".into()));
        }
        let ratios = self.compress_ratios.len();
        match &self.dspark {
            // One trailing entry per DSpark stage, counted from the tensors
            // at load (`num_nextn_predict_layers` is 1 in most DSpark configs).
            Some(_) if ratios < self.n_layers => {
                return Err((
                    "compress_ratios",
                    format!(
                        "has {ratios} entries, fewer than num_hidden_layers {}",
                        self.n_layers
                    ),
                ));
            }
            None if ratios != self.n_layers + self.n_mtp => {
                return Err((
                    "compress_ratios",
                    format!(
                        "has {ratios} entries; num_hidden_layers {} + num_nextn_predict_layers {} = {}",
                        self.n_layers,
                        self.n_mtp,
                        self.n_layers + self.n_mtp
                    ),
                ));
            }
            _ => {}
        }
        if self.rope_dim == 0 || !self.rope_dim.is_multiple_of(2) || self.rope_dim > self.head_dim {
            return Err((
                "qk_rope_head_dim",
                "must be even, positive and at most head_dim".into(),
            ));
        }
        if !self.n_heads.is_multiple_of(self.o_groups) {
            return Err(("o_groups", "must divide num_attention_heads".into()));
        }
        if self.n_active_experts > self.n_routed_experts {
            return Err(("num_experts_per_tok", "exceeds n_routed_experts".into()));
        }
        if self.n_hash_layers > self.n_layers {
            return Err(("num_hash_layers", "exceeds num_hidden_layers".into()));
        }
        if let Some(d) = &self.dspark {
            d.check(self.n_layers, self.vocab_size)?;
        }
        if !self.moe_inter.is_multiple_of(32) || !self.hidden.is_multiple_of(32) {
            return Err((
                "moe_intermediate_size",
                "hidden_size and moe_intermediate_size must be multiples of 32 (FP4 scale blocks)"
                    .into(),
            ));
        }
        if self.has_csa() {
            if !self.index_head_dim.is_power_of_two() || self.index_head_dim < self.rope_dim {
                return Err((
                    "index_head_dim",
                    "must be a power of two (Hadamard) and at least qk_rope_head_dim".into(),
                ));
            }
            if self.index_heads == 0 || self.index_topk == 0 {
                return Err((
                    "index_n_heads",
                    "CSA layers need index heads and a top-k".into(),
                ));
            }
        }
        Ok(())
    }

    fn has_csa(&self) -> bool {
        self.compress_ratios.contains(&CSA_RATIO)
    }

    /// The attention kind of layer `i` (main layers, then MTP blocks).
    pub fn kind(&self, layer: usize) -> LayerKind {
        LayerKind::of_ratio(self.compress_ratios[layer])
    }

    pub fn is_hash_layer(&self, layer: usize) -> bool {
        layer < self.n_hash_layers
    }

    /// Width of the hyper-connection state: `hc_mult` streams of `hidden`.
    pub fn hc_width(&self) -> usize {
        self.hc_mult * self.hidden
    }

    /// Rows of an mHC `fn`: pre (hc), post (hc) and the hc×hc comb matrix.
    pub fn hc_mix_rows(&self) -> usize {
        (2 + self.hc_mult) * self.hc_mult
    }

    /// Leading head dims that RoPE does not touch (and KV FP8 covers).
    pub fn nope_dim(&self) -> usize {
        self.head_dim - self.rope_dim
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn tiny() -> Value {
        json!({
            "model_type": "deepseek_v4", "vocab_size": 512, "hidden_size": 256,
            "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 1,
            "head_dim": 192, "qk_rope_head_dim": 64, "q_lora_rank": 128, "o_groups": 2,
            "o_lora_rank": 128, "n_routed_experts": 8, "num_experts_per_tok": 2,
            "n_shared_experts": 1, "moe_intermediate_size": 128, "num_hash_layers": 2,
            "scoring_func": "sqrtsoftplus", "norm_topk_prob": true,
            "routed_scaling_factor": 1.5, "swiglu_limit": 10.0,
            "compress_ratios": [0, 4, 128, 4, 16, 0], "sliding_window": 32,
            "index_n_heads": 4, "index_head_dim": 128, "index_topk": 8,
            "rope_theta": 10000, "compress_rope_theta": 160000,
            "rope_scaling": {"type": "yarn", "factor": 16,
                "original_max_position_embeddings": 65536, "beta_fast": 32, "beta_slow": 1},
            "max_position_embeddings": 1048576, "hc_mult": 4, "hc_sinkhorn_iters": 20,
            "hc_eps": 1e-6, "rms_norm_eps": 1e-6, "num_nextn_predict_layers": 1,
            "bos_token_id": 0, "eos_token_id": 1, "expert_dtype": "fp4"
        })
    }

    #[test]
    fn reads_hf_names_and_schedule() {
        let c = Dsv4Config::from_json(Path::new("c.json"), &tiny()).unwrap();
        assert_eq!(c.hidden, 256);
        assert_eq!(c.nope_dim(), 128);
        let kinds: Vec<_> = (0..6).map(|i| c.kind(i)).collect();
        use LayerKind::*;
        assert_eq!(kinds, [Sliding, Csa, Hca, Csa, Hca, Sliding]);
        assert!(c.is_hash_layer(1) && !c.is_hash_layer(2));
        let y = c.yarn.unwrap();
        assert_eq!((y.factor, y.original_max_positions), (16.0, 65536.0));
    }

    #[test]
    fn reads_inference_names() {
        let v = json!({
            "vocab_size": 512, "dim": 256, "n_layers": 5, "n_heads": 4, "head_dim": 192,
            "rope_head_dim": 64, "q_lora_rank": 128, "o_groups": 2, "o_lora_rank": 128,
            "n_routed_experts": 8, "n_activated_experts": 2, "moe_inter_dim": 128,
            "n_hash_layers": 2, "score_func": "sqrtsoftplus", "route_scale": 1.5,
            "swiglu_limit": 10.0, "compress_ratios": [0, 4, 128, 4, 16, 0], "window_size": 32,
            "index_n_heads": 4, "index_head_dim": 128, "index_topk": 8, "rope_theta": 10000,
            "compress_rope_theta": 160000, "rope_factor": 16, "original_seq_len": 65536,
            "beta_fast": 32, "beta_slow": 1, "max_seq_len": 1048576, "hc_mult": 4,
            "hc_sinkhorn_iters": 20, "hc_eps": 1e-6, "num_nextn_predict_layers": 1,
            "expert_dtype": "fp4"
        });
        let a = Dsv4Config::from_json(Path::new("i.json"), &v).unwrap();
        let b = Dsv4Config::from_json(Path::new("c.json"), &tiny()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn inconsistent_configs_name_the_key() {
        let cases: [(&str, Value, &str); 4] = [
            ("compress_ratios", json!([0, 4, 128]), "compress_ratios"),
            ("num_key_value_heads", json!(8), "num_key_value_heads"),
            ("o_groups", json!(3), "o_groups"),
            ("hidden_size", Value::Null, "hidden_size"),
        ];
        for (key, val, named) in cases {
            let mut v = tiny();
            v[key] = val;
            let e = Dsv4Config::from_json(Path::new("c.json"), &v)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{named}`")), "{key}: {e}");
        }
    }
}
