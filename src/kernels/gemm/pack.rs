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
/// Every slice must have the length `geo` implies (checked by the caller, `PackedGemm`).
pub(crate) fn pack_weights(
    kernel: &GemmKernelInfo,
    geo: &PanelGeometry,
    weights: &[i8],
    bias: &[i32],
    multipliers: &[f32],
    float_bias: Option<&[f32]>,
    input_zp: i32,
) -> Result<AlignedBytes> {
    let row_len = geo.ks * geo.kc;
    if weights.len() != geo.n * row_len || bias.len() != geo.n || multipliers.len() != geo.n {
        return Err(Error::Internal(
            "pack_weights: operand lengths differ from the geometry".into(),
        ));
    }
    let total = geo
        .panels
        .checked_mul(geo.panel_bytes)
        .ok_or_else(|| Error::ResourceLimit("packed weights size overflows".into()))?;
    let mut buf = AlignedBytes::zeroed(total)?;
    let nr = geo.nr;
    let zp_shift = input_zp + if kernel.unsigned_activations { 128 } else { 0 };
    // SAFETY: `i8` and `u8` have the same size and alignment and every bit pattern is valid
    // for both, so the same memory may be viewed as bytes.
    let bytes = unsafe { std::slice::from_raw_parts(weights.as_ptr().cast::<u8>(), weights.len()) };
    for (p, panel) in buf.as_mut_slice().chunks_exact_mut(geo.panel_bytes).enumerate() {
        let col0 = p * nr;
        let cols = (geo.n - col0).min(nr);
        let rows = &bytes[col0 * row_len..(col0 + cols) * row_len];
        let (head, rest) = panel.split_at_mut(nr * 4);
        let (body, tail) = rest.split_at_mut(geo.multiplier_offset() - nr * 4);
        match kernel.kr {
            1 => interleave::<1>(geo, rows, body),
            2 => interleave::<2>(geo, rows, body),
            4 => interleave::<4>(geo, rows, body),
            kr => return Err(Error::Internal(format!("no weight packing for K groups of {kr}"))),
        }
        let (mult, tail) = tail.split_at_mut(geo.weight_sum_offset() - geo.multiplier_offset());
        let (sums, float_biases) = tail.split_at_mut(geo.float_bias_offset() - geo.weight_sum_offset());
        for (c, row) in weights[col0 * row_len..(col0 + cols) * row_len]
            .chunks_exact(row_len)
            .enumerate()
        {
            let col = col0 + c;
            let sum: i32 = row.iter().map(|&w| w as i32).sum();
            let packed_bias = bias[col].wrapping_sub(zp_shift.wrapping_mul(sum));
            let word = c * 4..c * 4 + 4;
            head[word.clone()].copy_from_slice(&packed_bias.to_ne_bytes());
            mult[word.clone()].copy_from_slice(&multipliers[col].to_ne_bytes());
            sums[word.clone()].copy_from_slice(&sum.to_ne_bytes());
            float_biases[word].copy_from_slice(&float_bias.map_or(0.0, |b| b[col]).to_ne_bytes());
        }
    }
    Ok(buf)
}

/// Writes the weight body of one panel: `rows` holds the panel's columns (up to `nr`, each
/// `ks × kc` bytes); `body` (zeroed, `kpad × nr` bytes) receives, per group of `KR` K
/// elements, `nr` columns of `KR` bytes. Groups never straddle segments (`KR` divides 4), so
/// each segment's last group is zero-padded to `kc4`.
fn interleave<const KR: usize>(geo: &PanelGeometry, rows: &[u8], body: &mut [u8]) {
    let (nr, kc) = (geo.nr, geo.kc);
    let group_bytes = nr * KR;
    let seg_bytes = geo.kc4 / KR * group_bytes;
    for (c, row) in rows.chunks_exact(geo.ks * kc).enumerate() {
        for (seg, dst) in row.chunks_exact(kc).zip(body.chunks_exact_mut(seg_bytes)) {
            let full = seg.chunks_exact(KR);
            let tail = full.remainder();
            let mut groups = dst.chunks_exact_mut(group_bytes);
            for (src, group) in full.zip(&mut groups) {
                let src: &[u8; KR] = src.try_into().expect("KR bytes");
                group[c * KR..c * KR + KR].copy_from_slice(src);
            }
            if let Some(group) = groups.next().filter(|_| !tail.is_empty()) {
                group[c * KR..c * KR + tail.len()].copy_from_slice(tail);
            }
        }
    }
}

/// Packs up to `mr` rows of A into `dst` (`rows × kpad × a_elem_bytes` bytes), taking segment
/// `s` of row `r` from `segment(r, s)` (each `kc` long), padding each segment to `kc4` with zeros.
///
/// `seg_ptrs` is scratch space for the segment starts (reused across calls): segments are
/// gathered here, in generic code where `segment` inlines, before the variant's packer runs.
///
/// # Safety
/// The CPU supports `kernel.isa`.
pub(crate) unsafe fn pack_a<'a>(
    kernel: &GemmKernelInfo,
    geo: &PanelGeometry,
    rows: usize,
    segment: impl Fn(usize, usize) -> &'a [i8],
    seg_ptrs: &mut Vec<*const i8>,
    dst: &mut [u8],
) {
    seg_ptrs.clear();
    for r in 0..rows {
        seg_ptrs.extend((0..geo.ks).map(|s| segment(r, s)[..geo.kc].as_ptr()));
    }
    let dst = &mut dst[..rows * geo.kpad * kernel.a_elem_bytes];
    // SAFETY: every pointer starts a slice of `kc` elements that outlives this call; the
    // CPU supports the variant (caller contract).
    unsafe { (kernel.pack_a_rows)(geo, rows, seg_ptrs, dst) };
}

