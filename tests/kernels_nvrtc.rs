//! Every `kernels/*.cu` file compiles with NVRTC, and its PTX defines every
//! entry point the CUDA backend launches. Needs libnvrtc, not a GPU:
//! `scripts/test.sh` installs the `nvidia-cuda-nvrtc` wheel (pinned to the
//! device machine's CUDA 13.0) and puts it on `LD_LIBRARY_PATH`. A missing
//! NVRTC fails this test rather than skipping it, so CI cannot pass without
//! compiling the kernels.

use specbatch::backend::cuda::kernels::{KERNEL_FILES, compile, nvrtc_version};

/// Hopper (the H200 the device checks run on) and Ampere.
const ARCHES: [&str; 2] = ["sm_90", "sm_80"];

#[test]
fn every_kernel_file_compiles_and_defines_its_entries() {
    let version = nvrtc_version().expect("NVRTC must be loadable (see scripts/test.sh)");
    eprintln!("NVRTC {}.{}", version.0, version.1);
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cu"))
        .collect();
    for f in &files {
        assert!(
            KERNEL_FILES.iter().any(|k| k.file == f),
            "kernels/{f} is not in KERNEL_FILES, so the backend never loads it"
        );
    }
    for kf in KERNEL_FILES {
        for arch in ARCHES {
            let ptx = compile(kf, arch).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                ptx.contains(&format!(".target {arch}")),
                "{}: wrong target",
                kf.file
            );
            for entry in kf.entries {
                assert!(
                    ptx.contains(&format!(".entry {entry}(")),
                    "kernels/{} for {arch} has no entry point {entry}",
                    kf.file
                );
            }
        }
    }
}
