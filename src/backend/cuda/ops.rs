//! Typed launches of the kernels in `kernels/*.cu` on one stream.
//!
//! Each method states the shapes it expects; callers size the buffers (the
//! executor checks the batch first), so the launches themselves never read
//! out of bounds. Grid sizes follow the kernels' own thread mapping, noted
//! at each kernel.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, LaunchConfig,
    PushKernelArg,
};

use super::error::CudaError;
use super::kernels::{KERNEL_FILES, compile_module};
use crate::model::dsv4::matrix::WeightFormat;
use crate::model::quant::QType;

/// Threads per block of the one-thread-per-element kernels.
const ELEMENTWISE_THREADS: u32 = 256;
/// Warps per block of `mmv_*` (its `MMV_WARPS`): one output row per warp.
const MMV_WARPS: u32 = 4;
/// Warps per block of `paged_attention`: one (token, head) per warp.
const ATTENTION_WARPS: u32 = 4;
/// Warps per block of `dsv4_matmul_*`: one weight row per warp.
const DSV4_WARPS: u32 = 4;
/// Largest head the attention kernel holds in registers (`MAX_HEAD_DIM`).
pub const MAX_HEAD_DIM: usize = 256;

/// Every kernel, loaded for one GPU, and the stream they run on.
pub struct Ops {
    pub stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
}

/// Where a step's tokens read and write the paged KV cache.
pub struct KvGeometry<'a> {
    /// Cache slot (block * block_size + pos % block_size) of each token.
    pub slots: &'a CudaSlice<u32>,
    /// Position of each token.
    pub pos: &'a CudaSlice<u32>,
    /// Start of each token's sequence in `block_tables`.
    pub table_start: &'a CudaSlice<u32>,
    pub block_tables: &'a CudaSlice<u32>,
    pub block_size: usize,
    /// Elements before this layer's part of each cache.
    pub layer_offset: usize,
}

/// Attention shape.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

