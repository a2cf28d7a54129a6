//! Per-channel table lookup: `y[i] = tables[channel(i)][x[i] as u8]`, one 256-entry table per
//! channel, where the channel of storage element `i` is `(i / inner) % channels` (`inner` is
//! the number of consecutive elements that share a channel: 1 for the channel axis of an
//! NHWC value, `H·W` for axis 0 of a row-major `[C, H, W]` one). An element-wise operator with
//! a per-channel constant (`(x - mean[c]) / std[c]`, `x * gamma[c]`) runs as such tables.
//!
//! [`channel_lookup_reference`] is the oracle. [`ChannelLut`] looks up each run of at least
//! [`MIN_SIMD_RUN`] elements of one channel with the ISA's [`Lut`] kernel (itself held to the
//! scalar lookup bit for bit) and shorter runs with the scalar loop, so every ISA gives the
//! reference's bytes.

use super::Lut;
use crate::cpu::Isa;
use crate::kernels::output::SharedOutput;
use crate::{Error, Result};
use std::ops::Range;

/// Shortest run of one channel handed to the SIMD lookup kernel.
pub const MIN_SIMD_RUN: usize = 32;

/// The oracle: `y[i] = tables[256 * ((i / inner) % channels) + x[i] as u8]` for every `i`.
/// Fails unless `tables` holds `256 * channels` entries, `channels` and `inner` are positive
/// and `x` and `y` have the same length.
pub fn channel_lookup_reference(
    tables: &[i8],
    channels: usize,
    inner: usize,
    x: &[i8],
    y: &mut [i8],
) -> Result<()> {
    check(tables.len(), channels, inner)?;
    if x.len() != y.len() {
        return Err(Error::ShapeMismatch(format!(
            "per-channel lookup of {} bytes into {} bytes",
            x.len(),
            y.len()
        )));
    }
    for (i, (&v, o)) in x.iter().zip(y.iter_mut()).enumerate() {
        *o = tables[256 * ((i / inner) % channels) + v as u8 as usize];
    }
    Ok(())
}

/// Checks the table count and geometry of a per-channel lookup.
fn check(table_len: usize, channels: usize, inner: usize) -> Result<()> {
    if channels == 0 || inner == 0 {
        return Err(Error::invalid_argument(
            "channels",
            format!("{channels} channels of {inner} elements"),
        ));
    }
    let want = channels
        .checked_mul(256)
        .ok_or_else(|| Error::invalid_argument("channels", "table size overflows"))?;
    if table_len != want {
        return Err(Error::invalid_argument(
            "tables",
            format!("{table_len} entries for {channels} channels (256 each)"),
        ));
    }
    Ok(())
}

/// Per-channel tables prepared for one ISA's lookup kernel.
#[derive(Clone, Debug)]
pub struct ChannelLut {
    luts: Vec<Lut>,
    /// The tables one after another (channel `c`'s at `256 * c`), for the element loop.
    flat: Box<[i8]>,
    inner: usize,
}

