//! libxq's int8 carrier of 8-bit values ([`Carrier`]): kernels compute on int8, so a uint8
//! tensor is held as the int8 `u - 128` (its byte with the top bit flipped) and its zero
//! point as `zp - 128`; dequantized values are unchanged.

use super::types::IntType;

/// How the bytes of an 8-bit tensor are held in int8 storage.
///
/// The discriminant is the bit pattern flipped between a tensor byte and its stored int8,
/// so [`Carrier::flip`] is a cast, not a branch, inside the boundary's copy loops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Carrier {
    /// int8 values, held as they are.
    #[default]
    Int8 = 0,
    /// uint8 values `u`, held as `u - 128`.
    Uint8 = 0x80,
}

impl Carrier {
    /// The carrier of a uint8 (`unsigned`) or int8 tensor.
    pub fn new(unsigned: bool) -> Self {
        if unsigned {
            Carrier::Uint8
        } else {
            Carrier::Int8
        }
    }

    /// The bits flipped between a tensor byte and its stored int8: `0x80` for uint8, else 0.
    #[inline(always)]
    pub const fn flip(self) -> u8 {
        self as u8
    }

    /// The stored int8 of a tensor byte.
    #[inline(always)]
    pub const fn store(self, byte: u8) -> i8 {
        (byte ^ self.flip()) as i8
    }

    /// The tensor byte of a stored int8.
    #[inline(always)]
    pub const fn load(self, q: i8) -> u8 {
        (q as u8) ^ self.flip()
    }

    /// The tensor's zero point of a stored zero point (128 more for uint8).
    pub fn tensor_zero_point(self, stored: i32) -> i32 {
        stored + self.offset()
    }

    /// The stored zero point of a tensor's zero point (128 less for uint8).
    pub fn stored_zero_point(self, tensor: i32) -> i32 {
        tensor - self.offset()
    }

    /// What to add to a stored int8 value (or zero point) to get the tensor's integer: 128
    /// for uint8, else 0 (the negation of [`IntType::carrier_offset`]).
    pub fn offset(self) -> i32 {
        match self {
            Carrier::Int8 => -IntType::I8.carrier_offset(),
            Carrier::Uint8 => -IntType::U8.carrier_offset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint8_is_held_as_u_minus_128() {
        for u in 0..=255u8 {
            assert_eq!(i32::from(Carrier::Uint8.store(u)), i32::from(u) - 128);
            assert_eq!(Carrier::Uint8.load(Carrier::Uint8.store(u)), u);
            assert_eq!(Carrier::Int8.store(u), u as i8);
            assert_eq!(Carrier::Int8.load(u as i8), u);
        }
        assert_eq!(Carrier::Uint8.stored_zero_point(200), 72);
        assert_eq!(Carrier::Uint8.tensor_zero_point(72), 200);
        assert_eq!(Carrier::Int8.tensor_zero_point(-5), -5);
        assert_eq!(Carrier::new(true), Carrier::Uint8);
        assert_eq!((Carrier::Uint8.offset(), Carrier::default().offset()), (128, 0));
    }
}
