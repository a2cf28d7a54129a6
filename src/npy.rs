//! Reading and writing `.npy` arrays (numpy format 1.0 / 2.0, little-endian, C order) of `f32`,
//! `f16`, `i8`, `u8`, `i16`, `u16`, `i32`, `i64` and `bool`, for datasets, model inputs and
//! saved outputs.

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
    let dtype = DESCRS
        .iter()
        .find(|(d, _)| {
            descr
                .strip_prefix('\'')
                .is_some_and(|rest| rest.starts_with(d) && rest[d.len()..].starts_with('\''))
        })
        .map(|&(_, t)| t)
        .ok_or_else(|| {
            corrupt(
                path,
                format!("unsupported dtype {}", &descr[..descr.len().min(8)]),
            )
        })?;
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

/// The numpy type strings of the element types `.npy` files carry here.
const DESCRS: &[(&str, DType)] = &[
    ("<f4", DType::F32),
    ("<f2", DType::F16),
    ("|i1", DType::I8),
    ("|u1", DType::U8),
    ("<i2", DType::I16),
    ("<u2", DType::U16),
    ("<i4", DType::I32),
    ("<i8", DType::I64),
    ("|b1", DType::Bool),
];

/// Serializes a tensor as `.npy` (format 1.0; 2.0 when the header needs more than 64 KiB).
pub fn to_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let descr = DESCRS
        .iter()
        .find(|(_, d)| *d == t.dtype())
        .map(|(s, _)| *s)
        .ok_or_else(|| Error::Unsupported(format!(".npy files of {} elements", t.dtype())))?;
    let dims: Vec<String> = t.dims().iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts on a 64-byte boundary, as numpy does.
    let prefix = if header.len() + 11 > usize::from(u16::MAX) {
        12
    } else {
        10
    };
    while (prefix + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY".to_vec();
    if prefix == 10 {
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
    } else {
        bytes.extend([2, 0]);
        bytes.extend((header.len() as u32).to_le_bytes());
    }
    bytes.extend(header.as_bytes());
    bytes.extend(t.to_le_bytes());
    Ok(bytes)
}

/// Writes a tensor to a `.npy` file.
pub fn write(path: impl AsRef<std::path::Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(t)?).map_err(|e| Error::io(path.display(), e))
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
    fn written_arrays_read_back() {
        let cases = [
            Tensor::from_f32(vec![2, 3], vec![1.0, -2.5, 3.0, 0.0, 7.0, -1.0]).unwrap(),
            Tensor::from_le_bytes(DType::I64, vec![3], &[5u8; 24]).unwrap(),
            Tensor::from_le_bytes(DType::Bool, vec![1, 2], &[1, 0]).unwrap(),
            Tensor::from_le_bytes(DType::I32, vec![], &[1, 0, 0, 0]).unwrap(),
        ];
        for t in cases {
            let bytes = to_bytes(&t).unwrap();
            let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!(header_end % 64, 0);
            assert_eq!(parse(&bytes, "x").unwrap(), t);
        }
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
