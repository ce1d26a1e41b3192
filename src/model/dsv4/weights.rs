//! The DeepSeek-V4 weights, read from an official checkpoint and checked
//! against the config: every tensor the config implies must be present with
//! its official name, dtype and shape, and no tensor may be left over.
//!
//! The `mtp.*` tensors are the DSpark draft module when the config has the
//! `dspark_*` keys (loaded and checked as strictly, see `dspark::weights`);
//! otherwise they are an MTP module this engine does not run (the base
//! V4-Flash ships MTP-1) and are skipped, unless they carry DSpark's
//! `main_proj`, which means the config lost its `dspark_*` keys.
//!
//! Matrices stay in their stored format (FP8 E4M3 + E8M0 128×128 block
//! scales, FP4 E2M1 pairs + per-32 E8M0 scales, BF16, F32) inside the memory
//! map; only the small vectors (norms, biases, mHC parameters, sinks) are
//! decoded to f32 here.

use std::collections::HashSet;
use std::path::Path;

use safetensors::Dtype;

use super::config::{Dsv4Config, ExpertDtype, LayerKind};
use super::dspark::weights::DsparkWeights;
use super::error::Dsv4Error;
use super::matrix::Matrix;
use super::take::Take;
use crate::model::safetensors_dir::SafetensorsDir;

/// One mHC site: `fn` [(2+hc)·hc, hc·hidden], `base`, and the 3 (or 1) scales.
#[derive(Debug)]
pub struct MhcWeights {
    pub mix: Matrix,
    pub base: Vec<f32>,
    pub scale: Vec<f32>,
}

/// A compressor: pools `ratio` tokens (twice that, overlapping, for CSA)
/// into one row of `dim`.
#[derive(Debug)]
pub struct CompressorWeights {
    pub ratio: usize,
    pub overlap: bool,
    pub dim: usize,
    /// [coff·dim, hidden] with coff = 2 when overlapping.
    pub wkv: Matrix,
    pub wgate: Matrix,
    /// [ratio, coff·dim].
    pub ape: Vec<f32>,
    pub norm: Vec<f32>,
}

#[derive(Debug)]
pub struct IndexerWeights {
    pub wq_b: Matrix,
    pub weights_proj: Matrix,
    pub compressor: CompressorWeights,
}

#[derive(Debug)]
pub struct AttentionWeights {
    pub sink: Vec<f32>,
    pub wq_a: Matrix,
    pub q_norm: Vec<f32>,
    pub wq_b: Matrix,
    pub wkv: Matrix,
    pub kv_norm: Vec<f32>,
    pub wo_a: Matrix,
    pub wo_b: Matrix,
    pub compressor: Option<CompressorWeights>,
    pub indexer: Option<IndexerWeights>,
}

#[derive(Debug)]
pub struct ExpertWeights {
    pub w1: Matrix,
    pub w2: Matrix,
    pub w3: Matrix,
}

/// How a layer picks its experts.
#[derive(Debug)]
pub enum Router {
    /// Hash layers: `tid2eid[token]` names the experts.
    Hash { tid2eid: Vec<u32> },
    /// Score layers: the aux-free bias shifts selection only.
    Scored { bias: Vec<f32> },
}

#[derive(Debug)]
pub struct MoeWeights {
    pub gate: Matrix,
    pub router: Router,
    pub experts: Vec<ExpertWeights>,
    pub shared: ExpertWeights,
}

#[derive(Debug)]
pub struct BlockWeights {
    pub kind: LayerKind,
    pub hc_attn: MhcWeights,
    pub hc_ffn: MhcWeights,
    pub attn_norm: Vec<f32>,
    pub ffn_norm: Vec<f32>,
    pub attn: AttentionWeights,
    pub moe: MoeWeights,
}

#[derive(Debug)]
pub struct Dsv4Weights {
    pub config: Dsv4Config,
    pub embed: Matrix,
    pub head: Matrix,
    pub norm: Vec<f32>,
    pub hc_head: MhcWeights,
    pub layers: Vec<BlockWeights>,
    /// The DSpark draft module, when the checkpoint has one.
    pub dspark: Option<DsparkWeights>,
}

