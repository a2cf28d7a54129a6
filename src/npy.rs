//! Reading `.npy` arrays (numpy format 1.0 / 2.0, little-endian, C order) of `f32`, `i8`,
//! `i32` and `i64`, for datasets and test references.

use crate::ir::{checked_numel, DType, Tensor};
use crate::{Error, Result};

fn corrupt(path: &str, why: impl std::fmt::Display) -> Error {
    Error::CorruptFile(format!("{path}: {why}"))
}

/// Parses `.npy` bytes into a tensor; `path` names the source in errors.
pub fn parse(bytes: &[u8], path: &str) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(corrupt(path, "not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(corrupt(path, format!("unsupported .npy version {v}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| corrupt(path, "truncated header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| corrupt(path, "header is not text"))?;
    let field = |key: &str| -> Result<&str> {
        let at = header
            .find(key)
            .ok_or_else(|| corrupt(path, format!("header lacks {key}")))?;
        Ok(header[at + key.len()..].trim_start_matches([' ', ':']))
    };
    let descr = field("'descr'")?;
    let dtype = if descr.starts_with("'<f4'") {
        DType::F32
    } else if descr.starts_with("'|i1'") {
        DType::I8
    } else if descr.starts_with("'<i4'") {
        DType::I32
    } else if descr.starts_with("'<i8'") {
        DType::I64
    } else {
        return Err(corrupt(
            path,
            format!("unsupported dtype {}", &descr[..descr.len().min(8)]),
        ));
    };
    if field("'fortran_order'")?.starts_with("True") {
        return Err(corrupt(path, "Fortran order is not supported"));
    }
    let shape = field("'shape'")?;
    let close = shape.find(')').ok_or_else(|| corrupt(path, "bad shape"))?;
    let dims = shape[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| corrupt(path, "bad shape")))
        .collect::<Result<Vec<_>>>()?;
    let numel = checked_numel(&dims)?;
    let size = dtype
        .storage_bytes(numel)
        .ok_or_else(|| corrupt(path, "size overflows"))?;
    let data = bytes
        .get(end..end + size)
        .ok_or_else(|| corrupt(path, "truncated data"))?;
    Tensor::from_le_bytes(dtype, dims, data)
}

/// Reads a `.npy` file.
pub fn read(path: impl AsRef<std::path::Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    parse(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        b.extend(data);
        b
    }

    #[test]
    fn reads_f32_and_i8_arrays() {
        let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse(&npy("<f4", "(2,)", &data), "x").unwrap();
        assert_eq!(t.as_f32().unwrap(), &[1.5, -2.0]);
        let t = parse(&npy("|i1", "(1, 2)", &[0xff, 3]), "x").unwrap();
        assert_eq!((t.dims(), t.as_i8().unwrap()), (&[1usize, 2][..], &[-1i8, 3][..]));
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let data: Vec<u8> = [1.5f32].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(parse(&npy("<f4", "(2,)", &data), "x").is_err());
        assert!(parse(&npy("<f8", "(1,)", &[0; 8]), "x").is_err());
        assert!(parse(b"\x93NUMPY\x01\x00\xff\xff", "x").is_err());
        assert!(parse(&npy("<f4", "(99999999999, 99999999999)", &[]), "x").is_err());
    }
}
