//! Integer storage types of quantized values and the ranges quantization clamps to.

use crate::{Error, Result};

/// Integer storage of quantized values: 2, 4, 8 or 32 (bias) bits, signed or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntType {
    bits: u8,
    signed: bool,
}

impl IntType {
    /// Signed 2-bit, `[-2, 1]`.
    pub const I2: Self = IntType {
        bits: 2,
        signed: true,
    };
    /// Unsigned 2-bit, `[0, 3]`.
    pub const U2: Self = IntType {
        bits: 2,
        signed: false,
    };
    /// Signed 4-bit, `[-8, 7]`.
    pub const I4: Self = IntType {
        bits: 4,
        signed: true,
    };
    /// Unsigned 4-bit, `[0, 15]`.
    pub const U4: Self = IntType {
        bits: 4,
        signed: false,
    };
    /// Signed 8-bit, `[-128, 127]`.
    pub const I8: Self = IntType {
        bits: 8,
        signed: true,
    };
    /// Unsigned 8-bit, `[0, 255]`.
    pub const U8: Self = IntType {
        bits: 8,
        signed: false,
    };
    /// Signed 32-bit (biases).
    pub const I32: Self = IntType {
        bits: 32,
        signed: true,
    };

    /// An integer type of `bits` bits (2, 4, 8 or 32; 32 only signed).
    pub fn new(bits: u8, signed: bool) -> Result<Self> {
        match (bits, signed) {
            (2 | 4 | 8, _) | (32, true) => Ok(IntType { bits, signed }),
            _ => Err(Error::invalid_argument(
                "bits",
                format!(
                    "no {} {bits}-bit integer type (2, 4 and 8 bits, or signed 32)",
                    if signed { "signed" } else { "unsigned" }
                ),
            )),
        }
    }

    /// Width in bits.
    pub fn bits(self) -> u8 {
        self.bits
    }

    /// Whether values are two's complement signed.
    pub fn is_signed(self) -> bool {
        self.signed
    }

    /// The full range of the type (`[-8, 7]` for I4, `[0, 3]` for U2).
    pub fn full_range(self) -> QRange {
        let (qmin, qmax) = match (self.bits, self.signed) {
            (32, _) => (i32::MIN, i32::MAX),
            (b, true) => (-(1i32 << (b - 1)), (1i32 << (b - 1)) - 1),
            (b, false) => (0, (1i32 << b) - 1),
        };
        QRange { qmin, qmax }
    }

    /// Zero-point shift of libxq's int8 carrier: 0 for I8, -128 for U8 (whose values are
    /// held as `u - 128`, the stored byte with its top bit flipped). 0 for other types.
    pub fn carrier_offset(self) -> i32 {
        if self == IntType::U8 {
            -128
        } else {
            0
        }
    }
}

/// Inclusive integer range `[qmin, qmax]` with `qmin <= 0 <= qmax` (zero must be exactly
/// representable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QRange {
    qmin: i32,
    qmax: i32,
}

impl QRange {
    /// `[-128, 127]`, int8 activations.
    pub const I8: Self = QRange {
        qmin: -128,
        qmax: 127,
    };
    /// `[-127, 127]`, symmetric int8 weights.
    pub const I8_NARROW: Self = QRange {
        qmin: -127,
        qmax: 127,
    };

    /// The range `[qmin, qmax]`; requires `qmin < qmax` and `qmin <= 0 <= qmax`.
    pub fn new(qmin: i32, qmax: i32) -> Result<Self> {
        if qmin >= qmax || qmin > 0 || qmax < 0 {
            return Err(Error::invalid_argument(
                "qmin/qmax",
                format!("need qmin < qmax and qmin <= 0 <= qmax, got [{qmin}, {qmax}]"),
            ));
        }
        Ok(QRange { qmin, qmax })
    }

    /// A range that is only known to satisfy `qmin <= qmax` (the quantizer's parameters
    /// allow ranges without 0 as long as they hold their zero point).
    pub(crate) const fn new_unchecked(qmin: i32, qmax: i32) -> Self {
        QRange { qmin, qmax }
    }

    /// Smallest quantized value.
    #[inline(always)]
    pub fn qmin(self) -> i32 {
        self.qmin
    }

    /// Largest quantized value.
    #[inline(always)]
    pub fn qmax(self) -> i32 {
        self.qmax
    }

    /// Whether `|qmin|, |qmax| <= 2^21`: every value of the range minus any zero point in
    /// it lies within `2^22`, where [`super::round_half_even_small`] is exact.
    #[inline(always)]
    pub fn is_narrow(self) -> bool {
        const LIMIT: i32 = 1 << 21;
        self.qmin >= -LIMIT && self.qmax <= LIMIT
    }
}

/// Which elements of a tensor share one scale and zero point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One pair for the whole tensor.
    Tensor,
    /// One pair per index of the axis (output channel of a weight; row of a per-token
    /// activation).
    Axis(usize),
    /// One pair per `size` consecutive elements along `axis`, for every index of the other
    /// axes (ONNX `block_size`; a group size along the last axis). A ragged last block is
    /// allowed.
    Group {
        /// The axis the groups run along.
        axis: usize,
        /// Elements per group (> 0).
        size: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_ranges() {
        assert_eq!(IntType::I4.full_range(), QRange::new(-8, 7).unwrap());
        assert_eq!(IntType::U2.full_range(), QRange::new(0, 3).unwrap());
        assert_eq!(IntType::I2.full_range(), QRange::new(-2, 1).unwrap());
        assert_eq!(IntType::U4.full_range(), QRange::new(0, 15).unwrap());
        assert_eq!(IntType::I8.full_range(), QRange::I8);
        assert_eq!(IntType::U8.full_range(), QRange::new(0, 255).unwrap());
        assert_eq!(
            IntType::I32.full_range(),
            QRange::new(i32::MIN, i32::MAX).unwrap()
        );
        assert_eq!(IntType::new(4, true).unwrap(), IntType::I4);
        assert!(IntType::new(3, true).is_err());
        assert!(IntType::new(32, false).is_err());
        assert_eq!(
            (IntType::U8.carrier_offset(), IntType::I8.carrier_offset()),
            (-128, 0)
        );
    }

    #[test]
    fn ranges() {
        assert!(QRange::new(1, 3).is_err());
        assert!(QRange::new(-3, -1).is_err());
        assert!(QRange::new(0, 0).is_err());
        assert!(QRange::I8.is_narrow());
        assert!(IntType::U8.full_range().is_narrow());
        assert!(QRange::new(-65536, 65535).unwrap().is_narrow());
        assert!(!IntType::I32.full_range().is_narrow());
    }
}
