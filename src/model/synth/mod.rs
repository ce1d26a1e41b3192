//! Synthetic models: random weights at the exact tensor names, shapes,
//! stored formats and metadata of the real models specbatch is tested on,
//! written as GGUF on the machine that needs them.
//!
//! Why: a GPU test machine fetches nothing and receives at most 64 MiB, so
//! the real checkpoints cannot travel there; the prebuilt binary can write
//! a same-shaped model there instead (`specbatch synth-model`). Speed and
//! memory behave as with the real model; the text is gibberish.
//!
//! `shapes.rs` is the table of real models, `blocks.rs` writes random block
//! data with sane scales, `tokenizer.rs` a vocabulary of the real size with
//! the real special tokens. Output is a pure function of (shape, seed,
//! layers): each tensor draws from its own generator seeded by the seed and
//! its name, so tensors do not depend on each other or on thread timing.

mod blocks;
mod shapes;
mod tokenizer;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::engine::rng::Rng;
use crate::model::config::Arch;
use crate::model::gguf::MetaValue;
use crate::model::gguf::write::GgufWriter;
use crate::model::quant::QType;
use blocks::Init;
use shapes::ShapeSpec;

/// A real model whose shape a synthetic model copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthShape {
    /// Qwen2.5-Coder-1.5B-Instruct Q4_K_M (qwen2; Q4_K, Q6_K).
    #[value(name = "qwen2.5-1.5b")]
    Qwen25_1_5b,
    /// Qwen2.5-Coder-0.5B-Instruct Q4_K_M (qwen2; Q4_K, Q5_0, Q6_K, Q8_0).
    #[value(name = "qwen2.5-0.5b")]
    Qwen25_0_5b,
    /// SmolLM2-135M-Instruct Q4_1 (llama; Q4_1, Q8_0, tied head).
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
}

impl SynthShape {
    pub const ALL: [SynthShape; 3] = [
        SynthShape::Qwen25_1_5b,
        SynthShape::Qwen25_0_5b,
        SynthShape::Smollm2_135m,
    ];

    fn spec(self) -> &'static ShapeSpec {
        match self {
            SynthShape::Qwen25_1_5b => &shapes::QWEN25_15B,
            SynthShape::Qwen25_0_5b => &shapes::QWEN25_05B,
            SynthShape::Smollm2_135m => &shapes::SMOLLM2_135M,
        }
    }

    /// The name `--shape` takes.
    pub fn name(self) -> &'static str {
        match self {
            SynthShape::Qwen25_1_5b => "qwen2.5-1.5b",
            SynthShape::Qwen25_0_5b => "qwen2.5-0.5b",
            SynthShape::Smollm2_135m => "smollm2-135m",
        }
    }

    /// The real model's layer count (the default).
    pub fn real_layers(self) -> usize {
        self.spec().n_layers
    }
}

/// Why a synthetic model cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("--layers {requested}: the {shape} shape has 1 to {max} layers")]
    Layers {
        shape: &'static str,
        requested: usize,
        max: usize,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SynthError {
    /// 2 for a bad request (not worth retrying), 1 for I/O trouble.
    pub fn exit_code(&self) -> u8 {
        match self {
            SynthError::Layers { .. } => 2,
            SynthError::Io { .. } => 1,
        }
    }
}

/// One tensor the generator will write.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    pub name: String,
    /// Innermost first, as GGUF stores them.
    pub dims: Vec<u64>,
    pub qtype: QType,
    init: Init,
}

/// What a synthetic model run wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    pub layers: usize,
    pub tensors: usize,
    /// Bytes of tensor data (the file adds metadata and padding).
    pub tensor_bytes: u64,
}

fn tensor(name: String, dims: &[usize], qtype: QType, init: Init) -> PlannedTensor {
    PlannedTensor {
        name,
        dims: dims.iter().map(|&d| d as u64).collect(),
        qtype,
        init,
    }
}

/// The tensor directory of a synthetic model with `layers` layers (default:
/// the real count), in the real file's order.
pub fn plan(shape: SynthShape, layers: Option<usize>) -> Result<Vec<PlannedTensor>, SynthError> {
    let s = shape.spec();
    let n_layers = layers.unwrap_or(s.n_layers);
    if n_layers == 0 || n_layers > s.n_layers {
        return Err(SynthError::Layers {
            shape: shape.name(),
            requested: n_layers,
            max: s.n_layers,
        });
    }
    let (d, kv, ffn, vocab) = (s.d_model, s.kv_dim(), s.ffn_dim, s.vocab_size);
    let mut out = Vec::new();
    if let Some(q) = s.head {
        out.push(tensor("output.weight".into(), &[d, vocab], q, Init::Matrix));
    }
    out.push(tensor(
        "token_embd.weight".into(),
        &[d, vocab],
        s.embed,
        Init::Matrix,
    ));
    // llama.cpp writes layers in name order: blk.0, blk.1, blk.10, ...
    let mut order: Vec<usize> = (0..n_layers).collect();
    order.sort_by_key(|i| i.to_string());
    // qwen2 has Q/K/V biases, llama none.
    let bias = s.arch == Arch::Qwen2;
    for i in order {
        let (v_type, down_type) = s.varying_types(i);
        let name = |suffix: &str| format!("blk.{i}.{suffix}");
        let ffn_part: [(&str, &[usize], QType, Init); 5] = [
            ("attn_norm.weight", &[d], QType::F32, Init::Norm),
            ("ffn_down.weight", &[ffn, d], down_type, Init::Matrix),
            ("ffn_gate.weight", &[d, ffn], s.matrix, Init::Matrix),
            ("ffn_up.weight", &[d, ffn], s.matrix, Init::Matrix),
            ("ffn_norm.weight", &[d], QType::F32, Init::Norm),
        ];
        for (suffix, dims, qtype, init) in ffn_part {
            out.push(tensor(name(suffix), dims, qtype, init));
        }
        let projections = [
            ("k", kv, s.matrix),
            ("output", d, s.matrix),
            ("q", d, s.matrix),
            ("v", kv, v_type),
        ];
        for (proj, rows, qtype) in projections {
            if bias && proj != "output" {
                let bias_name = name(&format!("attn_{proj}.bias"));
                out.push(tensor(bias_name, &[rows], QType::F32, Init::Bias));
            }
            let weight_name = name(&format!("attn_{proj}.weight"));
            out.push(tensor(weight_name, &[d, rows], qtype, Init::Matrix));
        }
    }
    out.push(tensor(
        "output_norm.weight".into(),
        &[d],
        QType::F32,
        Init::Norm,
    ));
    Ok(out)
}

