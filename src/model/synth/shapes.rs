//! The real models the synthetic generator imitates: their dimensions,
//! metadata values and which stored format each tensor has.
//!
//! Every number here was read from the real quantized files in `models/`
//! (`specbatch inspect` and the GGUF tensor directory); `tests/synth_model.rs`
//! compares this table against those files, so a wrong entry fails a test.

use crate::model::config::Arch;
use crate::model::quant::QType;

/// Special tokens of a vocabulary: (id, text, GGUF token type).
pub(super) type Special = (u32, &'static str, i32);

/// GGUF token types (llama.cpp's `llama_token_type`).
pub(super) const TOKEN_CONTROL: i32 = 3;
pub(super) const TOKEN_USER_DEFINED: i32 = 4;
pub(super) const TOKEN_UNUSED: i32 = 5;

/// One real model's shape and quantization.
#[derive(Debug)]
pub(super) struct ShapeSpec {
    pub arch: Arch,
    /// Layer count of the real model (the default for `--layers`).
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub context_length: u32,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// Whether the file writes `{arch}.rope.dimension_count` and
    /// `{arch}.vocab_size` (the llama converter does, the qwen2 one not).
    pub llama_extra_keys: bool,
    /// `general.file_type` (15 = Q4_K_M, 3 = mostly Q4_1).
    pub file_type: u32,
    /// The head's format; `None` when it is tied to the embedding.
    pub head: Option<QType>,
    pub embed: QType,
    /// Format of the attention and FFN matrices that never vary by layer.
    pub matrix: QType,
    /// llama.cpp's Q4_K_M gives `attn_v` and `ffn_down` more bits in some
    /// layers: (those layers, attn_v's type there, ffn_down's there,
    /// ffn_down's elsewhere). `attn_v` elsewhere is `matrix`.
    pub more_bits: Option<(&'static [usize], QType, QType, QType)>,
    pub tokenizer_pre: &'static str,
    pub bos_id: u32,
    pub eos_id: u32,
    pub pad_id: u32,
    pub specials: &'static [Special],
    /// `[PAD<id>]` unused tokens fill the ids from here to the end.
    pub unused_from: Option<u32>,
    /// Default system prompt of the real chat template.
    pub default_system: &'static str,
}

impl ShapeSpec {
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }

    /// (attn_v, ffn_down) formats of layer `i`.
    pub fn varying_types(&self, i: usize) -> (QType, QType) {
        match self.more_bits {
            Some((layers, v_more, down_more, down_other)) => {
                if layers.contains(&i) {
                    (v_more, down_more)
                } else {
                    (self.matrix, down_other)
                }
            }
            None => (self.matrix, self.matrix),
        }
    }
}

const QWEN_SPECIALS: &[Special] = &[
    (151643, "<|endoftext|>", TOKEN_CONTROL),
    (151644, "<|im_start|>", TOKEN_CONTROL),
    (151645, "<|im_end|>", TOKEN_CONTROL),
    (151646, "<|object_ref_start|>", TOKEN_CONTROL),
    (151647, "<|object_ref_end|>", TOKEN_CONTROL),
    (151648, "<|box_start|>", TOKEN_CONTROL),
    (151649, "<|box_end|>", TOKEN_CONTROL),
    (151650, "<|quad_start|>", TOKEN_CONTROL),
    (151651, "<|quad_end|>", TOKEN_CONTROL),
    (151652, "<|vision_start|>", TOKEN_CONTROL),
    (151653, "<|vision_end|>", TOKEN_CONTROL),
    (151654, "<|vision_pad|>", TOKEN_CONTROL),
    (151655, "<|image_pad|>", TOKEN_CONTROL),
    (151656, "<|video_pad|>", TOKEN_CONTROL),
    (151657, "<tool_call>", TOKEN_USER_DEFINED),
    (151658, "</tool_call>", TOKEN_USER_DEFINED),
    (151659, "<|fim_prefix|>", TOKEN_CONTROL),
    (151660, "<|fim_middle|>", TOKEN_CONTROL),
    (151661, "<|fim_suffix|>", TOKEN_CONTROL),
    (151662, "<|fim_pad|>", TOKEN_CONTROL),
    (151663, "<|repo_name|>", TOKEN_CONTROL),
    (151664, "<|file_sep|>", TOKEN_CONTROL),
];

const SMOLLM_SPECIALS: &[Special] = &[
    (0, "<|endoftext|>", TOKEN_CONTROL),
    (1, "<|im_start|>", TOKEN_CONTROL),
    (2, "<|im_end|>", TOKEN_CONTROL),
    (3, "<repo_name>", TOKEN_CONTROL),
    (4, "<reponame>", TOKEN_CONTROL),
    (5, "<file_sep>", TOKEN_CONTROL),
    (6, "<filename>", TOKEN_CONTROL),
    (7, "<gh_stars>", TOKEN_CONTROL),
    (8, "<issue_start>", TOKEN_CONTROL),
    (9, "<issue_comment>", TOKEN_CONTROL),
    (10, "<issue_closed>", TOKEN_CONTROL),
    (11, "<jupyter_start>", TOKEN_CONTROL),
    (12, "<jupyter_text>", TOKEN_CONTROL),
    (13, "<jupyter_code>", TOKEN_CONTROL),
    (14, "<jupyter_output>", TOKEN_CONTROL),
    (15, "<jupyter_script>", TOKEN_CONTROL),
    (16, "<empty_output>", TOKEN_CONTROL),
];

const QWEN_SYSTEM: &str = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/// Layers of the real Qwen2.5-Coder-1.5B Q4_K_M file whose attn_v and
/// ffn_down are Q6_K.
const QWEN15_MORE_BITS: &[usize] = &[0, 1, 5, 6, 7, 8, 9, 10, 13, 16, 19, 21, 24, 27];
/// Layers of the real Qwen2.5-Coder-0.5B file whose attn_v is Q8_0 and
/// ffn_down Q6_K (896-wide rows fall back from K-quants to Q5_0/Q8_0).
const QWEN05_MORE_BITS: &[usize] = &[0, 1, 3, 6, 7, 8, 9, 10, 13, 16, 19, 21];

pub(super) const QWEN25_15B: ShapeSpec = ShapeSpec {
    arch: Arch::Qwen2,
    n_layers: 28,
    d_model: 1536,
    n_heads: 12,
    n_kv_heads: 2,
    ffn_dim: 8960,
    vocab_size: 151936,
    context_length: 32768,
    rope_base: 1_000_000.0,
    rms_eps: 1e-6,
    llama_extra_keys: false,
    file_type: 15,
    head: Some(QType::Q6K),
    embed: QType::Q4K,
    matrix: QType::Q4K,
    more_bits: Some((QWEN15_MORE_BITS, QType::Q6K, QType::Q6K, QType::Q4K)),
    tokenizer_pre: "qwen2",
    bos_id: 151643,
    eos_id: 151645,
    pad_id: 151643,
    specials: QWEN_SPECIALS,
    unused_from: Some(151665),
    default_system: QWEN_SYSTEM,
};

pub(super) const QWEN25_05B: ShapeSpec = ShapeSpec {
    arch: Arch::Qwen2,
    n_layers: 24,
    d_model: 896,
    n_heads: 14,
    n_kv_heads: 2,
    ffn_dim: 4864,
    vocab_size: 151936,
    context_length: 32768,
    rope_base: 1_000_000.0,
    rms_eps: 1e-6,
    llama_extra_keys: false,
    file_type: 15,
    head: Some(QType::Q8_0),
    embed: QType::Q5_0,
    matrix: QType::Q5_0,
    more_bits: Some((QWEN05_MORE_BITS, QType::Q8_0, QType::Q6K, QType::Q4K)),
    tokenizer_pre: "qwen2",
    bos_id: 151643,
    eos_id: 151645,
    pad_id: 151643,
    specials: QWEN_SPECIALS,
    unused_from: Some(151665),
    default_system: QWEN_SYSTEM,
};

pub(super) const SMOLLM2_135M: ShapeSpec = ShapeSpec {
    arch: Arch::Llama,
    n_layers: 30,
    d_model: 576,
    n_heads: 9,
    n_kv_heads: 3,
    ffn_dim: 1536,
    vocab_size: 49152,
    context_length: 8192,
    rope_base: 100_000.0,
    rms_eps: 1e-5,
    llama_extra_keys: true,
    file_type: 3,
    head: None,
    embed: QType::Q8_0,
    matrix: QType::Q4_1,
    more_bits: None,
    tokenizer_pre: "smollm",
    bos_id: 1,
    eos_id: 2,
    pad_id: 2,
    specials: SMOLLM_SPECIALS,
    unused_from: None,
    default_system: "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
};