impl Take<'_> {
    fn compressor(
        &mut self,
        prefix: &str,
        c: &Dsv4Config,
        ratio: usize,
        dim: usize,
        overlap: bool,
    ) -> Result<CompressorWeights, Dsv4Error> {
        let width = if overlap { 2 * dim } else { dim };
        Ok(CompressorWeights {
            ratio,
            overlap,
            dim,
            wkv: self.bf16_matrix(&format!("{prefix}.wkv"), width, c.hidden)?,
            wgate: self.bf16_matrix(&format!("{prefix}.wgate"), width, c.hidden)?,
            ape: self.f32s(&format!("{prefix}.ape"), &[ratio, width])?,
            norm: self.bf16s(&format!("{prefix}.norm.weight"), dim)?,
        })
    }

    fn expert(
        &mut self,
        prefix: &str,
        c: &Dsv4Config,
        inter: usize,
        dtype: Option<ExpertDtype>,
    ) -> Result<ExpertWeights, Dsv4Error> {
        let mut m = |w: &str, rows, cols| match dtype {
            Some(d) => self.expert_matrix(d, &format!("{prefix}.{w}"), rows, cols),
            None => self.fp8_matrix(&format!("{prefix}.{w}"), rows, cols),
        };
        Ok(ExpertWeights {
            w1: m("w1", inter, c.hidden)?,
            w2: m("w2", c.hidden, inter)?,
            w3: m("w3", inter, c.hidden)?,
        })
    }

    /// The block `{p}.*` with compress ratio `ratio`: a main layer, or a
    /// DSpark stage (ratio 0, score routing).
    pub(super) fn block(
        &mut self,
        c: &Dsv4Config,
        p: &str,
        ratio: usize,
        hash: bool,
    ) -> Result<BlockWeights, Dsv4Error> {
        let kind = LayerKind::of_ratio(ratio);
        let hd = c.head_dim;
        let compressor = match kind {
            LayerKind::Sliding => None,
            LayerKind::Csa | LayerKind::Hca => Some(self.compressor(
                &format!("{p}.attn.compressor"),
                c,
                ratio,
                hd,
                kind == LayerKind::Csa,
            )?),
        };
        let indexer = match kind {
            LayerKind::Csa => Some(IndexerWeights {
                wq_b: self.fp8_matrix(
                    &format!("{p}.attn.indexer.wq_b"),
                    c.index_heads * c.index_head_dim,
                    c.q_lora_rank,
                )?,
                weights_proj: self.bf16_matrix(
                    &format!("{p}.attn.indexer.weights_proj"),
                    c.index_heads,
                    c.hidden,
                )?,
                compressor: self.compressor(
                    &format!("{p}.attn.indexer.compressor"),
                    c,
                    ratio,
                    c.index_head_dim,
                    true,
                )?,
            }),
            _ => None,
        };
        let q_dim = c.n_heads * hd;
        let attn = AttentionWeights {
            sink: self.f32s(&format!("{p}.attn.attn_sink"), &[c.n_heads])?,
            wq_a: self.fp8_matrix(&format!("{p}.attn.wq_a"), c.q_lora_rank, c.hidden)?,
            q_norm: self.bf16s(&format!("{p}.attn.q_norm.weight"), c.q_lora_rank)?,
            wq_b: self.fp8_matrix(&format!("{p}.attn.wq_b"), q_dim, c.q_lora_rank)?,
            wkv: self.fp8_matrix(&format!("{p}.attn.wkv"), hd, c.hidden)?,
            kv_norm: self.bf16s(&format!("{p}.attn.kv_norm.weight"), hd)?,
            wo_a: self.fp8_matrix(
                &format!("{p}.attn.wo_a"),
                c.o_groups * c.o_lora_rank,
                q_dim / c.o_groups,
            )?,
            wo_b: self.fp8_matrix(
                &format!("{p}.attn.wo_b"),
                c.hidden,
                c.o_groups * c.o_lora_rank,
            )?,
            compressor,
            indexer,
        };
        let router = if hash {
            let name = format!("{p}.ffn.gate.tid2eid");
            let t = self.raw(&name, Dtype::I64, &[c.vocab_size, c.n_active_experts])?;
            let b = self.bytes(&name, t)?;
            let mut tid2eid = Vec::with_capacity(c.vocab_size * c.n_active_experts);
            for ch in b.as_slice().chunks_exact(8) {
                let e = i64::from_le_bytes(ch.try_into().expect("8-byte chunk"));
                if e < 0 || e as usize >= c.n_routed_experts {
                    return Err(Dsv4Error::Tensor {
                        dir: self.dir(),
                        tensor: name,
                        message: format!("expert id {e} outside 0..{}", c.n_routed_experts),
                    });
                }
                tid2eid.push(e as u32);
            }
            Router::Hash { tid2eid }
        } else {
            Router::Scored {
                bias: self.f32s(&format!("{p}.ffn.gate.bias"), &[c.n_routed_experts])?,
            }
        };
        let experts = (0..c.n_routed_experts)
            .map(|e| {
                self.expert(
                    &format!("{p}.ffn.experts.{e}"),
                    c,
                    c.moe_inter,
                    Some(c.expert_dtype),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let moe = MoeWeights {
            gate: self.bf16_matrix(&format!("{p}.ffn.gate"), c.n_routed_experts, c.hidden)?,
            router,
            experts,
            shared: self.expert(
                &format!("{p}.ffn.shared_experts"),
                c,
                c.n_shared_experts * c.moe_inter,
                None,
            )?,
        };
        let mix_rows = c.hc_mix_rows();
        Ok(BlockWeights {
            kind,
            hc_attn: self.mhc(&format!("{p}.hc_attn"), c, mix_rows, 3)?,
            hc_ffn: self.mhc(&format!("{p}.hc_ffn"), c, mix_rows, 3)?,
            attn_norm: self.bf16s(&format!("{p}.attn_norm.weight"), c.hidden)?,
            ffn_norm: self.bf16s(&format!("{p}.ffn_norm.weight"), c.hidden)?,
            attn,
            moe,
        })
    }
}

impl BlockWeights {
    /// The block's matrices, appended to `out`.
    pub(super) fn matrices<'a>(&'a self, out: &mut Vec<&'a Matrix>) {
        let b = self;
        let a = &b.attn;
        out.extend([
            &b.hc_attn.mix,
            &b.hc_ffn.mix,
            &a.wq_a,
            &a.wq_b,
            &a.wkv,
            &a.wo_a,
            &a.wo_b,
        ]);
        let comps = a
            .compressor
            .iter()
            .chain(a.indexer.as_ref().map(|i| &i.compressor));
        for cw in comps {
            out.extend([&cw.wkv, &cw.wgate]);
        }
        if let Some(i) = &a.indexer {
            out.extend([&i.wq_b, &i.weights_proj]);
        }
        out.push(&b.moe.gate);
        for e in b.moe.experts.iter().chain([&b.moe.shared]) {
            out.extend([&e.w1, &e.w2, &e.w3]);
        }
    }
}

impl Dsv4Weights {
    /// Every matrix (the draft module's too), for reports.
    pub fn matrices(&self) -> Vec<&Matrix> {
        let mut out = vec![&self.embed, &self.head, &self.hc_head.mix];
        for b in &self.layers {
            b.matrices(&mut out);
        }
        if let Some(d) = &self.dspark {
            d.matrices(&mut out);
        }
        out
    }

    /// DSpark stages loaded (0 without a draft module).
    pub fn dspark_stages(&self) -> usize {
        self.dspark.as_ref().map_or(0, |d| d.stages.len())
    }

    /// Opens `dir` (config.json + safetensors shards) and checks every tensor.
    pub fn load(dir: &Path) -> Result<Dsv4Weights, crate::model::error::ModelError> {
        let st = SafetensorsDir::open_checkpoint(dir)?;
        let config = Dsv4Config::from_json(&dir.join("config.json"), st.config())?;
        Ok(Dsv4Weights::from_dir(config, &st)?)
    }

    pub fn from_dir(config: Dsv4Config, st: &SafetensorsDir) -> Result<Dsv4Weights, Dsv4Error> {
        let mut t = Take {
            st,
            used: HashSet::new(),
        };
        let c = &config;
        let layers = (0..c.n_layers)
            .map(|i| {
                let ratio = c.compress_ratios[i];
                t.block(c, &format!("layers.{i}"), ratio, c.is_hash_layer(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let embed = t.bf16_matrix("embed", c.vocab_size, c.hidden)?;
        let head = t.bf16_matrix("head", c.vocab_size, c.hidden)?;
        let norm = t.bf16s("norm.weight", c.hidden)?;
        let hc_head = t.mhc("hc_head", c, c.hc_mult, 1)?;
        let dspark = DsparkWeights::load(&mut t, c)?;
        // Without a draft module the mtp.* tensors are skipped, not checked.
        let skipped = |n: &str| dspark.is_none() && n.starts_with("mtp.");
        let mut leftover: Vec<&str> = st
            .tensor_names()
            .filter(|n| !t.used.contains(*n) && !skipped(n))
            .collect();
        leftover.sort_unstable();
        if let Some(name) = leftover.first() {
            return Err(Dsv4Error::Unexpected {
                dir: st.dir().to_path_buf(),
                tensor: name.to_string(),
            });
        }
        Ok(Dsv4Weights {
            config,
            embed,
            head,
            norm,
            hc_head,
            layers,
            dspark,
        })
    }
}
