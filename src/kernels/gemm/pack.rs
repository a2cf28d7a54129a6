//! Weight packing into panels, and activation packing into the per-tile A buffer.
//!
//! K layout (shared by every variant): a row of A is `ks` segments of `kc` elements; each
//! segment is zero-padded to `kc4 = round_up(kc, 4)`, so `kpad = ks * kc4`.
//!
//! A weight panel covers `nr` output columns and is laid out as
//! `[bias: nr × i32][weights: kpad/kr groups × nr columns × kr bytes][multiplier: nr × f32]`
//! `[Σw: nr × i32][float bias: nr × f32]` (the last two serve the dynamic-quantization epilogue).
//! The bias already contains `-zp_x·Σw` (and `-128·Σw` for unsigned-activation variants).

use super::super::buffer::AlignedBytes;
use super::super::table::GemmKernelInfo;
use crate::{Error, Result};

/// Largest padded reduction length `kpad`; keeps `Σ |x·w|` below 2^31 so accumulation is exact.
pub const MAX_KPAD: usize = 1 << 16;

/// Geometry of a packed weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PanelGeometry {
    /// Output columns.
    pub n: usize,
    /// Segments per A row.
    pub ks: usize,
    /// Elements per segment.
    pub kc: usize,
    /// `kc` rounded up to 4.
    pub kc4: usize,
    /// `ks * kc4`.
    pub kpad: usize,
    /// Columns per panel.
    pub nr: usize,
    /// Bytes per panel.
    pub panel_bytes: usize,
    /// Number of panels.
    pub panels: usize,
}

impl PanelGeometry {
    /// Validates sizes and computes the geometry for `kernel`.
    pub fn new(kernel: &GemmKernelInfo, n: usize, ks: usize, kc: usize) -> Result<Self> {
        if n == 0 || ks == 0 || kc == 0 {
            return Err(Error::invalid_argument(
                "weights",
                format!("empty GEMM weights (n={n}, ks={ks}, kc={kc})"),
            ));
        }
        if kc > MAX_KPAD {
            return Err(Error::Unsupported(format!(
                "reduction segment of {kc} exceeds {MAX_KPAD}"
            )));
        }
        let kc4 = kc.div_ceil(4) * 4;
        let kpad = ks
            .checked_mul(kc4)
            .filter(|&k| k <= MAX_KPAD)
            .ok_or_else(|| Error::Unsupported(format!("reduction length {ks}×{kc} exceeds {MAX_KPAD}")))?;
        let nr = kernel.panel_nr;
        let panel_bytes = nr * 4 + kpad * nr + 3 * nr * 4;
        let panels = n.div_ceil(nr);
        Ok(PanelGeometry {
            n,
            ks,
            kc,
            kc4,
            kpad,
            nr,
            panel_bytes,
            panels,
        })
    }

    /// Offset of the multipliers inside a panel.
    pub fn multiplier_offset(&self) -> usize {
        self.nr * 4 + self.kpad * self.nr
    }

    /// Offset of the per-column weight sums inside a panel.
    pub fn weight_sum_offset(&self) -> usize {
        self.multiplier_offset() + self.nr * 4
    }

    /// Offset of the per-column float biases inside a panel.
    pub fn float_bias_offset(&self) -> usize {
        self.weight_sum_offset() + self.nr * 4
    }
}

/// Packs `weights` (`n × ks × kc`, row-major) with the final `i32` bias and `f32` multipliers.
///
/// `bias[c]` must already include every term except the input-zero-point compensation,
/// which is folded in here as `-input_zp·Σw[c]` (plus `-128·Σw[c]` for unsigned variants).
pub(crate) fn pack_weights(
    kernel: &GemmKernelInfo,
    geo: &PanelGeometry,
    weights: &[i8],
    bias: &[i32],
    multipliers: &[f32],
    float_bias: Option<&[f32]>,
    input_zp: i32,
) -> Result<AlignedBytes> {
    debug_assert_eq!(weights.len(), geo.n * geo.ks * geo.kc);
    let total = geo
        .panels
        .checked_mul(geo.panel_bytes)
        .ok_or_else(|| Error::ResourceLimit("packed weights size overflows".into()))?;
    let mut buf = AlignedBytes::zeroed(total)?;
    let out = buf.as_mut_slice();
    let (nr, kr) = (geo.nr, kernel.kr);
    let zp_shift = input_zp + if kernel.unsigned_activations { 128 } else { 0 };
    for col in 0..geo.n {
        let panel = &mut out[(col / geo.nr) * geo.panel_bytes..][..geo.panel_bytes];
        let c = col % nr;
        let row = &weights[col * geo.ks * geo.kc..][..geo.ks * geo.kc];
        let mut sum: i32 = 0;
        for s in 0..geo.ks {
            for j in 0..geo.kc {
                let w = row[s * geo.kc + j];
                sum += w as i32;
                let k = s * geo.kc4 + j;
                panel[nr * 4 + (k / kr) * nr * kr + c * kr + k % kr] = w as u8;
            }
        }
        let packed_bias = bias[col].wrapping_sub(zp_shift.wrapping_mul(sum));
        panel[c * 4..c * 4 + 4].copy_from_slice(&packed_bias.to_ne_bytes());
        let m = geo.multiplier_offset() + c * 4;
        panel[m..m + 4].copy_from_slice(&multipliers[col].to_ne_bytes());
        let ws = geo.weight_sum_offset() + c * 4;
        panel[ws..ws + 4].copy_from_slice(&sum.to_ne_bytes());
        let fb = geo.float_bias_offset() + c * 4;
        panel[fb..fb + 4].copy_from_slice(&float_bias.map_or(0.0, |b| b[col]).to_ne_bytes());
    }
    Ok(buf)
}