impl ChannelLut {
    /// The lookup of `tables` (`256 * channels` entries, channel `c`'s at `256 * c`) with
    /// channel runs of `inner` elements, using the preferred lookup kernel of `isa` (which the
    /// CPU must support).
    pub fn new(isa: Isa, tables: &[i8], channels: usize, inner: usize) -> Result<Self> {
        check(tables.len(), channels, inner)?;
        let luts = tables
            .chunks_exact(256)
            .map(|t| {
                let t: [i8; 256] = t.try_into().map_err(|_| Error::Internal("table chunk".into()))?;
                Lut::new(isa, t)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ChannelLut {
            luts,
            flat: tables.into(),
            inner,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.luts.len()
    }

    /// [`channel_lookup_reference`] of the whole of `x` into `y`.
    pub fn run(&self, x: &[i8], y: &mut [i8]) -> Result<()> {
        if x.len() != y.len() {
            return Err(Error::ShapeMismatch(format!(
                "per-channel lookup of {} bytes into {} bytes",
                x.len(),
                y.len()
            )));
        }
        let out = SharedOutput::new(y);
        // SAFETY: `out` borrows `y` exclusively for this single call.
        unsafe { self.run_shared(x, &out, 0..x.len()) }
    }

    /// Computes the elements `elems` of `out` from the same elements of `x`, as
    /// [`channel_lookup_reference`] does (so threads can split one lookup into disjoint
    /// element ranges).
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint `elems`.
    pub unsafe fn run_shared(&self, x: &[i8], out: &SharedOutput<'_>, elems: Range<usize>) -> Result<()> {
        if x.len() != out.len() || elems.start > elems.end || elems.end > x.len() {
            return Err(Error::ShapeMismatch(format!(
                "per-channel lookup of elements {elems:?} of {} bytes into {} bytes",
                x.len(),
                out.len()
            )));
        }
        let (channels, inner) = (self.luts.len(), self.inner);
        if inner == 1 {
            // Channels innermost (NHWC): the channel steps with every element.
            let mut c = elems.start % channels;
            for j in elems {
                // SAFETY: `j < elems.end <= out.len()`; the caller keeps concurrent ranges
                // disjoint, so no other call writes element `j`.
                unsafe { *out.as_ptr().add(j) = self.flat[256 * c + x[j] as u8 as usize] };
                c += 1;
                if c == channels {
                    c = 0;
                }
            }
            return Ok(());
        }
        let mut i = elems.start;
        while i < elems.end {
            let block = i / inner;
            let lut = &self.luts[block % channels];
            // `block < elems.end <= x.len()`, so the run's end cannot overflow past it.
            let end = elems.end.min(block.saturating_add(1).saturating_mul(inner));
            if end - i >= MIN_SIMD_RUN {
                // SAFETY: `i..end` lies within `elems` (checked inside `x` and `out`); the
                // caller keeps concurrent ranges disjoint.
                unsafe { lut.run_shared(x, out, i..end)? };
            } else {
                let table = lut.table();
                for j in i..end {
                    // SAFETY: `j < elems.end <= out.len()`; the caller keeps concurrent
                    // ranges disjoint, so no other call writes element `j`.
                    unsafe { *out.as_ptr().add(j) = table[x[j] as u8 as usize] };
                }
            }
            i = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(channels: usize) -> Vec<i8> {
        (0..channels * 256)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as i8)
            .collect()
    }

    #[test]
    fn every_isa_equals_the_reference_over_runs_and_ranges() {
        for (channels, inner) in [(3, 1), (5, 1), (3, 7), (4, 40), (2, 100), (1, 1)] {
            let t = tables(channels);
            let n = channels * inner * 3 + 11;
            let x: Vec<i8> = (0..n).map(|i| (i * 37 + 5) as u8 as i8).collect();
            let mut want = vec![0i8; n];
            channel_lookup_reference(&t, channels, inner, &x, &mut want).unwrap();
            for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
                let lut = ChannelLut::new(isa, &t, channels, inner).unwrap();
                let mut y = vec![0i8; n];
                lut.run(&x, &mut y).unwrap();
                assert_eq!(y, want, "{isa} channels {channels} inner {inner}");
                let mut y = vec![0i8; n];
                let out = SharedOutput::new(&mut y);
                let cut = n / 3 + 1;
                // SAFETY: single-threaded; the two ranges are disjoint.
                unsafe {
                    lut.run_shared(&x, &out, cut..n).unwrap();
                    lut.run_shared(&x, &out, 0..cut).unwrap();
                }
                assert_eq!(y, want, "{isa} split, channels {channels} inner {inner}");
            }
        }
    }

    #[test]
    fn refuses_bad_geometry() {
        let t = tables(2);
        assert!(ChannelLut::new(Isa::Scalar, &t, 3, 1).is_err());
        assert!(ChannelLut::new(Isa::Scalar, &t, 2, 0).is_err());
        assert!(ChannelLut::new(Isa::Scalar, &t, 0, 1).is_err());
        assert!(ChannelLut::new(Isa::Scalar, &t, usize::MAX, 1).is_err());
        let lut = ChannelLut::new(Isa::Scalar, &t, 2, 1).unwrap();
        let mut y = [0i8; 3];
        assert!(lut.run(&[0; 4], &mut y).is_err());
        let out = SharedOutput::new(&mut y);
        // SAFETY: single-threaded.
        assert!(unsafe { lut.run_shared(&[0; 3], &out, 2..4) }.is_err());
    }
}
