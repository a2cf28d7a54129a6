//! AVX2 bilinear kernels: 8 lanes of the scalar formula (`vdivps`, `vroundps` to nearest
//! even, no FMA). The last partial vector of a row's quantization is masked (`vmaskmovps`
//! loads), that of a row-blend run computed by the scalar kernel.

use super::{scalar, BlendArgs, ColumnsArgs, LinesArgs, Quantizer, PADDING};
use std::arch::x86_64::*;

/// Lanes per vector.
const LANES: usize = 8;
const _: () = assert!(LANES <= PADDING);

/// Row blend of `a.n` elements.
///
/// # Safety
/// `a` satisfies the [`LinesArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn lines(a: &LinesArgs) {
    let (zp, s) = (_mm256_set1_epi32(a.x.zero_point), _mm256_set1_ps(a.x.scale));
    let (w, wc) = (_mm256_set1_ps(a.w), _mm256_set1_ps(a.wc));
    let value = |b: __m128i| {
        _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepi8_epi32(b), zp)),
            s,
        )
    };
    let mut i = 0;
    while i + LANES <= a.n {
        // SAFETY: elements i..i+8 lie within the `n` the contract makes valid.
        unsafe {
            let (p, q) = (
                _mm_loadl_epi64(a.top.add(i).cast()),
                _mm_loadl_epi64(a.bottom.add(i).cast()),
            );
            let v = _mm256_add_ps(_mm256_mul_ps(value(p), wc), _mm256_mul_ps(value(q), w));
            _mm256_storeu_ps(a.t.add(i), v);
        }
        i += LANES;
    }
    // SAFETY: `i <= n`, so the pointers stay within (or one past) the valid runs.
    let (top, bottom, t) = unsafe { (a.top.add(i), a.bottom.add(i), a.t.add(i)) };
    let rest = LinesArgs {
        top,
        bottom,
        n: a.n - i,
        t,
        ..*a
    };
    // SAFETY: `rest` covers the last `n - i` elements of `a`'s valid runs.
    unsafe { scalar::lines(&rest) };
}

/// The quantizer's constants in vectors.
struct Quant256 {
    scale: __m256,
    zero_point: __m256,
    lo: __m256,
    hi: __m256,
    nan: __m256,
}

impl Quant256 {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(q: &Quantizer) -> Self {
        Quant256 {
            scale: _mm256_set1_ps(q.y.scale),
            zero_point: _mm256_set1_ps(q.zero_point),
            lo: _mm256_set1_ps(q.lo),
            hi: _mm256_set1_ps(q.hi),
            nan: _mm256_set1_ps(f32::from(q.nan)),
        }
    }

    /// [`Quantizer::byte`] of 8 values into the low 8 bytes: `clamp(round_even(v / s) + zp,
    /// lo, hi)`, a NaN quotient giving the NaN byte.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bytes(&self, v: __m256) -> __m128i {
        let t = _mm256_div_ps(v, self.scale);
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(t, t);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
        let r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, self.zero_point), self.lo), self.hi);
        let i = _mm256_cvtps_epi32(_mm256_blendv_ps(r, self.nan, nan));
        let words = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256::<1>(i));
        _mm_packs_epi16(words, words)
    }
}

/// Lanes below `n` (all bits set) are read and written by the masked moves; the others not.
#[inline]
#[target_feature(enable = "avx2")]
fn head(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Column blend of one output row into `u` (each pixel as whole vectors, in pixel order).
///
/// # Safety
/// `a` satisfies the [`BlendArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn blend(a: &BlendArgs) {
    let c = a.channels;
    for (j, col) in a.cols.iter().enumerate() {
        let (w, wc) = (_mm256_set1_ps(col.w), _mm256_set1_ps(col.wc));
        // SAFETY: the contract makes `t` readable at a0..a0+c+PADDING and a1..a1+c+PADDING
        // and `u` writable up to cols×c+PADDING; the vectors start below `c` and `LANES <=
        // PADDING`. Lanes past pixel j's channels are overwritten by pixel j+1 (later) or lie
        // in the padding.
        unsafe {
            let (t0, t1, u) = (a.t.add(col.a0), a.t.add(col.a1), a.u.add(j * c));
            let mut k = 0;
            while k < c {
                let (p, r) = (_mm256_loadu_ps(t0.add(k)), _mm256_loadu_ps(t1.add(k)));
                _mm256_storeu_ps(u.add(k), _mm256_add_ps(_mm256_mul_ps(p, wc), _mm256_mul_ps(r, w)));
                k += LANES;
            }
        }
    }
}

/// Column blend of one output row into `u`, then its quantization into `y`.
///
/// # Safety
/// `a` satisfies the [`ColumnsArgs`] contract and the CPU supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn columns(a: &ColumnsArgs) {
    // SAFETY: the `ColumnsArgs` contract includes `blend`'s for the same fields.
    unsafe { blend(&a.blend()) };
    let c = a.channels;
    let q = Quant256::new(a.q);
    let n = a.cols.len() * c;
    let (full, rest) = (n - n % LANES, n % LANES);
    let mut i = 0;
    // SAFETY: `u` was written and `y` is writable for `n` elements; full vectors stay below
    // `full <= n`, the mask limits the reads of the rest and only `rest` bytes are written.
    unsafe {
        while i < full {
            _mm_storel_epi64(a.y.add(i).cast(), q.bytes(_mm256_loadu_ps(a.u.add(i))));
            i += LANES;
        }
        if rest > 0 {
            let bytes = _mm_cvtsi128_si64(q.bytes(_mm256_maskload_ps(a.u.add(i), head(rest)))).to_le_bytes();
            std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<i8>(), a.y.add(i), rest);
        }
    }
}
