//! TensorProto ⇄ [`Tensor`], including raw_data, typed fields and external data, with every
//! size from the file bounded before allocation.

use super::proto::TensorProto;
use crate::ir::{checked_numel, DType, Tensor, TensorData};
use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

fn corrupt(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::InvalidModel(format!("tensor `{name}`: {msg}"))
}

/// Converts dims from the file, rejecting negative sizes and element counts over the limit.
pub fn dims_from_proto(name: &str, dims: &[i64]) -> Result<Vec<usize>> {
    let dims: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| corrupt(name, format!("negative dimension {d}"))))
        .collect::<Result<_>>()?;
    checked_numel(&dims).map_err(|e| corrupt(name, e))?;
    Ok(dims)
}

/// Decodes a TensorProto. `base_dir` is the model file's directory, needed for external data.
pub fn tensor_from_proto(t: &TensorProto, base_dir: Option<&Path>) -> Result<Tensor> {
    let name = t.name.as_str();
    let dtype = DType::from_onnx_code(t.data_type).map_err(|e| {
        Error::Unsupported(format!(
            "tensor `{name}`: {}",
            e.to_string().trim_start_matches("unsupported: ")
        ))
    })?;
    let dims = dims_from_proto(name, &t.dims)?;
    let numel = checked_numel(&dims)?;
    if t.data_location == 1 {
        let bytes = read_external(t, dtype, numel, base_dir)?;
        return Tensor::from_le_bytes(dtype, dims, &bytes).map_err(|e| corrupt(name, e));
    }
    if !t.raw_data.is_empty() || numel == 0 {
        return Tensor::from_le_bytes(dtype, dims, &t.raw_data).map_err(|e| corrupt(name, e));
    }
    let count = |len: usize, field: &str| -> Result<()> {
        let expected = match dtype {
            DType::I4 | DType::U4 => numel.div_ceil(2),
            DType::I2 | DType::U2 => numel.div_ceil(4),
            _ => numel,
        };
        if len != expected {
            return Err(corrupt(
                name,
                format!("{field} holds {len} values, the shape needs {expected}"),
            ));
        }
        Ok(())
    };
    let data = match dtype {
        DType::F32 => {
            count(t.float_data.len(), "float_data")?;
            TensorData::F32(t.float_data.clone())
        }
        DType::I64 => {
            count(t.int64_data.len(), "int64_data")?;
            TensorData::I64(t.int64_data.clone())
        }
        DType::I32 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::I32(t.int32_data.clone())
        }
        DType::I8 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::U8 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::Bool => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect())
        }
        DType::F16 | DType::Bf16 | DType::I16 | DType::U16 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::Packed {
                dtype,
                bytes: t
                    .int32_data
                    .iter()
                    .flat_map(|&v| (v as u16).to_le_bytes())
                    .collect(),
            }
        }
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
            count(t.int32_data.len(), "int32_data")?;
            TensorData::Packed {
                dtype,
                bytes: t.int32_data.iter().map(|&v| v as u8).collect(),
            }
        }
    };
    Tensor::new(dims, data).map_err(|e| corrupt(name, e))
}

/// Reads an external-data tensor. The location must be a relative path inside `base_dir`;
/// the file must hold `offset + length` bytes, checked before anything is allocated.
fn read_external(t: &TensorProto, dtype: DType, numel: usize, base_dir: Option<&Path>) -> Result<Vec<u8>> {
    let name = t.name.as_str();
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    let location = get("location").ok_or_else(|| corrupt(name, "external data without a location"))?;
    let rel = Path::new(location);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(corrupt(
            name,
            format!(
                "external data location `{location}` must be a relative path inside the model's directory"
            ),
        ));
    }
    let base = base_dir.ok_or_else(|| {
        Error::Unsupported(format!(
            "tensor `{name}` uses external data, which needs the model to be loaded from a file"
        ))
    })?;
    let parse = |k: &str| -> Result<Option<u64>> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| corrupt(name, format!("external data {k} `{v}` is not a number")))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let expected = dtype
        .storage_bytes(numel)
        .ok_or_else(|| corrupt(name, "size overflows"))? as u64;
    let length = parse("length")?.unwrap_or(expected);
    if length != expected {
        return Err(corrupt(
            name,
            format!("external data length {length} differs from the {expected} bytes its shape needs"),
        ));
    }
    let path = base.join(rel);
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io(path.display(), e))?;
    let size = file.metadata().map_err(|e| Error::io(path.display(), e))?.len();
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(corrupt(
            name,
            format!("external data [{offset}, +{length}) lies beyond the end of `{location}` ({size} bytes)"),
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path.display(), e))?;
    let mut bytes = vec![0u8; length as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| Error::io(path.display(), e))?;
    Ok(bytes)
}

/// Encodes a tensor as a TensorProto with raw_data.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: t.dims().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        raw_data: t.to_le_bytes(),
        ..Default::default()
    }
}
