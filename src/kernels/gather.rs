//! Byte moves by index: the data movement of Transpose, Slice, Pad and of a reshape between
//! storage orders. No arithmetic, the same on every ISA; one call moves the whole tensor.

use super::output::SharedOutput;
use crate::{Error, Result};

/// [`gather_shared`] map entry of an output byte that is the fill byte.
pub const FILL_INDEX: u32 = u32::MAX;

/// `out[i] = x[map[i]]`, or `fill` where `map[i]` is [`FILL_INDEX`].
///
/// # Safety
/// No other call writes `out` concurrently (the move is one tile).
pub unsafe fn gather_shared(x: &[i8], map: &[u32], fill: i8, out: &SharedOutput) -> Result<()> {
    if out.len() != map.len() {
        return Err(Error::Internal("gather buffer sizes differ".into()));
    }
    let dst = out.as_ptr();
    for (i, &src) in map.iter().enumerate() {
        let v = if src == FILL_INDEX { fill } else { x[src as usize] };
        // SAFETY: `i < out.len()` (checked above); this call alone writes the output.
        unsafe { *dst.add(i) = v };
    }
    Ok(())
}

/// `out[i] = x[map[i]]`, or a plain copy of `x` without a map.
///
/// # Safety
/// No other call writes `out` concurrently (the move is one tile).
pub unsafe fn permute_shared(x: &[i8], map: Option<&[u32]>, out: &SharedOutput) -> Result<()> {
    if out.len() != x.len() || map.is_some_and(|m| m.len() > out.len()) {
        return Err(Error::Internal("reshape buffer sizes differ".into()));
    }
    let dst = out.as_ptr();
    match map {
        // SAFETY: both hold `x.len()` bytes (checked above) and the arena gives an output
        // disjoint from its inputs.
        None => unsafe { std::ptr::copy_nonoverlapping(x.as_ptr(), dst, x.len()) },
        Some(map) => {
            for (i, &src) in map.iter().enumerate() {
                // SAFETY: `i < out.len()` (checked above); this call alone writes the output.
                unsafe { *dst.add(i) = x[src as usize] };
            }
        }
    }
    Ok(())
}
