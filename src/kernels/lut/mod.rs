//! Table lookup over int8 bytes: `y[i] = table[x[i] as u8]` with a 256-entry table. Every
//! int8 element-wise unary operator (HardSwish, Sigmoid, Tanh, ...) runs as one such table,
//! built once by [`build_table`] from the operator's `f32` definition and the input and output
//! qparams: the table holds, for each input byte, exactly what dequantize → operator →
//! quantize gives, so the lookup is that computation, bit for bit.
//!
//! The AVX2 and AVX-512 variants split the table into 16 sub-tables of 16 entries that
//! `vpshufb` looks up by the low nibble; the high nibble selects a sub-table through saturating
//! index steps and XOR-telescoped sub-tables (see the private `split_table`). Where the CPU
//! also has AVX-512 VBMI, the AVX-512 row looks up with `vpermi2b` instead (two 128-entry
//! lookups and a blend: 4 instructions per 64 bytes instead of about 47).
//!
//! [`ChannelLut`] looks up with one table per channel (an operator with a per-channel
//! constant), through the same kernels.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512vbmi;
mod channels;
mod scalar;

pub use channels::{channel_lookup_reference, ChannelLut, MIN_SIMD_RUN};

use super::elementwise::Storage;
use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams};
use super::table::LutKernels;
use crate::cpu::Isa;
use crate::qscheme::{NanRule, QRange};
use crate::{Error, Result};
use std::ops::Range;

/// A lookup microkernel: `y[i] = table[x[i] as u8]` for `i < n`. Contract: `x` is readable
/// and `y` writable for `n` bytes, they are equal or do not overlap, and the CPU supports the
/// variant's ISA.
pub(crate) type LutFn = unsafe fn(&[i8; 256], *const i8, *mut i8, usize);

/// The portable variant (the test oracle of the others).
pub(crate) static SCALAR: LutKernels = LutKernels {
    name: "x8-lut-scalar",
    map: scalar::map,
};

/// The AVX2 variant (also run by the 256-bit VNNI rows).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX2: LutKernels = LutKernels {
    name: "x8-lut-avx2",
    map: avx2::map,
};

/// The AVX-512 (F/BW) variant.
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512: LutKernels = LutKernels {
    name: "x8-lut-avx512",
    map: avx512::map,
};

/// The AVX-512 VBMI variant, run in place of [`AVX512`] where the CPU has VBMI (see
/// [`variants`]).
#[cfg(target_arch = "x86_64")]
pub(crate) static AVX512_VBMI: LutKernels = LutKernels {
    name: "x8-lut-avx512vbmi",
    map: avx512vbmi::map,
};

/// The lookup variants for `isa`, preferred first: its kernel-table row's, preceded by
/// [`AVX512_VBMI`] when that row's is [`AVX512`] and the CPU has AVX-512 VBMI (no ISA row
/// requires VBMI, so it is detected here, at run time).
fn variants(isa: Isa) -> Vec<&'static LutKernels> {
    let row = super::table::for_isa(isa).lut;
    let mut v = Vec::with_capacity(2);
    #[cfg(target_arch = "x86_64")]
    if std::ptr::eq(row, &AVX512) && std::arch::is_x86_feature_detected!("avx512vbmi") {
        v.push(&AVX512_VBMI);
    }
    v.push(row);
    v
}

/// Number of 16-entry sub-tables.
const SUBTABLES: usize = 16;

/// The sub-tables the SIMD variants look up. `vpshufb` returns `t[i & 15]`, or 0 when bit 7
/// of the index `i` is set. A byte `b` below 128 is looked up in sub-tables 0..8 with indices
/// `b - 16j` (signed saturation), which are non-negative exactly for `j <= b >> 4`; a byte from
/// 128 up is looked up in sub-tables 8..16 with indices `(b ^ 0x80) - 16(j - 8)` alike; the
/// results are XORed. So sub-table `j` holds `T[j] ^ T[j - 1]` (`T[j]` the table's entries
/// `16j..16j + 16`), except sub-tables 0 and 8, which hold `T[0]` and `T[8]`: each chain's XOR
/// up to the byte's high nibble telescopes to its entry.
fn split_table(table: &[i8; 256]) -> [[i8; 16]; SUBTABLES] {
    std::array::from_fn(|j| {
        std::array::from_fn(|i| {
            let entry = table[16 * j + i];
            if j % 8 == 0 {
                entry
            } else {
                entry ^ table[16 * (j - 1) + i]
            }
        })
    })
}