/// Packs up to `mr` rows of A into `dst` (`rows × kpad × a_elem_bytes` bytes), taking segment
/// `s` of row `r` from `segment(r, s)` (each `kc` long), padding each segment to `kc4` with zeros.
///
/// `seg_ptrs` is scratch space for the segment starts (reused across calls): segments are
/// gathered here, in generic code where `segment` inlines, before the SIMD copy runs.
pub(crate) fn pack_a<'a>(
    kernel: &GemmKernelInfo,
    geo: &PanelGeometry,
    rows: usize,
    segment: impl Fn(usize, usize) -> &'a [i8],
    seg_ptrs: &mut Vec<*const i8>,
    dst: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if kernel.isa == crate::cpu::Isa::Avx512Vnni {
        seg_ptrs.clear();
        for r in 0..rows {
            seg_ptrs.extend((0..geo.ks).map(|s| segment(r, s)[..geo.kc].as_ptr()));
        }
        // SAFETY: a packed VNNI kernel exists only if the CPU supports AVX-512 BW; every
        // pointer starts a slice of `kc` elements that outlives this call.
        unsafe { super::avx512vnni::pack_a_unsigned(geo, rows, seg_ptrs, dst) };
        return;
    }
    let seg_bytes = geo.kc4 * kernel.a_elem_bytes;
    let row_bytes = geo.kpad * kernel.a_elem_bytes;
    for r in 0..rows {
        let drow = &mut dst[r * row_bytes..][..row_bytes];
        for (s, d) in drow.chunks_exact_mut(seg_bytes).enumerate() {
            pack_segment(kernel, &segment(r, s)[..geo.kc], d);
        }
    }
}

/// Packs rows already laid out back to back as `kpad` elements each (segment padding
/// included) in `block`: the packed rows are then one contiguous conversion of it.
pub(crate) fn pack_a_block(kernel: &GemmKernelInfo, block: &[i8], dst: &mut [u8]) {
    let dst = &mut dst[..block.len() * kernel.a_elem_bytes];
    #[cfg(target_arch = "x86_64")]
    if kernel.isa == crate::cpu::Isa::Avx512Vnni {
        // SAFETY: a packed VNNI kernel exists only if the CPU supports AVX-512 BW.
        unsafe { super::avx512vnni::pack_block_unsigned(block, dst) };
        return;
    }
    pack_segment(kernel, block, dst);
}

/// Writes one segment in the kernel's A format: `src` then zeros up to `dst.len()`.
fn pack_segment(kernel: &GemmKernelInfo, src: &[i8], dst: &mut [u8]) {
    match (kernel.a_elem_bytes, kernel.unsigned_activations) {
        #[cfg(target_arch = "x86_64")]
        (2, _) if kernel.isa == crate::cpu::Isa::Avx2 => {
            // SAFETY: a packed AVX2 kernel exists only if the CPU supports AVX2.
            unsafe { super::avx2::pack_segment_i16(src, dst) }
        }
        (2, _) => {
            for (pair, &x) in dst.chunks_exact_mut(2).zip(src) {
                pair.copy_from_slice(&(x as i16).to_ne_bytes());
            }
            dst[src.len() * 2..].fill(0);
        }
        (_, unsigned) => {
            let flip = if unsigned { 0x80 } else { 0 };
            for (o, &x) in dst.iter_mut().zip(src) {
                *o = (x as u8) ^ flip;
            }
            dst[src.len()..].fill(0);
        }
    }
}