/// Packs rows already laid out back to back as `kpad` elements each (segment padding
/// included) in `block`: the packed rows are then one contiguous conversion of it.
///
/// # Safety
/// The CPU supports `kernel.isa`.
pub(crate) unsafe fn pack_a_block(kernel: &GemmKernelInfo, block: &[i8], dst: &mut [u8]) {
    let dst = &mut dst[..block.len() * kernel.a_elem_bytes];
    // SAFETY: `dst` has the length the packer needs; the CPU supports the variant (caller
    // contract).
    unsafe { (kernel.pack_a_block)(block, dst) };
}

/// The body of a [`crate::kernels::table::PackARowsFn`]: converts every segment of `$rows`
/// rows with `$convert(src: &[i8], dst: &mut [u8])` (each `dst` is the segment's `kc4 ×
/// $elem_bytes` bytes). A macro, so that `$convert` inlines into the variant's
/// `#[target_feature]` function.
macro_rules! pack_rows {
    ($geo:expr, $rows:expr, $seg_ptrs:expr, $dst:expr, $elem_bytes:expr, $convert:expr) => {{
        let geo: &$crate::kernels::gemm::pack::PanelGeometry = $geo;
        let (row_bytes, seg_bytes) = (geo.kpad * $elem_bytes, geo.kc4 * $elem_bytes);
        for r in 0..$rows {
            let drow = &mut $dst[r * row_bytes..][..row_bytes];
            for (d, &p) in drow
                .chunks_exact_mut(seg_bytes)
                .zip(&$seg_ptrs[r * geo.ks..][..geo.ks])
            {
                // SAFETY: `p` is valid for reading `kc` bytes (PackARowsFn contract).
                let src = unsafe { std::slice::from_raw_parts(p, geo.kc) };
                $convert(src, d);
            }
        }
    }};
}
pub(crate) use pack_rows;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Isa;
    use crate::kernels::table::gemm_kernel;
    use proptest::prelude::*;

    /// The packed layout stated element by element (the module docs' formula), as the oracle
    /// of the fast packer.
    fn pack_by_element(
        kernel: &GemmKernelInfo,
        geo: &PanelGeometry,
        weights: &[i8],
        bias: &[i32],
        multipliers: &[f32],
        float_bias: Option<&[f32]>,
        input_zp: i32,
    ) -> Vec<u8> {
        let mut out = vec![0u8; geo.panels * geo.panel_bytes];
        let (nr, kr) = (geo.nr, kernel.kr);
        let zp_shift = input_zp + if kernel.unsigned_activations { 128 } else { 0 };
        for col in 0..geo.n {
            let panel = &mut out[(col / nr) * geo.panel_bytes..][..geo.panel_bytes];
            let c = col % nr;
            let mut sum = 0i32;
            for s in 0..geo.ks {
                for j in 0..geo.kc {
                    let w = weights[(col * geo.ks + s) * geo.kc + j];
                    sum += w as i32;
                    let k = s * geo.kc4 + j;
                    panel[nr * 4 + (k / kr) * nr * kr + c * kr + k % kr] = w as u8;
                }
            }
            let words = [
                (
                    c * 4,
                    bias[col].wrapping_sub(zp_shift.wrapping_mul(sum)).to_ne_bytes(),
                ),
                (geo.multiplier_offset() + c * 4, multipliers[col].to_ne_bytes()),
                (geo.weight_sum_offset() + c * 4, sum.to_ne_bytes()),
                (
                    geo.float_bias_offset() + c * 4,
                    float_bias.map_or(0.0, |b| b[col]).to_ne_bytes(),
                ),
            ];
            for (at, word) in words {
                panel[at..at + 4].copy_from_slice(&word);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn packing_matches_the_element_formula(
            n in 1usize..40, ks in 1usize..10, kc in 1usize..40, zp in -128i32..128,
            seed in any::<u64>(), with_float_bias in any::<bool>(),
        ) {
            let mut s = seed | 1;
            let weights: Vec<i8> = (0..n * ks * kc)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 32) as i8
                })
                .collect();
            let bias: Vec<i32> = (0..n as i32).map(|c| c * 1009 - 7000).collect();
            let multipliers: Vec<f32> = (0..n).map(|c| 1e-3 * (c + 1) as f32).collect();
            let float_bias: Vec<f32> = (0..n).map(|c| c as f32 - 3.5).collect();
            let float_bias = with_float_bias.then_some(float_bias.as_slice());
            for isa in Isa::ALL {
                let kernel = gemm_kernel(isa);
                let geo = PanelGeometry::new(kernel, n, ks, kc).unwrap();
                let fast = pack_weights(kernel, &geo, &weights, &bias, &multipliers, float_bias, zp).unwrap();
                let oracle = pack_by_element(kernel, &geo, &weights, &bias, &multipliers, float_bias, zp);
                prop_assert!(fast.as_slice() == oracle.as_slice(), "{isa}: n={n} ks={ks} kc={kc}");
            }
        }
    }

    #[test]
    fn operand_lengths_are_checked() {
        let kernel = gemm_kernel(Isa::Scalar);
        let geo = PanelGeometry::new(kernel, 2, 1, 3).unwrap();
        let err = pack_weights(kernel, &geo, &[1; 5], &[0; 2], &[1.0; 2], None, 0).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err}");
    }
}