/// FNV-1a: a fixed, platform-independent hash of a tensor name.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn metadata(shape: SynthShape, seed: u64, n_layers: usize) -> Vec<(String, MetaValue)> {
    let s = shape.spec();
    let arch = s.arch.name();
    let key = |k: &str| format!("{arch}.{k}");
    let str_ = |v: &str| MetaValue::String(v.to_string());
    let vocab = tokenizer::vocab(s);
    let mut m = vec![
        ("general.architecture".to_string(), str_(arch)),
        ("general.type".into(), str_("model")),
        (
            "general.name".into(),
            str_(&format!(
                "synthetic {} (random weights, seed {seed})",
                shape.name()
            )),
        ),
        (key("block_count"), MetaValue::U32(n_layers as u32)),
        (key("context_length"), MetaValue::U32(s.context_length)),
        (key("embedding_length"), MetaValue::U32(s.d_model as u32)),
        (key("feed_forward_length"), MetaValue::U32(s.ffn_dim as u32)),
        (
            key("attention.head_count"),
            MetaValue::U32(s.n_heads as u32),
        ),
        (
            key("attention.head_count_kv"),
            MetaValue::U32(s.n_kv_heads as u32),
        ),
        (key("rope.freq_base"), MetaValue::F32(s.rope_base)),
        (
            key("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(s.rms_eps),
        ),
        ("general.file_type".into(), MetaValue::U32(s.file_type)),
    ];
    if s.llama_extra_keys {
        m.push((key("vocab_size"), MetaValue::U32(s.vocab_size as u32)));
        m.push((
            key("rope.dimension_count"),
            MetaValue::U32(s.head_dim() as u32),
        ));
    }
    m.extend([
        ("tokenizer.ggml.model".into(), str_("gpt2")),
        ("tokenizer.ggml.pre".into(), str_(s.tokenizer_pre)),
        (
            "tokenizer.ggml.tokens".into(),
            MetaValue::StringArray(vocab.tokens),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::I32Array(vocab.token_types),
        ),
        (
            "tokenizer.ggml.merges".into(),
            MetaValue::StringArray(vocab.merges),
        ),
        (
            "tokenizer.ggml.bos_token_id".into(),
            MetaValue::U32(s.bos_id),
        ),
        (
            "tokenizer.ggml.eos_token_id".into(),
            MetaValue::U32(s.eos_id),
        ),
        (
            "tokenizer.ggml.padding_token_id".into(),
            MetaValue::U32(s.pad_id),
        ),
        (
            "tokenizer.ggml.add_bos_token".into(),
            MetaValue::Bool(false),
        ),
        (
            "tokenizer.chat_template".into(),
            str_(&tokenizer::chat_template(s)),
        ),
        ("general.quantization_version".into(), MetaValue::U32(2)),
    ]);
    m
}

/// Assembles a synthetic model in memory (tensors generated in parallel).
pub fn build(
    shape: SynthShape,
    seed: u64,
    layers: Option<usize>,
) -> Result<(GgufWriter, SynthSummary), SynthError> {
    let planned = plan(shape, layers)?;
    let n_layers = layers.unwrap_or(shape.real_layers());
    let data: Vec<Vec<u8>> = planned
        .par_iter()
        .map(|t| {
            let mut rng = Rng::new(Rng::new(seed).next_u64() ^ name_hash(&t.name));
            let cols = t.dims[0] as usize;
            let rows = t.dims[1..].iter().product::<u64>() as usize;
            blocks::fill(t.qtype, rows, cols, t.init, &mut rng)
        })
        .collect();
    let summary = SynthSummary {
        layers: n_layers,
        tensors: planned.len(),
        tensor_bytes: data.iter().map(|d| d.len() as u64).sum(),
    };
    let mut w = GgufWriter::new();
    for (k, v) in metadata(shape, seed, n_layers) {
        w = w.meta(&k, v);
    }
    for (t, bytes) in planned.iter().zip(data) {
        w = w.tensor(&t.name, &t.dims, t.qtype, bytes);
    }
    Ok((w, summary))
}

/// Generates a synthetic model and writes it to `path`.
pub fn write_model(
    shape: SynthShape,
    seed: u64,
    layers: Option<usize>,
    path: &Path,
) -> Result<SynthSummary, SynthError> {
    let (w, summary) = build(shape, seed, layers)?;
    w.write(path).map_err(|source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(summary)
}
