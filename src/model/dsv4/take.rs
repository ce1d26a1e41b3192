//! Reading one checkpoint tensor by name with the dtype and shape the config
//! implies, into the form the model keeps it in (a [`Matrix`] over the
//! memory map, or decoded f32 vectors for the small ones).
//!
//! Invariant: every tensor taken is remembered, so the loader can name the
//! first tensor nothing took (a checkpoint with a stray tensor is refused,
//! not silently half-used).

use std::collections::HashSet;

use safetensors::Dtype;

use super::codec::bf16_bits_to_f32;
use super::config::{Dsv4Config, ExpertDtype};
use super::error::Dsv4Error;
use super::matrix::{Bytes, FP4_GROUP, FP8_BLOCK, Matrix, WeightFormat};
use super::weights::MhcWeights;
use crate::model::safetensors_dir::{RawTensor, SafetensorsDir};

/// Takes tensors by name with their expected dtype and shape, remembering
/// which were taken so leftovers can be reported.
pub(super) struct Take<'a> {
    pub(super) st: &'a SafetensorsDir,
    pub(super) used: HashSet<String>,
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

impl Take<'_> {
    pub(super) fn dir(&self) -> std::path::PathBuf {
        self.st.dir().to_path_buf()
    }

    pub(super) fn raw(
        &mut self,
        name: &str,
        dtype: Dtype,
        shape: &[usize],
    ) -> Result<RawTensor, Dsv4Error> {
        let t = self.st.raw(name).ok_or_else(|| Dsv4Error::MissingTensor {
            dir: self.dir(),
            tensor: name.to_string(),
        })?;
        if t.dtype != dtype {
            return Err(Dsv4Error::Dtype {
                dir: self.dir(),
                tensor: name.to_string(),
                expected: dtype_name(dtype),
                found: dtype_name(t.dtype),
            });
        }
        if t.shape != shape {
            return Err(Dsv4Error::Shape {
                dir: self.dir(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        self.used.insert(name.to_string());
        Ok(t)
    }

    pub(super) fn bytes(&self, name: &str, t: RawTensor) -> Result<Bytes, Dsv4Error> {
        Bytes::new(t.storage, t.offset, t.len).ok_or_else(|| Dsv4Error::Tensor {
            dir: self.dir(),
            tensor: name.to_string(),
            message: "data outside its shard".into(),
        })
    }

    pub(super) fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        format: WeightFormat,
        data: RawTensor,
    ) -> Result<Matrix, Dsv4Error> {
        let data = self.bytes(name, data)?;
        Matrix::new(name, rows, cols, format, data).map_err(|e| Dsv4Error::Tensor {
            dir: self.dir(),
            tensor: name.to_string(),
            message: e.to_string(),
        })
    }

    pub(super) fn f32s(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Dsv4Error> {
        let t = self.raw(name, Dtype::F32, shape)?;
        let b = self.bytes(name, t)?;
        Ok(b.as_slice()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub(super) fn bf16s(&mut self, name: &str, len: usize) -> Result<Vec<f32>, Dsv4Error> {
        let t = self.raw(name, Dtype::BF16, &[len])?;
        let b = self.bytes(name, t)?;
        Ok(b.as_slice()
            .chunks_exact(2)
            .map(|c| bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect())
    }

    /// `{prefix}.weight` in BF16.
    pub(super) fn bf16_matrix(
        &mut self,
        prefix: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, Dsv4Error> {
        let name = format!("{prefix}.weight");
        let t = self.raw(&name, Dtype::BF16, &[rows, cols])?;
        self.matrix(&name, rows, cols, WeightFormat::Bf16, t)
    }

    /// `{prefix}.weight` in F8_E4M3 with `{prefix}.scale` per 128×128 block.
    pub(super) fn fp8_matrix(
        &mut self,
        prefix: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, Dsv4Error> {
        let (wn, sn) = (format!("{prefix}.weight"), format!("{prefix}.scale"));
        let w = self.raw(&wn, Dtype::F8_E4M3, &[rows, cols])?;
        let grid = [rows.div_ceil(FP8_BLOCK), cols.div_ceil(FP8_BLOCK)];
        let s = self.raw(&sn, Dtype::F8_E8M0, &grid)?;
        let scales = self.bytes(&sn, s)?;
        self.matrix(&wn, rows, cols, WeightFormat::Fp8 { scales }, w)
    }

    /// `{prefix}.weight` as E2M1 pairs in I8 with `{prefix}.scale` per 32 inputs.
    pub(super) fn fp4_matrix(
        &mut self,
        prefix: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, Dsv4Error> {
        let (wn, sn) = (format!("{prefix}.weight"), format!("{prefix}.scale"));
        let w = self.raw(&wn, Dtype::I8, &[rows, cols / 2])?;
        let s = self.raw(&sn, Dtype::F8_E8M0, &[rows, cols / FP4_GROUP])?;
        let scales = self.bytes(&sn, s)?;
        self.matrix(&wn, rows, cols, WeightFormat::Fp4 { scales }, w)
    }

    pub(super) fn expert_matrix(
        &mut self,
        dtype: ExpertDtype,
        prefix: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix, Dsv4Error> {
        match dtype {
            ExpertDtype::Fp4 => self.fp4_matrix(prefix, rows, cols),
            ExpertDtype::Fp8 => self.fp8_matrix(prefix, rows, cols),
        }
    }

    pub(super) fn mhc(
        &mut self,
        prefix: &str,
        c: &Dsv4Config,
        rows: usize,
        scales: usize,
    ) -> Result<MhcWeights, Dsv4Error> {
        let name = format!("{prefix}_fn");
        let t = self.raw(&name, Dtype::F32, &[rows, c.hc_width()])?;
        Ok(MhcWeights {
            mix: self.matrix(&name, rows, c.hc_width(), WeightFormat::F32, t)?,
            base: self.f32s(&format!("{prefix}_base"), &[rows])?,
            scale: self.f32s(&format!("{prefix}_scale"), &[scales])?,
        })
    }
}
