//! Integers stored in their own width ([`PackedInts`]), in libxq's storage order, which is
//! ONNX's.

use super::types::IntType;
use crate::{Error, Result};

/// The integers of one tensor in libxq's storage order, which is ONNX's: element `i`
/// (row-major) of a `b`-bit type (`b` = 2 or 4) occupies bits `[(i·b) mod 8, +b)` of byte
/// `⌊i·b/8⌋`, low bits first; signed values are two's complement within their field, and
/// the last byte is zero-padded. 8-bit types use one byte per element (the `i8` or `u8`
/// bytes, unchanged) and 32-bit types four little-endian bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedInts {
    storage: IntType,
    len: usize,
    bytes: Vec<u8>,
}

impl PackedInts {
    /// Packs `values`; fails if one is outside the range of `storage`.
    pub fn pack(storage: IntType, values: &[i32]) -> Result<Self> {
        let range = storage.full_range();
        let mut bytes = vec![0u8; byte_len(storage, values.len())];
        for (i, &v) in values.iter().enumerate() {
            if v < range.qmin() || v > range.qmax() {
                return Err(Error::invalid_argument(
                    "values",
                    format!("value {v} at {i} is outside [{}, {}]", range.qmin(), range.qmax()),
                ));
            }
            put(storage, &mut bytes, i, v);
        }
        Ok(PackedInts {
            storage,
            len: values.len(),
            bytes,
        })
    }

    /// `len` integers of `storage` already in storage order; fails unless `bytes` has
    /// exactly the length they need.
    pub fn from_bytes(storage: IntType, len: usize, bytes: Vec<u8>) -> Result<Self> {
        let need = len
            .checked_mul(usize::from(storage.bits()))
            .map(|bits| bits.div_ceil(8));
        if need != Some(bytes.len()) {
            return Err(Error::ShapeMismatch(format!(
                "{len} {}-bit values need {need:?} bytes, got {}",
                storage.bits(),
                bytes.len()
            )));
        }
        Ok(PackedInts { storage, len, bytes })
    }

    /// The integer type.
    pub fn storage(&self) -> IntType {
        self.storage
    }

    /// Number of integers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no integers.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Integer `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<i32> {
        (i < self.len).then(|| unpack(self.storage, &self.bytes, i))
    }

    /// The stored bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The stored bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes of row `r` of rows of `row_len` integers, when a row starts on a byte
    /// boundary (`row_len · bits` a multiple of 8) and lies inside the data.
    pub fn row(&self, r: usize, row_len: usize) -> Option<&[u8]> {
        let bits = usize::from(self.storage.bits());
        let row_bits = row_len.checked_mul(bits)?;
        if !row_bits.is_multiple_of(8) || r.checked_add(1)?.checked_mul(row_len)? > self.len {
            return None;
        }
        let row_bytes = row_bits / 8;
        self.bytes.get(r * row_bytes..(r + 1) * row_bytes)
    }
}

/// Bytes that `len` integers of `storage` occupy (the last one zero-padded).
pub fn byte_len(storage: IntType, len: usize) -> usize {
    (len * usize::from(storage.bits())).div_ceil(8)
}

/// Integer `i` of integers of `storage` in storage order in `bytes` (sign-extended for
/// signed types). Panics if `bytes` is too short, as slice indexing does.
#[inline]
pub fn unpack(storage: IntType, bytes: &[u8], i: usize) -> i32 {
    match storage.bits() {
        2 | 4 => {
            let bits = u32::from(storage.bits());
            let per_byte = 8 / bits as usize;
            let shift = bits * (i % per_byte) as u32;
            let field = u32::from(bytes[i / per_byte] >> shift) & ((1 << bits) - 1);
            if storage.is_signed() {
                // Move the field to the top of an i32 and shift it back arithmetically.
                ((field << (32 - bits)) as i32) >> (32 - bits)
            } else {
                field as i32
            }
        }
        8 if storage.is_signed() => i32::from(bytes[i] as i8),
        8 => i32::from(bytes[i]),
        _ => i32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]),
    }
}

/// Writes `v` (in range) as integer `i` into zeroed `bytes`.
fn put(storage: IntType, bytes: &mut [u8], i: usize, v: i32) {
    match storage.bits() {
        2 | 4 => {
            let bits = u32::from(storage.bits());
            let per_byte = 8 / bits as usize;
            let mask = (1u8 << bits) - 1;
            bytes[i / per_byte] |= ((v as u8) & mask) << (bits * (i % per_byte) as u32);
        }
        8 => bytes[i] = v as u8,
        _ => bytes[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_order_low_bits_first() {
        let p = PackedInts::pack(IntType::I4, &[1, -2, 7]).unwrap();
        assert_eq!(p.bytes(), &[0xE1, 0x07]);
        assert_eq!(
            (p.get(0), p.get(1), p.get(2), p.get(3)),
            (Some(1), Some(-2), Some(7), None)
        );
        let p = PackedInts::pack(IntType::U2, &[3, 0, 1, 2, 1]).unwrap();
        assert_eq!(p.bytes(), &[0b10_01_00_11, 0b01]);
        assert_eq!(
            (0..5).map(|i| p.get(i).unwrap()).collect::<Vec<_>>(),
            [3, 0, 1, 2, 1]
        );
        let p = PackedInts::pack(IntType::I2, &[-2, 1, -1, 0]).unwrap();
        assert_eq!(
            (0..4).map(|i| p.get(i).unwrap()).collect::<Vec<_>>(),
            [-2, 1, -1, 0]
        );
        let p = PackedInts::pack(IntType::I8, &[-128, 127]).unwrap();
        assert_eq!(p.bytes(), &[0x80, 0x7F]);
        let p = PackedInts::pack(IntType::I32, &[-2, i32::MAX]).unwrap();
        assert_eq!((p.get(0), p.get(1)), (Some(-2), Some(i32::MAX)));
        assert!(PackedInts::pack(IntType::I4, &[8]).is_err());
        assert!(PackedInts::pack(IntType::U4, &[-1]).is_err());
    }

    #[test]
    fn rows_and_raw_bytes() {
        let p = PackedInts::pack(IntType::U4, &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(p.row(1, 2), Some(&[0x43][..]));
        assert_eq!(p.row(3, 2), None);
        assert_eq!(p.row(0, 3), None);
        let q = PackedInts::from_bytes(IntType::U4, 6, p.bytes().to_vec()).unwrap();
        assert_eq!(q, p);
        assert!(PackedInts::from_bytes(IntType::U4, 7, p.bytes().to_vec()).is_err());
        assert_eq!(byte_len(IntType::I2, 5), 2);
    }
}
