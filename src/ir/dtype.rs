//! Element types of graph tensors.

use crate::{Error, Result};

/// The element type of a tensor. Sub-byte and bf16 types exist so quantized graphs can
/// describe them; the float interpreter runs f32, the integer types and bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float (storage only).
    F16,
    /// bfloat16 (storage only).
    Bf16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Boolean.
    Bool,
    /// Signed 4-bit integer (two per byte).
    I4,
    /// Unsigned 4-bit integer (two per byte).
    U4,
    /// Signed 2-bit integer (four per byte).
    I2,
    /// Unsigned 2-bit integer (four per byte).
    U2,
}

impl DType {
    /// Storage size in bits of one element.
    pub fn bits(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 32,
            DType::F16 | DType::Bf16 | DType::I16 | DType::U16 => 16,
            DType::I8 | DType::U8 | DType::Bool => 8,
            DType::I64 => 64,
            DType::I4 | DType::U4 => 4,
            DType::I2 | DType::U2 => 2,
        }
    }

    /// Bytes needed to store `numel` packed elements, or `None` on overflow.
    pub fn storage_bytes(self, numel: usize) -> Option<usize> {
        numel.checked_mul(self.bits()).map(|b| b.div_ceil(8))
    }

    /// True for the integer types a QuantizeLinear may produce.
    pub fn is_quantized_int(self) -> bool {
        matches!(
            self,
            DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I4 | DType::U4 | DType::I2 | DType::U2
        )
    }

    /// The representable range of an integer type as f32 (used to clamp quantization).
    pub fn int_range(self) -> Option<(f32, f32)> {
        Some(match self {
            DType::I8 => (-128.0, 127.0),
            DType::U8 => (0.0, 255.0),
            DType::I16 => (-32768.0, 32767.0),
            DType::U16 => (0.0, 65535.0),
            DType::I4 => (-8.0, 7.0),
            DType::U4 => (0.0, 15.0),
            DType::I2 => (-2.0, 1.0),
            DType::U2 => (0.0, 3.0),
            DType::I32 => (i32::MIN as f32, i32::MAX as f32),
            _ => return None,
        })
    }

    /// The ONNX `TensorProto.DataType` number.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::Bf16 => 16,
            DType::U4 => 21,
            DType::I4 => 22,
            DType::U2 => 25,
            DType::I2 => 26,
        }
    }

    /// The dtype of an ONNX `TensorProto.DataType` number.
    pub fn from_onnx_code(code: i32) -> Result<DType> {
        Ok(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            4 => DType::U16,
            5 => DType::I16,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            10 => DType::F16,
            16 => DType::Bf16,
            21 => DType::U4,
            22 => DType::I4,
            25 => DType::U2,
            26 => DType::I2,
            other => {
                let name = match other {
                    8 => "string",
                    11 => "double",
                    12 => "uint32",
                    13 => "uint64",
                    14 | 15 => "complex",
                    17..=20 | 24 => "float8",
                    23 => "float4e2m1",
                    _ => "unknown",
                };
                return Err(Error::Unsupported(format!("ONNX element type {other} ({name})")));
            }
        })
    }

    /// Lower-case name, as used in messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::I2 => "i2",
            DType::U2 => "u2",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_codes_round_trip() {
        for d in [
            DType::F32,
            DType::F16,
            DType::Bf16,
            DType::I8,
            DType::U8,
            DType::I16,
            DType::U16,
            DType::I32,
            DType::I64,
            DType::Bool,
            DType::I4,
            DType::U4,
            DType::I2,
            DType::U2,
        ] {
            assert_eq!(DType::from_onnx_code(d.onnx_code()).unwrap(), d);
        }
        assert!(DType::from_onnx_code(8).is_err());
    }

    #[test]
    fn packed_storage() {
        assert_eq!(DType::I4.storage_bytes(5), Some(3));
        assert_eq!(DType::I2.storage_bytes(5), Some(2));
        assert_eq!(DType::F32.storage_bytes(3), Some(12));
        assert_eq!(DType::I64.storage_bytes(usize::MAX), None);
    }
}