fn elementwise(total: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((total as u32).div_ceil(ELEMENTWISE_THREADS), 1, 1),
        block_dim: (ELEMENTWISE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The kernel-name suffix of a stored format.
fn format_name(q: QType) -> &'static str {
    match q {
        QType::F32 => "f32",
        QType::F16 => "f16",
        QType::BF16 => "bf16",
        QType::Q8_0 => "q8_0",
        QType::Q4_1 => "q4_1",
        QType::Q5_0 => "q5_0",
        QType::Q4K => "q4_k",
        QType::Q6K => "q6_k",
    }
}

fn launched(r: Result<(), cudarc::driver::DriverError>, kernel: &str) -> Result<(), CudaError> {
    r.map_err(|e| CudaError::driver(format!("launching {kernel}"), e))
}

impl Ops {
    /// Compiles (or loads from the cache) and loads every kernel for `ctx`'s GPU.
    pub fn load(ctx: &Arc<CudaContext>) -> Result<Ops, CudaError> {
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| CudaError::driver("compute capability", e))?;
        let arch = format!("sm_{major}{minor}");
        let mut funcs = HashMap::new();
        for kf in KERNEL_FILES {
            let module = ctx
                .load_module(compile_module(kf, &arch)?)
                .map_err(|e| CudaError::driver(format!("loading kernels/{}", kf.file), e))?;
            for &entry in kf.entries {
                let f = module
                    .load_function(entry)
                    .map_err(|e| CudaError::driver(format!("kernels/{}: {entry}", kf.file), e))?;
                funcs.insert(entry, f);
            }
        }
        Ok(Ops {
            stream: ctx.default_stream(),
            funcs,
        })
    }

    fn func(&self, name: &str) -> &CudaFunction {
        // Every entry of KERNEL_FILES was loaded in `load`, and the names
        // used below are entries (tests/kernels_nvrtc.rs checks the PTX).
        &self.funcs[name]
    }

    /// `y[m][n] = Σ_k w[n][k] · x[m][k]` for a `n_rows × k` weight stored as `q`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        q: QType,
        w: &CudaSlice<u8>,
        n_rows: usize,
        k: usize,
        x: &CudaView<f32>,
        m: usize,
        y: &mut CudaViewMut<f32>,
    ) -> Result<(), CudaError> {
        let name = format!("mmv_{}", format_name(q));
        let cfg = LaunchConfig {
            grid_dim: ((n_rows as u32).div_ceil(MMV_WARPS), 1, 1),
            block_dim: (MMV_WARPS * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (n_rows, k, m) = (n_rows as i32, k as i32, m as i32);
        let mut b = self.stream.launch_builder(self.func(&name));
        b.arg(w).arg(&n_rows).arg(&k).arg(x).arg(&m).arg(y);
        // SAFETY: argument types and order match `mmv` in quant.cu; the
        // caller sized x (m × k), y (m × n_rows) and w (n_rows rows of q).
        launched(unsafe { b.launch(cfg) }.map(|_| ()), &name)
    }

    /// DeepSeek-V4's `y[i][r] = Σ_c w[r][c] · x[i][c]` for a `rows × cols`
    /// matrix in `format` (`scales` for FP8 and FP4; any buffer otherwise),
    /// in the CPU's exact summation order.
    #[allow(clippy::too_many_arguments)]
    pub fn dsv4_matmul(
        &self,
        format: &WeightFormat,
        w: &CudaSlice<u8>,
        scales: &CudaSlice<u8>,
        rows: usize,
        cols: usize,
        x: &CudaView<f32>,
        m: usize,
        y: &mut CudaViewMut<f32>,
    ) -> Result<(), CudaError> {
        let name = match format {
            WeightFormat::Fp8 { .. } => "dsv4_matmul_fp8",
            WeightFormat::Fp4 { .. } => "dsv4_matmul_fp4",
            WeightFormat::Bf16 => "dsv4_matmul_bf16",
            WeightFormat::F32 => "dsv4_matmul_f32",
        };
        let cfg = LaunchConfig {
            grid_dim: ((rows as u32).div_ceil(DSV4_WARPS), 1, 1),
            block_dim: (DSV4_WARPS * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (r, c, m) = (rows as i32, cols as i32, m as i32);
        let mut b = self.stream.launch_builder(self.func(name));
        b.arg(w).arg(scales).arg(&r).arg(&c).arg(x).arg(&m).arg(y);
        // SAFETY: matches dsv4_matmul.cu; w and scales hold what a checked
        // `Matrix` of this shape stores.
        launched(unsafe { b.launch(cfg) }.map(|_| ()), name)
    }

    /// `out[t] = w[ids[t]]` decoded to f32 (`k` values per row).
    pub fn gather_rows(
        &self,
        q: QType,
        w: &CudaSlice<u8>,
        k: usize,
        ids: &CudaSlice<u32>,
        n: usize,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        let name = format!("gather_rows_{}", format_name(q));
        let cfg = LaunchConfig {
            grid_dim: (n as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let k = k as i32;
        let mut b = self.stream.launch_builder(self.func(&name));
        b.arg(w).arg(&k).arg(ids).arg(out);
        // SAFETY: matches `gather_rows` in quant.cu; ids are checked token ids.
        launched(unsafe { b.launch(cfg) }.map(|_| ()), &name)
    }

    /// RMSNorm of `rows` rows of `w.len()` values.
    pub fn rms_norm(
        &self,
        x: &CudaView<f32>,
        w: &CudaSlice<f32>,
        eps: f32,
        rows: usize,
        out: &mut CudaViewMut<f32>,
    ) -> Result<(), CudaError> {
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let d = w.len() as i32;
        let mut b = self.stream.launch_builder(self.func("rms_norm"));
        b.arg(x).arg(w).arg(&eps).arg(&d).arg(out);
        // SAFETY: matches norm.cu; 256 threads is its NORM_THREADS.
        launched(unsafe { b.launch(cfg) }.map(|_| ()), "rms_norm")
    }

    /// RoPE in place over `n_tokens` rows of `n_heads` heads.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        x: &mut CudaViewMut<f32>,
        pos: &CudaSlice<u32>,
        freqs: &CudaSlice<f32>,
        n_tokens: usize,
        n_heads: usize,
        head_dim: usize,
        neox: bool,
    ) -> Result<(), CudaError> {
        let half = freqs.len();
        let cfg = elementwise(n_tokens * n_heads * half);
        let (nt, nh, hd, hf, nx) = (
            n_tokens as i32,
            n_heads as i32,
            head_dim as i32,
            half as i32,
            i32::from(neox),
        );
        let mut b = self.stream.launch_builder(self.func("rope"));
        b.arg(x)
            .arg(pos)
            .arg(freqs)
            .arg(&nt)
            .arg(&nh)
            .arg(&hd)
            .arg(&hf)
            .arg(&nx);
        // SAFETY: matches rope.cu; x holds n_tokens × n_heads × head_dim.
        launched(unsafe { b.launch(cfg) }.map(|_| ()), "rope")
    }

    /// `x[r][i] += b[i]` over `total` elements.
    pub fn add_bias(
        &self,
        x: &mut CudaViewMut<f32>,
        bias: &CudaSlice<f32>,
        total: usize,
    ) -> Result<(), CudaError> {
        let (cols, n) = (bias.len() as i32, total as i32);
        let mut b = self.stream.launch_builder(self.func("add_bias"));
        b.arg(x).arg(bias).arg(&cols).arg(&n);
        // SAFETY: matches elementwise.cu.
        launched(
            unsafe { b.launch(elementwise(total)) }.map(|_| ()),
            "add_bias",
        )
    }

    /// `x += y` over `total` elements.
    pub fn add_into(
        &self,
        x: &mut CudaViewMut<f32>,
        y: &CudaView<f32>,
        total: usize,
    ) -> Result<(), CudaError> {
        let n = total as i32;
        let mut b = self.stream.launch_builder(self.func("add_into"));
        b.arg(x).arg(y).arg(&n);
        // SAFETY: matches elementwise.cu.
        launched(
            unsafe { b.launch(elementwise(total)) }.map(|_| ()),
            "add_into",
        )
    }

    /// `gate = silu(gate) · up` over `total` elements.
    pub fn silu_mul(
        &self,
        gate: &mut CudaViewMut<f32>,
        up: &CudaView<f32>,
        total: usize,
    ) -> Result<(), CudaError> {
        let n = total as i32;
        let mut b = self.stream.launch_builder(self.func("silu_mul"));
        b.arg(gate).arg(up).arg(&n);
        // SAFETY: matches elementwise.cu.
        launched(
            unsafe { b.launch(elementwise(total)) }.map(|_| ()),
            "silu_mul",
        )
    }

    /// `out[j] = x[rows[j]]` for rows of `cols` values.
    pub fn select_rows(
        &self,
        x: &CudaView<f32>,
        rows: &CudaSlice<u32>,
        cols: usize,
        out: &mut CudaViewMut<f32>,
    ) -> Result<(), CudaError> {
        let total = rows.len() * cols;
        let (c, n) = (cols as i32, total as i32);
        let mut b = self.stream.launch_builder(self.func("select_rows"));
        b.arg(x).arg(rows).arg(&c).arg(&n).arg(out);
        // SAFETY: matches elementwise.cu; rows index rows of x.
        launched(
            unsafe { b.launch(elementwise(total)) }.map(|_| ()),
            "select_rows",
        )
    }

    /// Stores the step's K and V rows into the paged cache.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        k: &CudaView<f32>,
        v: &CudaView<f32>,
        geo: &KvGeometry<'_>,
        n_tokens: usize,
        kv_dim: usize,
        k_cache: &mut CudaSlice<u16>,
        v_cache: &mut CudaSlice<u16>,
    ) -> Result<(), CudaError> {
        let (nt, kd) = (n_tokens as i32, kv_dim as i32);
        let mut b = self.stream.launch_builder(self.func("kv_store"));
        b.arg(k)
            .arg(v)
            .arg(geo.slots)
            .arg(&nt)
            .arg(&kd)
            .arg(&geo.layer_offset)
            .arg(k_cache)
            .arg(v_cache);
        // SAFETY: matches attention.cu; slots lie inside the cache (checked
        // block ids).
        launched(
            unsafe { b.launch(elementwise(n_tokens * kv_dim)) }.map(|_| ()),
            "kv_store",
        )
    }

    /// Causal attention of every token's query heads over its sequence's
    /// cached positions `0..=pos`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &CudaView<f32>,
        k_cache: &CudaSlice<u16>,
        v_cache: &CudaSlice<u16>,
        geo: &KvGeometry<'_>,
        n_tokens: usize,
        h: Heads,
        out: &mut CudaViewMut<f32>,
    ) -> Result<(), CudaError> {
        let warps = (n_tokens * h.n_heads) as u32;
        let cfg = LaunchConfig {
            grid_dim: (warps.div_ceil(ATTENTION_WARPS), 1, 1),
            block_dim: (ATTENTION_WARPS * 32, 1, 1),
            shared_mem_bytes: 0,
        };
        let scale = 1.0 / (h.head_dim as f32).sqrt();
        let (nt, nh, nkv, hd, bs) = (
            n_tokens as i32,
            h.n_heads as i32,
            h.n_kv_heads as i32,
            h.head_dim as i32,
            geo.block_size as i32,
        );
        let mut b = self.stream.launch_builder(self.func("paged_attention"));
        b.arg(q)
            .arg(k_cache)
            .arg(v_cache)
            .arg(&geo.layer_offset)
            .arg(geo.block_tables)
            .arg(geo.table_start)
            .arg(geo.pos)
            .arg(&nt)
            .arg(&nh)
            .arg(&nkv)
            .arg(&hd)
            .arg(&bs)
            .arg(&scale)
            .arg(out);
        // SAFETY: matches attention.cu; head_dim ≤ MAX_HEAD_DIM (checked at
        // executor start) and every table covers its token's position.
        launched(unsafe { b.launch(cfg) }.map(|_| ()), "paged_attention")
    }
}
