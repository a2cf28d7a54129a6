//! AVX-512 bilinear kernels: 16 lanes of the scalar formula (`vdivps`, `vrndscaleps` to
//! nearest even, no FMA), the last partial vector of a run masked.

use super::{BlendArgs, ColumnsArgs, LinesArgs, Quantizer, PADDING};
use std::arch::x86_64::*;

/// Lanes per vector.
const LANES: usize = 16;
const _: () = assert!(LANES <= PADDING);

/// The mask of the first `n` (`< 16`) lanes.
#[inline(always)]
fn head(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Row blend of `a.n` elements.
///
/// # Safety
/// `a` satisfies the [`LinesArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn lines(a: &LinesArgs) {
    let (zp, s) = (_mm512_set1_epi32(a.x.zero_point), _mm512_set1_ps(a.x.scale));
    let (w, wc) = (_mm512_set1_ps(a.w), _mm512_set1_ps(a.wc));
    let value = |b: __m128i| {
        _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepi8_epi32(b), zp)),
            s,
        )
    };
    let blend =
        |p: __m128i, q: __m128i| _mm512_add_ps(_mm512_mul_ps(value(p), wc), _mm512_mul_ps(value(q), w));
    let mut i = 0;
    while i + LANES <= a.n {
        // SAFETY: elements i..i+16 lie within the `n` the contract makes valid.
        unsafe {
            let (p, q) = (
                _mm_loadu_si128(a.top.add(i).cast()),
                _mm_loadu_si128(a.bottom.add(i).cast()),
            );
            _mm512_storeu_ps(a.t.add(i), blend(p, q));
        }
        i += LANES;
    }
    if i < a.n {
        let m = head(a.n - i);
        // SAFETY: the mask limits every access to elements i..n.
        unsafe {
            let (p, q) = (
                _mm_maskz_loadu_epi8(m, a.top.add(i)),
                _mm_maskz_loadu_epi8(m, a.bottom.add(i)),
            );
            _mm512_mask_storeu_ps(a.t.add(i), m, blend(p, q));
        }
    }
}

/// The quantizer's constants in vectors.
struct Quant512 {
    scale: __m512,
    zero_point: __m512,
    lo: __m512,
    hi: __m512,
    nan: __m512,
}

impl Quant512 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new(q: &Quantizer) -> Self {
        Quant512 {
            scale: _mm512_set1_ps(q.y.scale),
            zero_point: _mm512_set1_ps(q.zero_point),
            lo: _mm512_set1_ps(q.lo),
            hi: _mm512_set1_ps(q.hi),
            nan: _mm512_set1_ps(f32::from(q.nan)),
        }
    }

    /// [`Quantizer::byte`] of 16 values: `clamp(round_even(v / s) + zp, lo, hi)`, a NaN
    /// quotient giving the NaN byte.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn bytes(&self, v: __m512) -> __m128i {
        let t = _mm512_div_ps(v, self.scale);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(t, t);
        let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
        let r = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, self.zero_point), self.lo), self.hi);
        _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mask_blend_ps(nan, r, self.nan)))
    }
}

/// Column blend of one output row into `u` (each pixel as whole vectors, in pixel order).
///
/// # Safety
/// `a` satisfies the [`BlendArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn blend(a: &BlendArgs) {
    let c = a.channels;
    for (j, col) in a.cols.iter().enumerate() {
        let (w, wc) = (_mm512_set1_ps(col.w), _mm512_set1_ps(col.wc));
        // SAFETY: the contract makes `t` readable at a0..a0+c+PADDING and a1..a1+c+PADDING
        // and `u` writable up to cols×c+PADDING; the vectors start below `c` and `LANES <=
        // PADDING`. Lanes past pixel j's channels are overwritten by pixel j+1 (later) or lie
        // in the padding.
        unsafe {
            let (t0, t1, u) = (a.t.add(col.a0), a.t.add(col.a1), a.u.add(j * c));
            let mut k = 0;
            while k < c {
                let (p, r) = (_mm512_loadu_ps(t0.add(k)), _mm512_loadu_ps(t1.add(k)));
                _mm512_storeu_ps(u.add(k), _mm512_add_ps(_mm512_mul_ps(p, wc), _mm512_mul_ps(r, w)));
                k += LANES;
            }
        }
    }
}

/// Column blend of one output row into `u`, then its quantization into `y`.
///
/// # Safety
/// `a` satisfies the [`ColumnsArgs`] contract and the CPU supports AVX-512 F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn columns(a: &ColumnsArgs) {
    // SAFETY: the `ColumnsArgs` contract includes `blend`'s for the same fields.
    unsafe { blend(&a.blend()) };
    let c = a.channels;
    let q = Quant512::new(a.q);
    let n = a.cols.len() * c;
    let (full, m) = (n - n % LANES, head(n % LANES));
    let mut i = 0;
    // SAFETY: `u` was written and `y` is writable for `n` elements; full vectors stay below
    // `full <= n`, the mask limits the rest.
    unsafe {
        while i < full {
            _mm_storeu_si128(a.y.add(i).cast(), q.bytes(_mm512_loadu_ps(a.u.add(i))));
            i += LANES;
        }
        if i < n {
            _mm_mask_storeu_epi8(a.y.add(i), m, q.bytes(_mm512_maskz_loadu_ps(m, a.u.add(i))));
        }
    }
}
