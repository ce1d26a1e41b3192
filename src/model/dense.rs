//! Weights of the dense decoder family (llama, qwen2), validated at load.
//!
//! Invariant: once a [`DenseWeights`] exists every tensor is present with the
//! shape the config implies and a type the CPU kernels run, so the forward
//! pass never re-checks. Matrices stay in their stored block format; only
//! the small norm and bias vectors are decoded to f32.

use crate::model::config::DenseConfig;
use crate::model::error::ModelError;
use crate::model::quant::dequantize_row;
use crate::model::tensor::Tensor;

/// One transformer block.
#[derive(Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Tensor,
    pub wk: Tensor,
    pub wv: Tensor,
    /// Present together for qwen2, absent for llama.
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub wo: Tensor,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Tensor,
    pub w_up: Tensor,
    pub w_down: Tensor,
}

/// A whole dense model's weights.
#[derive(Debug)]
pub struct DenseWeights {
    pub config: DenseConfig,
    pub embed: Tensor,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Vec<f32>,
    /// The output head; the embedding matrix again when tied.
    pub head: Tensor,
}

/// Tensor naming of a checkpoint format.
pub trait TensorSource {
    /// Path of the checkpoint, for error messages.
    fn path(&self) -> &str;
    fn has(&self, name: &str) -> bool;
    fn get(&self, name: &str) -> Result<Tensor, ModelError>;
}

/// Per-layer tensors: (role, GGUF name suffix, Hugging Face name suffix).
const LAYER_TENSORS: [(&str, &str, &str); 12] = [
    ("attn_norm", "attn_norm.weight", "input_layernorm.weight"),
    ("q", "attn_q.weight", "self_attn.q_proj.weight"),
    ("k", "attn_k.weight", "self_attn.k_proj.weight"),
    ("v", "attn_v.weight", "self_attn.v_proj.weight"),
    ("q_bias", "attn_q.bias", "self_attn.q_proj.bias"),
    ("k_bias", "attn_k.bias", "self_attn.k_proj.bias"),
    ("v_bias", "attn_v.bias", "self_attn.v_proj.bias"),
    ("o", "attn_output.weight", "self_attn.o_proj.weight"),
    (
        "ffn_norm",
        "ffn_norm.weight",
        "post_attention_layernorm.weight",
    ),
    ("gate", "ffn_gate.weight", "mlp.gate_proj.weight"),
    ("up", "ffn_up.weight", "mlp.up_proj.weight"),
    ("down", "ffn_down.weight", "mlp.down_proj.weight"),
];

/// Tensor naming of a checkpoint format.
pub struct TensorNames {
    pub embed: &'static str,
    pub final_norm: &'static str,
    pub head: &'static str,
    /// Prefix of per-layer names, before the layer index.
    layer_prefix: &'static str,
    /// Whether per-layer suffixes follow Hugging Face (else GGUF) naming.
    hf: bool,
}

impl TensorNames {
    /// The name of `role` (see [`LAYER_TENSORS`]) in layer `i`.
    fn layer(&self, i: usize, role: &str) -> String {
        let (_, gguf, hf) = LAYER_TENSORS
            .iter()
            .find(|t| t.0 == role)
            .expect("roles are the table's");
        let suffix = if self.hf { hf } else { gguf };
        format!("{}.{i}.{suffix}", self.layer_prefix)
    }
}

/// GGUF (llama.cpp) names.
pub const GGUF_NAMES: TensorNames = TensorNames {
    embed: "token_embd.weight",
    final_norm: "output_norm.weight",
    head: "output.weight",
    layer_prefix: "blk",
    hf: false,
};

/// Hugging Face transformers names.
pub const HF_NAMES: TensorNames = TensorNames {
    embed: "model.embed_tokens.weight",
    final_norm: "model.norm.weight",
    head: "lm_head.weight",
    layer_prefix: "model.layers",
    hf: true,
};

