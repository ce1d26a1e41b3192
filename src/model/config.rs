//! Shape and hyper-parameters of the dense decoder family (llama, qwen2),
//! read from GGUF metadata or an HF `config.json`.

/// Supported dense architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// SmolLM2 and friends: no QKV bias, tied or untied head.
    Llama,
    /// Qwen2 / Qwen2.5: QKV bias, untied head.
    Qwen2,
}

impl Arch {
    pub fn parse(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1). llama GGUF files store Q/K rows permuted for this.
    Interleaved,
    /// Pairs (i, i + d/2) ("rotate half"): HF layout, and qwen2 GGUF files.
    Neox,
}

/// Everything the forward pass needs to know about a dense model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseConfig {
    pub arch: Arch,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rope_base: f32,
    /// Leading dims of each head that RoPE rotates (the whole head here).
    pub rope_dims: usize,
    pub rope_style: RopeStyle,
    pub rms_eps: f32,
    pub qkv_bias: bool,
    pub tied_head: bool,
}

impl DenseConfig {
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Checks the internal consistency a loader cannot express in types.
    pub fn check(&self) -> Result<(), String> {
        if self.n_layers == 0 || self.d_model == 0 || self.n_heads == 0 || self.n_kv_heads == 0 {
            return Err("layer, width and head counts must be positive".into());
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(format!(
                "head count {} is not a multiple of the KV head count {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2)
            || self.rope_dims > self.head_dim
            || !self.rope_dims.is_multiple_of(2)
        {
            return Err(format!(
                "head dim {} / rope dims {} must be even with rope dims <= head dim",
                self.head_dim, self.rope_dims
            ));
        }
        Ok(())
    }
}
