//! Tensors with data: graph constants (initializers) and interpreter values.

use super::DType;
use crate::qscheme::{bf16, unpack, IntType};
use crate::{Error, Result};

/// Upper bound on the element count of any one tensor (2^30, 4 GiB of f32); sizes read from files or C
/// are checked against it before anything is allocated.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// The element storage of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// f32 values.
    F32(Vec<f32>),
    /// i8 values.
    I8(Vec<i8>),
    /// u8 values.
    U8(Vec<u8>),
    /// i32 values.
    I32(Vec<i32>),
    /// i64 values.
    I64(Vec<i64>),
    /// bool values.
    Bool(Vec<bool>),
    /// Any other type, as little-endian packed bytes (f16, bf16, i16, u16, int4, int2).
    Packed {
        /// The element type.
        dtype: DType,
        /// The packed little-endian bytes.
        bytes: Vec<u8>,
    },
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dims: Vec<usize>,
    data: TensorData,
}

/// Checked product of dims, bounded by [`MAX_TENSOR_ELEMENTS`].
pub fn checked_numel(dims: &[usize]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                Error::ResourceLimit(format!(
                    "tensor of shape {dims:?} has more than {MAX_TENSOR_ELEMENTS} elements"
                ))
            })?;
    }
    Ok(n)
}

macro_rules! typed_accessors {
    ($($variant:ident, $ty:ty, $get:ident, $get_mut:ident, $from:ident);* $(;)?) => {
        impl Tensor {
            $(
                /// The elements, if the tensor has this element type.
                pub fn $get(&self) -> Result<&[$ty]> {
                    match &self.data {
                        TensorData::$variant(v) => Ok(v),
                        _ => Err(Error::DtypeMismatch(format!(
                            "expected a {} tensor, got {}", stringify!($ty), self.dtype()
                        ))),
                    }
                }

                /// The elements to overwrite in place, if the tensor has this element type.
                pub fn $get_mut(&mut self) -> Result<&mut [$ty]> {
                    let dtype = self.dtype();
                    match &mut self.data {
                        TensorData::$variant(v) => Ok(v),
                        _ => Err(Error::DtypeMismatch(format!(
                            "expected a {} tensor, got {dtype}", stringify!($ty)
                        ))),
                    }
                }

                /// Builds a tensor from a shape and matching elements.
                pub fn $from(dims: Vec<usize>, values: Vec<$ty>) -> Result<Tensor> {
                    Tensor::new(dims, TensorData::$variant(values))
                }
            )*
        }
    };
}

typed_accessors! {
    F32, f32, as_f32, as_f32_mut, from_f32;
    I8, i8, as_i8, as_i8_mut, from_i8;
    U8, u8, as_u8, as_u8_mut, from_u8;
    I32, i32, as_i32, as_i32_mut, from_i32;
    I64, i64, as_i64, as_i64_mut, from_i64;
    Bool, bool, as_bool, as_bool_mut, from_bool;
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::Packed { dtype, .. } => *dtype,
        }
    }

    fn len_matches(&self, numel: usize) -> bool {
        match self {
            TensorData::F32(v) => v.len() == numel,
            TensorData::I8(v) => v.len() == numel,
            TensorData::U8(v) => v.len() == numel,
            TensorData::I32(v) => v.len() == numel,
            TensorData::I64(v) => v.len() == numel,
            TensorData::Bool(v) => v.len() == numel,
            TensorData::Packed { dtype, bytes } => dtype.storage_bytes(numel) == Some(bytes.len()),
        }
    }

    /// A zero-filled buffer of `numel` elements (numel must already be bounded).
    pub fn zeros(dtype: DType, numel: usize) -> TensorData {
        match dtype {
            DType::F32 => TensorData::F32(vec![0.0; numel]),
            DType::I8 => TensorData::I8(vec![0; numel]),
            DType::U8 => TensorData::U8(vec![0; numel]),
            DType::I32 => TensorData::I32(vec![0; numel]),
            DType::I64 => TensorData::I64(vec![0; numel]),
            DType::Bool => TensorData::Bool(vec![false; numel]),
            other => TensorData::Packed {
                dtype: other,
                bytes: vec![0; other.storage_bytes(numel).unwrap_or(0)],
            },
        }
    }
}

impl Tensor {
    /// Builds a tensor, checking that the element count matches the shape.
    pub fn new(dims: Vec<usize>, data: TensorData) -> Result<Tensor> {
        let numel = checked_numel(&dims)?;
        if !data.len_matches(numel) {
            return Err(Error::ShapeMismatch(format!(
                "{} data does not hold the {numel} elements of shape {dims:?}",
                data.dtype()
            )));
        }
        Ok(Tensor { dims, data })
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, dims: Vec<usize>) -> Result<Tensor> {
        let numel = checked_numel(&dims)?;
        Ok(Tensor {
            dims,
            data: TensorData::zeros(dtype, numel),
        })
    }

