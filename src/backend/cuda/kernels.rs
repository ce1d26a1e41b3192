//! The kernel sources (`kernels/*.cu`, embedded at build time) and their
//! compilation by NVRTC for one GPU architecture, with an on-disk PTX cache.
//!
//! Each family file is compiled as `prelude.cuh` + a `#line 1` directive +
//! the file, so NVRTC's log names lines of the family file itself. The
//! cache key covers the prelude, the file, the architecture and the NVRTC
//! version, so a changed kernel or toolkit never loads stale PTX.

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx, compile_ptx_with_opts};
use sha2::{Digest, Sha256};

use super::device::nvrtc_present;
use super::error::CudaError;

const PRELUDE: &str = include_str!("../../../kernels/prelude.cuh");

/// One op family's kernel file.
#[derive(Debug, Clone, Copy)]
pub struct KernelFile {
    /// File name under `kernels/`.
    pub file: &'static str,
    pub source: &'static str,
    /// The `extern "C"` entry points the backend launches from it.
    pub entries: &'static [&'static str],
}

/// Every kernel family the backend loads.
pub const KERNEL_FILES: &[KernelFile] = &[
    KernelFile {
        file: "quant.cu",
        source: include_str!("../../../kernels/quant.cu"),
        entries: &[
            "mmv_f32",
            "mmv_f16",
            "mmv_bf16",
            "mmv_q8_0",
            "mmv_q4_1",
            "mmv_q5_0",
            "mmv_q4_k",
            "mmv_q6_k",
            "gather_rows_f32",
            "gather_rows_f16",
            "gather_rows_bf16",
            "gather_rows_q8_0",
            "gather_rows_q4_1",
            "gather_rows_q5_0",
            "gather_rows_q4_k",
            "gather_rows_q6_k",
        ],
    },
    KernelFile {
        file: "norm.cu",
        source: include_str!("../../../kernels/norm.cu"),
        entries: &["rms_norm"],
    },
    KernelFile {
        file: "rope.cu",
        source: include_str!("../../../kernels/rope.cu"),
        entries: &["rope"],
    },
    KernelFile {
        file: "elementwise.cu",
        source: include_str!("../../../kernels/elementwise.cu"),
        entries: &["add_bias", "add_into", "silu_mul", "select_rows"],
    },
    KernelFile {
        file: "attention.cu",
        source: include_str!("../../../kernels/attention.cu"),
        entries: &["kv_store", "paged_attention"],
    },
    KernelFile {
        file: "dsv4_matmul.cu",
        source: include_str!("../../../kernels/dsv4_matmul.cu"),
        entries: &[
            "dsv4_matmul_fp8",
            "dsv4_matmul_fp4",
            "dsv4_matmul_bf16",
            "dsv4_matmul_f32",
        ],
    },
];

impl KernelFile {
    /// The text NVRTC compiles.
    fn full_source(&self) -> String {
        format!("{PRELUDE}\n#line 1 \"{}\"\n{}", self.file, self.source)
    }
}

/// NVRTC's version, as (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above) and both pointers are
    // valid for the call.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| CudaError::driver("nvrtcVersion", e))?;
    Ok((major, minor))
}

/// Compiles one kernel file to PTX for `arch` (e.g. `sm_90`), or loads it
/// from the cache. A compile error carries the file name and NVRTC's log.
pub fn compile(kf: &KernelFile, arch: &str) -> Result<String, CudaError> {
    let version = nvrtc_version()?;
    let source = kf.full_source();
    let key = cache_key(&source, arch, version);
    let cached = crate::cache::cache_dir()
        .join("ptx")
        .join(format!("{}-{key}.ptx", kf.file));
    if let Ok(ptx) = std::fs::read_to_string(&cached) {
        return Ok(ptx);
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "-std=c++17".into()],
        name: Some(kf.file.to_string()),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(&source, opts)
        .map_err(|e| compile_error(kf.file, arch, e))?
        .to_src();
    // A cache that cannot be written only costs the next start a compile.
    if let Some(dir) = cached.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let tmp = cached.with_extension("ptx.partial");
        if std::fs::write(&tmp, &ptx).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    Ok(ptx)
}

/// Compiles `kf` for `arch` as a loadable module.
pub fn compile_module(kf: &KernelFile, arch: &str) -> Result<Ptx, CudaError> {
    compile(kf, arch).map(Ptx::from_src)
}

fn compile_error(file: &str, arch: &str, e: CompileError) -> CudaError {
    let log = match e {
        CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
        other => format!("{other:?}"),
    };
    CudaError::Compile {
        file: file.to_string(),
        arch: arch.to_string(),
        log,
    }
}

fn cache_key(source: &str, arch: &str, version: (i32, i32)) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update(format!("\0{arch}\0{}.{}", version.0, version.1).as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
