//! Finding the machine's GPUs without ever letting cudarc panic: the driver
//! library's presence is checked first, then every device is queried.

use cudarc::driver::CudaContext;

use super::error::CudaError;

/// One GPU as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub index: usize,
    pub name: String,
    /// (major, minor), e.g. (9, 0) for Hopper.
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
}

impl GpuInfo {
    /// The NVRTC architecture name, e.g. `sm_90`.
    pub fn arch(&self) -> String {
        let (major, minor) = self.compute_capability;
        format!("sm_{major}{minor}")
    }
}

/// Whether `libcuda` can be loaded at all.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether `libnvrtc` can be loaded at all.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Every GPU on this machine. Fails with [`CudaError::NoDriver`] when the
/// driver library is missing; a driver with no devices gives an empty list.
pub fn probe() -> Result<Vec<GpuInfo>, CudaError> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    let count =
        CudaContext::device_count().map_err(|e| CudaError::driver("cuDeviceGetCount", e))?;
    (0..count as usize).map(info).collect()
}

/// The GPU at `index`, or [`CudaError::NoSuchDevice`].
pub fn open(index: usize) -> Result<std::sync::Arc<CudaContext>, CudaError> {
    let count = probe()?.len();
    if index >= count {
        return Err(CudaError::NoSuchDevice { index, count });
    }
    CudaContext::new(index).map_err(|e| CudaError::driver(format!("opening cuda:{index}"), e))
}

fn info(index: usize) -> Result<GpuInfo, CudaError> {
    let ctx = CudaContext::new(index)
        .map_err(|e| CudaError::driver(format!("opening cuda:{index}"), e))?;
    let what = |c: &str| format!("cuda:{index} {c}");
    Ok(GpuInfo {
        index,
        name: ctx.name().map_err(|e| CudaError::driver(what("name"), e))?,
        compute_capability: ctx
            .compute_capability()
            .map_err(|e| CudaError::driver(what("compute capability"), e))?,
        total_memory: ctx
            .total_mem()
            .map_err(|e| CudaError::driver(what("memory"), e))?,
    })
}