impl DenseWeights {
    /// Loads and validates every tensor the config implies.
    pub fn load(
        config: DenseConfig,
        src: &dyn TensorSource,
        names: &TensorNames,
    ) -> Result<DenseWeights, ModelError> {
        config.check().map_err(|message| ModelError::Metadata {
            path: src.path().to_string(),
            key: "config".into(),
            message,
        })?;
        let c = &config;
        let embed = matrix(src, names.embed, c.vocab_size, c.d_model)?;
        let head = if src.has(names.head) {
            matrix(src, names.head, c.vocab_size, c.d_model)?
        } else if c.tied_head {
            embed.clone()
        } else {
            return Err(src.get(names.head).err().unwrap_or(ModelError::Metadata {
                path: src.path().to_string(),
                key: names.head.into(),
                message: "missing output head".into(),
            }));
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let n = |role: &str| names.layer(i, role);
            let bias = |role: &str, len: usize| -> Result<Option<Vec<f32>>, ModelError> {
                if c.qkv_bias {
                    vector(src, &n(role), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: vector(src, &n("attn_norm"), c.d_model)?,
                wq: matrix(src, &n("q"), c.q_dim(), c.d_model)?,
                wk: matrix(src, &n("k"), c.kv_dim(), c.d_model)?,
                wv: matrix(src, &n("v"), c.kv_dim(), c.d_model)?,
                bq: bias("q_bias", c.q_dim())?,
                bk: bias("k_bias", c.kv_dim())?,
                bv: bias("v_bias", c.kv_dim())?,
                wo: matrix(src, &n("o"), c.d_model, c.q_dim())?,
                ffn_norm: vector(src, &n("ffn_norm"), c.d_model)?,
                w_gate: matrix(src, &n("gate"), c.ffn_dim, c.d_model)?,
                w_up: matrix(src, &n("up"), c.ffn_dim, c.d_model)?,
                w_down: matrix(src, &n("down"), c.d_model, c.ffn_dim)?,
            });
        }
        let final_norm = vector(src, names.final_norm, c.d_model)?;
        Ok(DenseWeights {
            config,
            embed,
            layers,
            final_norm,
            head,
        })
    }

    /// Number of parameters (all tensors, the tied head counted once).
    pub fn parameter_count(&self) -> usize {
        let c = &self.config;
        let per_layer = 2 * c.d_model
            + c.d_model * (c.q_dim() + 2 * c.kv_dim())
            + if c.qkv_bias {
                c.q_dim() + 2 * c.kv_dim()
            } else {
                0
            }
            + c.q_dim() * c.d_model
            + 3 * c.d_model * c.ffn_dim;
        let head = if c.tied_head {
            0
        } else {
            c.vocab_size * c.d_model
        };
        c.vocab_size * c.d_model + c.n_layers * per_layer + c.d_model + head
    }

    /// Every matrix tensor, for `inspect` (type histogram, bytes).
    pub fn matrices(&self) -> Vec<&Tensor> {
        let mut out = vec![&self.embed];
        for l in &self.layers {
            out.extend([&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]);
        }
        if !self.config.tied_head {
            out.push(&self.head);
        }
        out
    }
}

fn matrix(
    src: &dyn TensorSource,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Tensor, ModelError> {
    let t = src.get(name)?;
    if (t.rows, t.cols) != (rows, cols) {
        return Err(ModelError::Shape {
            path: src.path().to_string(),
            tensor: name.to_string(),
            expected: (rows, cols),
            found: (t.rows, t.cols),
        });
    }
    Ok(t)
}

fn vector(src: &dyn TensorSource, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let t = src.get(name)?;
    if t.rows * t.cols != len {
        return Err(ModelError::Shape {
            path: src.path().to_string(),
            tensor: name.to_string(),
            expected: (1, len),
            found: (t.rows, t.cols),
        });
    }
    let mut out = vec![0.0; len];
    dequantize_row(t.qtype, t.bytes(), &mut out);
    Ok(out)
}
