//! Values: the int8 tensors of a program's arena, their quantization and storage layout.

use crate::kernels::QuantParams;

/// One int8 tensor living in the program's arena.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueSpec {
    /// The QDQ graph's name of the quantized tensor.
    pub name: String,
    /// Logical (ONNX, NCHW) dimensions.
    pub dims: Vec<usize>,
    /// Per-tensor quantization (int8 terms).
    pub q: QuantParams,
    /// The graph's tensor is uint8: stored as `u - 128` (with `q.zero_point` shifted alike).
    pub unsigned: bool,
}

impl ValueSpec {
    /// Rank-4 values are stored NHWC; every other rank row-major in logical order.
    pub fn is_nhwc(&self) -> bool {
        self.dims.len() == 4
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Storage index of the element at logical (row-major, NCHW for rank 4) index `l`.
    pub fn storage_index(&self, l: usize) -> usize {
        if !self.is_nhwc() {
            return l;
        }
        let (c, hw) = (self.dims[1], self.dims[2] * self.dims[3]);
        let (n, rest) = (l / (c * hw), l % (c * hw));
        let (ch, p) = (rest / hw, rest % hw);
        (n * hw + p) * c + ch
    }

    /// Whether the storage order equals the logical order (row-major, or NHWC with one
    /// channel or one pixel).
    pub fn storage_is_logical(&self) -> bool {
        !self.is_nhwc() || self.dims[1] == 1 || self.dims[2] * self.dims[3] == 1
    }
}