/// The table of an element-wise operator: entry `b` (for the int8 byte `b as i8`) is what
/// dequantizing `b` with `x`, applying the operator and quantizing with `y` gives, in the
/// interpreter's `f32` arithmetic (DequantizeLinear, then QuantizeLinear in the graph's
/// storage type), then clamped to `range`:
///
/// ```text
/// v = f((b - zp_x) as f32 * s_x)
/// q = clamp(round_ties_even(v / s_y) + (zp_y + off) as f32, lo, hi) - off   (NaN: q = -off)
/// table[b] = clamp(q, range.min, range.max)
/// ```
///
/// where `off` is the [`Storage::offset`] and `[lo, hi]` the stored type's range (an int8 or
/// uint8 tensor carried as `u - 128`: its bytes map to bytes the same way). `f` maps the 256
/// dequantized inputs, in byte order `0, 1, ..., 127, -128, ..., -1`, to the operator's values
/// (for example `|x, y| ir::pointwise::map(op, x, y)`). Fails when the qparams are invalid or
/// `f` fails.
pub fn build_table(
    x: QuantParams,
    y: QuantParams,
    range: OutputRange,
    storage: Storage,
    f: impl FnOnce(&[f32], &mut [f32]) -> Result<()>,
) -> Result<[i8; 256]> {
    x.validate("x")?;
    y.validate("y")?;
    let off = storage.offset();
    // The graph's storage type: [-128, 127] for int8, [0, 255] for uint8.
    let stored_range = QRange::new(-128 + off, 127 + off)?;
    let inputs: [f32; 256] = std::array::from_fn(|b| x.dequantize(i32::from(b as u8 as i8)));
    let mut values = [0f32; 256];
    f(&inputs, &mut values)?;
    let y_stored = QuantParams {
        scale: y.scale,
        zero_point: y.zero_point + off,
    };
    Ok(std::array::from_fn(|b| {
        let stored = y_stored.quantize(values[b], stored_range, NanRule::Zero) as i32;
        (stored - off).clamp(range.min as i32, range.max as i32) as i8
    }))
}

/// A table prepared for one ISA's lookup kernel.
#[derive(Clone, Debug)]
pub struct Lut {
    table: [i8; 256],
    kernels: &'static LutKernels,
}

impl Lut {
    /// The lookup of `table` with the preferred variant of `isa` (which the CPU must
    /// support): the row's, or AVX-512 VBMI's where the row is AVX-512's and the CPU has VBMI.
    pub fn new(isa: Isa, table: [i8; 256]) -> Result<Self> {
        super::ensure_supported(isa)?;
        Ok(Lut {
            table,
            kernels: variants(isa)[0],
        })
    }

    /// The lookups of `table` with every variant this CPU runs for `isa` (so that tests can
    /// hold each one to the scalar kernel), preferred first.
    pub fn each_variant(isa: Isa, table: [i8; 256]) -> Result<Vec<Self>> {
        super::ensure_supported(isa)?;
        Ok(variants(isa)
            .into_iter()
            .map(|kernels| Lut { table, kernels })
            .collect())
    }

    /// The table.
    pub fn table(&self) -> &[i8; 256] {
        &self.table
    }

