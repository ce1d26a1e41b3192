//! Turning the spec's `devices` into the concrete devices a job's engines
//! run on, before any work: `cuda:all` becomes every GPU the driver
//! reports, each `cuda:N` is checked to exist.
//!
//! Invariants: a job that names a GPU never runs on the CPU instead; a
//! missing driver, a missing GPU or `cuda:all` on a machine without one is a
//! [`DeviceError`]. A CPU-only job never touches the CUDA driver. The probe
//! is a parameter, so the rules are tested without GPUs.

use std::fmt;

use super::cuda::{CudaError, GpuInfo};
use super::device::{Device, DeviceSpec};

/// Why a job cannot have the devices it names.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("devices: {0}")]
    Cuda(#[from] CudaError),
    #[error("devices: `cuda:all` found no GPU: the CUDA driver reports 0 devices")]
    NoGpus,
    /// The spec's rules refuse an empty list; this covers lists given to
    /// the library directly.
    #[error("devices: no device to run on")]
    NoDevices,
    /// A draft model or DSpark drafts inside one CPU engine; the spec's own
    /// rule (`speculation.method` with `devices`) covers jobs, this covers
    /// engine lists given to the library directly.
    #[error("speculation.method `{method}` runs on one CPU engine only (`devices: [cpu]`)")]
    SpeculationNeedsOneCpuEngine { method: &'static str },
}

impl DeviceError {
    /// A failed driver call may be the machine's passing trouble; everything
    /// else is the job naming what this machine does not have.
    pub fn is_retriable(&self) -> bool {
        matches!(self, DeviceError::Cuda(CudaError::Driver { .. }))
    }
}

/// One engine's device, with what the driver said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDevice {
    pub device: Device,
    /// The GPU's description; `None` for the CPU.
    pub gpu: Option<GpuInfo>,
}

impl fmt::Display for ResolvedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.gpu {
            None => write!(f, "{}", self.device),
            Some(g) => write!(
                f,
                "{} ({}, {}, {:.1} GiB)",
                self.device,
                g.name,
                g.arch(),
                g.total_memory as f64 / (1u64 << 30) as f64
            ),
        }
    }
}

/// The devices `spec` names, in its order; `probe` lists the GPUs and is
/// called only when the spec names one.
pub fn resolve(
    spec: &DeviceSpec,
    probe: impl FnOnce() -> Result<Vec<GpuInfo>, CudaError>,
) -> Result<Vec<ResolvedDevice>, DeviceError> {
    let list = match spec {
        DeviceSpec::List(list) if list.is_empty() => return Err(DeviceError::NoDevices),
        DeviceSpec::List(list) if !spec.wants_cuda() => {
            return Ok(list.iter().map(|&device| cpu(device)).collect());
        }
        DeviceSpec::List(list) => Some(list),
        DeviceSpec::AllCuda => None,
    };
    let gpus = probe()?;
    let on_gpu = |gpu: &GpuInfo| ResolvedDevice {
        device: Device::Cuda(gpu.index),
        gpu: Some(gpu.clone()),
    };
    match list {
        None if gpus.is_empty() => Err(DeviceError::NoGpus),
        None => Ok(gpus.iter().map(on_gpu).collect()),
        Some(list) => {
            list.iter()
                .map(|&device| match device {
                    Device::Cpu => Ok(cpu(device)),
                    Device::Cuda(index) => gpus.get(index).map(on_gpu).ok_or(DeviceError::Cuda(
                        CudaError::NoSuchDevice {
                            index,
                            count: gpus.len(),
                        },
                    )),
                })
                .collect()
        }
    }
}

/// [`resolve`] for an explicit device list.
pub fn resolve_devices(
    devices: &[Device],
    probe: impl FnOnce() -> Result<Vec<GpuInfo>, CudaError>,
) -> Result<Vec<ResolvedDevice>, DeviceError> {
    resolve(&DeviceSpec::List(devices.to_vec()), probe)
}

fn cpu(device: Device) -> ResolvedDevice {
    ResolvedDevice { device, gpu: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(n: usize) -> Vec<GpuInfo> {
        (0..n)
            .map(|index| GpuInfo {
                index,
                name: "Test GPU".to_string(),
                compute_capability: (9, 0),
                total_memory: 80 << 30,
            })
            .collect()
    }

    fn list(devices: &[Device]) -> DeviceSpec {
        DeviceSpec::List(devices.to_vec())
    }

    fn names(r: &[ResolvedDevice]) -> Vec<String> {
        r.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_cpu_never_asks_the_driver() {
        let r = resolve(&DeviceSpec::default(), || panic!("no probe for the CPU")).unwrap();
        assert_eq!(names(&r), ["cpu"]);
        let e = resolve_devices(&[], || panic!("no probe")).unwrap_err();
        assert!(matches!(e, DeviceError::NoDevices));
    }

    #[test]
    fn cuda_all_is_every_gpu_and_needs_one() {
        let r = resolve(&DeviceSpec::AllCuda, || Ok(gpus(2))).unwrap();
        assert_eq!(
            names(&r),
            [
                "cuda:0 (Test GPU, sm_90, 80.0 GiB)",
                "cuda:1 (Test GPU, sm_90, 80.0 GiB)"
            ]
        );
        let e = resolve(&DeviceSpec::AllCuda, || Ok(gpus(0))).unwrap_err();
        assert!(matches!(e, DeviceError::NoGpus));
        assert!(!e.is_retriable());
    }

    #[test]
    fn named_gpus_must_exist_in_the_named_order() {
        let spec = list(&[Device::Cuda(1), Device::Cuda(0)]);
        let r = resolve(&spec, || Ok(gpus(2))).unwrap();
        assert_eq!(
            r.iter().map(|d| d.device).collect::<Vec<_>>(),
            [Device::Cuda(1), Device::Cuda(0)]
        );
        let e = resolve(&list(&[Device::Cuda(0), Device::Cuda(2)]), || Ok(gpus(2))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "devices: GPU cuda:2 does not exist: this machine has 2 CUDA device(s)"
        );
        assert!(!e.is_retriable());
    }

    #[test]
    fn no_driver_fails_and_never_falls_back() {
        for spec in [DeviceSpec::AllCuda, list(&[Device::Cuda(0)])] {
            let e = resolve(&spec, || Err(CudaError::NoDriver)).unwrap_err();
            assert!(matches!(e, DeviceError::Cuda(CudaError::NoDriver)), "{e}");
            assert!(e.to_string().starts_with("devices: no CUDA driver"), "{e}");
            assert!(!e.is_retriable());
        }
        let e = resolve(&DeviceSpec::AllCuda, || {
            Err(CudaError::driver("cuDeviceGetCount", "CUDA_ERROR_UNKNOWN"))
        })
        .unwrap_err();
        assert!(e.is_retriable(), "{e}");
    }
}