    /// A rank-0 f32 tensor.
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor {
            dims: vec![],
            data: TensorData::F32(vec![v]),
        }
    }

    /// A rank-0 i64 tensor.
    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor {
            dims: vec![],
            data: TensorData::I64(vec![v]),
        }
    }

    /// A 1-D i64 tensor.
    pub fn vec_i64(v: Vec<i64>) -> Tensor {
        Tensor {
            dims: vec![v.len()],
            data: TensorData::I64(v),
        }
    }

    /// The shape.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The storage.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The same elements under another shape of equal element count.
    pub fn reshaped(self, dims: Vec<usize>) -> Result<Tensor> {
        Tensor::new(dims, self.data)
    }

    /// Elements converted to i64 (integer and bool tensors), for shape-like operands.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        Ok(match &self.data {
            TensorData::I64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
            _ => {
                return Err(Error::DtypeMismatch(format!(
                    "expected an integer tensor, got {}",
                    self.dtype()
                )))
            }
        })
    }

    /// Elements converted to f32 (float and integer tensors).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        Ok(match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f32).collect(),
            TensorData::Packed { dtype, bytes } => unpack_to_f32(*dtype, bytes, self.numel())?,
        })
    }

    /// Little-endian bytes of the elements (ONNX raw_data layout).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8).collect(),
            TensorData::Packed { bytes, .. } => bytes.clone(),
        }
    }

    /// Bytes of [`Tensor::to_le_bytes`], without making them.
    pub fn le_byte_len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len() * 4,
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I32(v) => v.len() * 4,
            TensorData::I64(v) => v.len() * 8,
            TensorData::Bool(v) => v.len(),
            TensorData::Packed { bytes, .. } => bytes.len(),
        }
    }

    /// Writes [`Tensor::to_le_bytes`] to the start of `dst`, which must hold at least
    /// [`Tensor::le_byte_len`] bytes.
    pub fn write_le_bytes(&self, dst: &mut [u8]) -> Result<()> {
        let need = self.le_byte_len();
        let room = dst.len();
        let dst = dst
            .get_mut(..need)
            .ok_or_else(|| Error::ShapeMismatch(format!("{need} bytes do not fit in {room}")))?;
        fn put<const N: usize, T: Copy>(src: &[T], dst: &mut [u8], bytes: impl Fn(T) -> [u8; N]) {
            for (d, &x) in dst.chunks_exact_mut(N).zip(src) {
                d.copy_from_slice(&bytes(x));
            }
        }
        match &self.data {
            TensorData::F32(v) => put(v, dst, f32::to_le_bytes),
            TensorData::I8(v) => put(v, dst, i8::to_le_bytes),
            TensorData::U8(v) => dst.copy_from_slice(v),
            TensorData::I32(v) => put(v, dst, i32::to_le_bytes),
            TensorData::I64(v) => put(v, dst, i64::to_le_bytes),
            TensorData::Bool(v) => put(v, dst, |b| [b as u8]),
            TensorData::Packed { bytes, .. } => dst.copy_from_slice(bytes),
        }
        Ok(())
    }

    /// Overwrites the elements with little-endian bytes (ONNX raw_data layout) of exactly
    /// [`Tensor::le_byte_len`] bytes, keeping shape, type and storage.
    pub fn assign_le_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.le_byte_len() {
            return Err(Error::ShapeMismatch(format!(
                "{} bytes for a tensor of {}",
                bytes.len(),
                self.le_byte_len()
            )));
        }
        fn get<const N: usize, T>(dst: &mut [T], src: &[u8], value: impl Fn([u8; N]) -> T) {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(N)) {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                *d = value(b);
            }
        }
        match &mut self.data {
            TensorData::F32(v) => get(v, bytes, f32::from_le_bytes),
            TensorData::I8(v) => get(v, bytes, i8::from_le_bytes),
            TensorData::U8(v) => v.copy_from_slice(bytes),
            TensorData::I32(v) => get(v, bytes, i32::from_le_bytes),
            TensorData::I64(v) => get(v, bytes, i64::from_le_bytes),
            TensorData::Bool(v) => get(v, bytes, |[b]| b != 0),
            TensorData::Packed { bytes: b, .. } => b.copy_from_slice(bytes),
        }
        Ok(())
    }

    /// The shape and the f32 elements to overwrite in place.
    pub fn dims_and_f32_mut(&mut self) -> Result<(&[usize], &mut [f32])> {
        match &mut self.data {
            TensorData::F32(v) => Ok((&self.dims, v)),
            other => Err(Error::DtypeMismatch(format!(
                "expected a f32 tensor, got {}",
                other.dtype()
            ))),
        }
    }

    /// Makes this tensor equal to `src`, reusing its storage when it is large enough (no
    /// allocation when shape and type are unchanged).
    pub fn assign(&mut self, src: &Tensor) {
        self.dims.clone_from(&src.dims);
        match (&mut self.data, &src.data) {
            (TensorData::F32(d), TensorData::F32(s)) => d.clone_from(s),
            (TensorData::I8(d), TensorData::I8(s)) => d.clone_from(s),
            (TensorData::U8(d), TensorData::U8(s)) => d.clone_from(s),
            (TensorData::I32(d), TensorData::I32(s)) => d.clone_from(s),
            (TensorData::I64(d), TensorData::I64(s)) => d.clone_from(s),
            (TensorData::Bool(d), TensorData::Bool(s)) => d.clone_from(s),
            (d, s) => d.clone_from(s),
        }
    }

    /// The tensor in `slot` when it has type `dtype` and a shape for which `same_shape` holds
    /// (its elements are left as they are, to be overwritten); otherwise a zero-filled
    /// tensor of shape `make_dims()` put there. This is how a buffer is kept from one
    /// execution to the next.
    pub fn reuse_slot(
        slot: &mut Option<Tensor>,
        dtype: DType,
        same_shape: impl FnOnce(&[usize]) -> bool,
        make_dims: impl FnOnce() -> Result<Vec<usize>>,
    ) -> Result<&mut Tensor> {
        let fits = slot
            .as_ref()
            .is_some_and(|t| t.dtype() == dtype && same_shape(t.dims()));
        if !fits {
            *slot = Some(Tensor::zeros(dtype, make_dims()?)?);
        }
        slot.as_mut()
            .ok_or_else(|| Error::Internal("a reused tensor slot is empty".into()))
    }

    /// Builds a tensor from little-endian bytes (ONNX raw_data layout), checking the length.
    pub fn from_le_bytes(dtype: DType, dims: Vec<usize>, bytes: &[u8]) -> Result<Tensor> {
        let numel = checked_numel(&dims)?;
        let expected = dtype
            .storage_bytes(numel)
            .ok_or_else(|| Error::ResourceLimit("tensor byte size overflows".into()))?;
        if bytes.len() != expected {
            return Err(Error::InvalidModel(format!(
                "{dtype} tensor of shape {dims:?} needs {expected} bytes, got {}",
                bytes.len()
            )));
        }
        let data = match dtype {
            DType::F32 => TensorData::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::U8 => TensorData::U8(bytes.to_vec()),
            DType::I32 => TensorData::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::I64 => TensorData::I64(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
            other => TensorData::Packed {
                dtype: other,
                bytes: bytes.to_vec(),
            },
        };
        Tensor::new(dims, data)
    }
}