    /// Name of the kernel variant.
    pub fn kernel_name(&self) -> &'static str {
        self.kernels.name
    }

    /// `y[i] = table[x[i] as u8]`; `x` and `y` have the same length.
    pub fn run(&self, x: &[i8], y: &mut [i8]) -> Result<()> {
        if x.len() != y.len() {
            return Err(Error::ShapeMismatch(format!(
                "table lookup of {} bytes into {} bytes",
                x.len(),
                y.len()
            )));
        }
        // SAFETY: both slices hold `x.len()` bytes and cannot overlap (one is borrowed
        // exclusively); `new` checked the CPU supports the variant.
        unsafe { (self.kernels.map)(&self.table, x.as_ptr(), y.as_mut_ptr(), x.len()) };
        Ok(())
    }

    /// Replaces every byte `b` of `xy` with `table[b as u8]`.
    pub fn run_in_place(&self, xy: &mut [i8]) {
        let p = xy.as_mut_ptr();
        // SAFETY: `p` is valid for reading and writing `xy.len()` bytes and input and output
        // are the same pointer, which the kernels allow; `new` checked the CPU.
        unsafe { (self.kernels.map)(&self.table, p, p, xy.len()) };
    }

    /// Computes the elements `elems` of `out` from the same elements of `x` (so threads can
    /// split one lookup into disjoint element ranges).
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint `elems`.
    pub unsafe fn run_shared(&self, x: &[i8], out: &SharedOutput<'_>, elems: Range<usize>) -> Result<()> {
        if x.len() != out.len() || elems.start > elems.end || elems.end > x.len() {
            return Err(Error::ShapeMismatch(format!(
                "table lookup of elements {elems:?} of {} bytes into {} bytes",
                x.len(),
                out.len()
            )));
        }
        // SAFETY: `elems` lies within both buffers (checked); `out` is borrowed exclusively
        // for its lifetime, so it does not overlap `x`, and the caller keeps concurrent ranges
        // disjoint; `new` checked the CPU.
        unsafe {
            (self.kernels.map)(
                &self.table,
                x.as_ptr().add(elems.start),
                out.as_ptr().add(elems.start),
                elems.len(),
            )
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table_chains_telescope_to_the_entries() {
        let table: [i8; 256] = std::array::from_fn(|b| (b as u8).wrapping_mul(37).wrapping_add(11) as i8);
        let parts = split_table(&table);
        for b in 0..256 {
            let (chain, k) = (if b < 128 { 0 } else { 8 }, b >> 4);
            let got = (chain..=k).fold(0i8, |acc, j| acc ^ parts[j][b & 15]);
            assert_eq!(got, table[b], "byte {b}");
        }
    }

    #[test]
    fn every_supported_variant_maps_in_place_and_checks_lengths() {
        let table: [i8; 256] = std::array::from_fn(|b| (255 - b) as u8 as i8);
        let supported = Isa::ALL.into_iter().filter(|i| i.is_supported());
        for lut in supported.flat_map(|isa| Lut::each_variant(isa, table).unwrap()) {
            let isa = lut.kernel_name();
            let mut xy: Vec<i8> = (0..300).map(|i| i as u8 as i8).collect();
            lut.run_in_place(&mut xy);
            assert!(
                xy.iter().enumerate().all(|(i, &v)| v == !(i as u8) as i8),
                "{isa}"
            );
            assert!(lut.run(&[0; 3], &mut [0; 4]).is_err());
        }
    }

    #[test]
    fn the_avx512_row_prefers_vbmi_exactly_where_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        if Isa::Avx512Vnni.is_supported() {
            let names: Vec<&str> = Lut::each_variant(Isa::Avx512Vnni, [0; 256])
                .unwrap()
                .iter()
                .map(Lut::kernel_name)
                .collect();
            let vbmi = std::arch::is_x86_feature_detected!("avx512vbmi");
            assert_eq!(names[0] == "x8-lut-avx512vbmi", vbmi, "{names:?}");
            assert_eq!(names.last(), Some(&"x8-lut-avx512"));
            let chosen = Lut::new(Isa::Avx512Vnni, [0; 256]).unwrap();
            assert_eq!(chosen.kernel_name(), names[0]);
        }
        let names: Vec<&str> = Lut::each_variant(Isa::Scalar, [0; 256])
            .unwrap()
            .iter()
            .map(Lut::kernel_name)
            .collect();
        assert_eq!(names, ["x8-lut-scalar"]);
    }

    #[test]
    fn build_table_clamps_and_maps_nan_to_the_stored_zero() {
        let q = QuantParams {
            scale: 0.5,
            zero_point: 0,
        };
        let identity = |x: &[f32], y: &mut [f32]| {
            y.copy_from_slice(x);
            Ok(())
        };
        let t = build_table(q, q, OutputRange::FULL, Storage::Int8, identity).unwrap();
        assert!(t.iter().enumerate().all(|(b, &v)| v == b as u8 as i8));
        let relu = OutputRange::relu(0);
        let t = build_table(q, q, relu, Storage::Int8, identity).unwrap();
        assert!(t.iter().enumerate().all(|(b, &v)| v == (b as u8 as i8).max(0)));
        let nan = |_: &[f32], y: &mut [f32]| {
            y.fill(f32::NAN);
            Ok(())
        };
        assert_eq!(
            build_table(q, q, OutputRange::FULL, Storage::Int8, nan).unwrap(),
            [0; 256]
        );
        assert_eq!(
            build_table(q, q, OutputRange::FULL, Storage::Uint8, nan).unwrap(),
            [-128; 256]
        );
        let bad = QuantParams {
            scale: 0.0,
            zero_point: 0,
        };
        assert!(build_table(bad, q, OutputRange::FULL, Storage::Int8, identity).is_err());
    }
}
