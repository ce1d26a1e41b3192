//! The GGUF byte-level parser. Every length is checked against the bytes
//! that remain before anything is allocated.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::meta::MetaValue;
use super::{GgufError, GgufFile, TensorInfo, qtype_from_ggml};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: u32 = 4;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, what: impl Into<String>) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_path_buf(),
            what: format!("{} (at byte {})", what.into(), self.pos),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.corrupt(format!("{what} runs past the end of the file")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items of at least `min_item_bytes` each, checked against
    /// what remains so hostile counts cannot force huge allocations.
    fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize, GgufError> {
        let n = self.u64(what)?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_item_bytes.max(1) as u64) > remaining {
            return Err(self.corrupt(format!("{what} {n} exceeds the file")));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str) -> Result<MetaValue, GgufError> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(key)?[0]),
            1 => MetaValue::I8(self.array::<1>(key)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => MetaValue::U32(self.u32(key)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => MetaValue::Bool(self.array::<1>(key)?[0] != 0),
            8 => MetaValue::String(self.string(key)?),
            9 => {
                let elem = self.u32(key)?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    _ => 12,
                };
                let n = self.count(min, key)?;
                match elem {
                    8 => MetaValue::StringArray(
                        (0..n).map(|_| self.string(key)).collect::<Result<_, _>>()?,
                    ),
                    5 => MetaValue::I32Array(
                        (0..n)
                            .map(|_| Ok(i32::from_le_bytes(self.array(key)?)))
                            .collect::<Result<_, GgufError>>()?,
                    ),
                    _ => MetaValue::Array(
                        (0..n)
                            .map(|_| self.value(elem, key))
                            .collect::<Result<_, _>>()?,
                    ),
                }
            }
            10 => MetaValue::U64(self.u64(key)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(
                    self.corrupt(format!("metadata `{key}` has unknown value type {other}"))
                );
            }
        })
    }
}

pub(super) fn parse(path: &Path, map: Arc<memmap2::Mmap>) -> Result<GgufFile, GgufError> {
    let buf: &[u8] = &map;
    let mut c = Cursor { buf, pos: 0, path };
    let magic: [u8; 4] = c.array("magic").map_err(|_| GgufError::BadMagic {
        path: path.to_path_buf(),
        magic: [0; 4],
    })?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic {
            path: path.to_path_buf(),
            magic,
        });
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    // A tensor entry is at least 8 (name len) + 4 + 8 + 4 + 8 bytes.
    let n_tensors = c.count(32, "tensor count")?;
    // A metadata entry is at least 8 (key len) + 4 + 1 bytes.
    let n_kv = c.count(13, "metadata count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        let ty = c.u32(&key)?;
        let v = c.value(ty, &key)?;
        metadata.insert(key, v);
    }
    let mut tensors = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let n_dims = c.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(GgufError::BadTensor {
                path: path.to_path_buf(),
                tensor: name,
                what: format!("{n_dims} dimensions (1 to {MAX_DIMS} supported)"),
            });
        }
        let dims = (0..n_dims)
            .map(|_| c.u64(&name))
            .collect::<Result<Vec<_>, _>>()?;
        let type_id = c.u32(&name)?;
        let offset = c.u64(&name)?;
        let qtype = qtype_from_ggml(type_id).map_err(|type_name| GgufError::UnsupportedType {
            path: path.to_path_buf(),
            tensor: name.clone(),
            type_id,
            type_name,
        })?;
        let bad = |what: String| GgufError::BadTensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            what,
        };
        if dims.contains(&0)
            || dims
                .iter()
                .try_fold(1u64, |a, d| a.checked_mul(*d))
                .is_none()
        {
            return Err(bad(format!("invalid dimensions {dims:?}")));
        }
        if dims[0] % qtype.block_size() as u64 != 0 {
            return Err(bad(format!(
                "innermost dimension {} is not a multiple of the {:?} block size {}",
                dims[0],
                qtype,
                qtype.block_size()
            )));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            qtype,
            offset,
        });
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => v
            .as_u64()
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| c.corrupt("general.alignment is not a power of two"))?,
    };
    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let file_len = buf.len() as u64;
    for t in &tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::BadTensor {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                what: format!("offset {} is not aligned to {alignment}", t.offset),
            });
        }
        let start = data_start.saturating_add(t.offset);
        let end = start.saturating_add(t.byte_len());
        if end > file_len {
            return Err(GgufError::TruncatedTensor {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                start,
                end,
                file_len,
            });
        }
    }
    Ok(GgufFile {
        path: path.to_path_buf(),
        map,
        version,
        metadata,
        tensors,
        data_start,
    })
}