/// Decodes packed sub-byte (in ONNX's order, [`PackedInts`](crate::qscheme::PackedInts)),
/// 16-bit integer and half-precision elements to f32.
fn unpack_to_f32(dtype: DType, bytes: &[u8], numel: usize) -> Result<Vec<f32>> {
    let half = |i: usize| u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    Ok((0..numel)
        .map(|i| match dtype {
            DType::U4 => unpack(IntType::U4, bytes, i) as f32,
            DType::I4 => unpack(IntType::I4, bytes, i) as f32,
            DType::U2 => unpack(IntType::U2, bytes, i) as f32,
            DType::I2 => unpack(IntType::I2, bytes, i) as f32,
            DType::I16 => half(i) as i16 as f32,
            DType::U16 => half(i) as f32,
            DType::Bf16 => bf16::to_f32(half(i)),
            DType::F16 => f16_to_f32(half(i)),
            _ => 0.0,
        })
        .collect())
}

/// IEEE half → single conversion.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1F) as u32;
    let frac = (h & 0x3FF) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            let v = f as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        (0x1F, f) => sign | 0x7F80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_data_must_agree() {
        assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 6]).is_ok());
        assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 5]).is_err());
        let huge = Tensor::zeros(DType::F32, vec![1 << 20, 1 << 20]).unwrap_err();
        assert!(matches!(huge, Error::ResourceLimit(_)), "{huge}");
    }

    #[test]
    fn bytes_round_trip() {
        let t = Tensor::from_i64(vec![3], vec![-1, 2, 1 << 40]).unwrap();
        let back = Tensor::from_le_bytes(DType::I64, vec![3], &t.to_le_bytes()).unwrap();
        assert_eq!(t, back);
        assert!(Tensor::from_le_bytes(DType::F32, vec![2], &[0; 7]).is_err());
    }

    #[test]
    fn packed_int4_decodes_signed() {
        let t = Tensor::from_le_bytes(DType::I4, vec![3], &[0xF7, 0x08]).unwrap();
        assert_eq!(t.to_f32_vec().unwrap(), vec![7.0, -1.0, -8.0]);
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
    }
}
