//! The SIMD forms of [`super::requant::Requantizer::apply`] applied to `(acc as f32) * m`,
//! shared by every x86 kernel. Operation order matches the scalar path exactly: convert,
//! multiply, clamp in float, round half to even, add the zero point.

#![cfg(target_arch = "x86_64")]

use super::requant::Requantizer;
use std::arch::x86_64::*;

/// Broadcast requantization constants for 512-bit kernels.
#[derive(Clone, Copy)]
pub(crate) struct Requant512 {
    lo: __m512,
    hi: __m512,
    zp: __m512i,
    zp16: __m512i,
    min8: __m512i,
}

impl Requant512 {
    /// Broadcasts the constants of `rq`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) fn new(rq: &Requantizer) -> Self {
        Requant512 {
            lo: _mm512_set1_ps(rq.min_less_zp),
            hi: _mm512_set1_ps(rq.max_less_zp),
            zp: _mm512_set1_epi32(rq.zero_point),
            zp16: _mm512_set1_epi16(rq.zero_point as i16),
            min8: _mm512_set1_epi8((rq.min_less_zp as i32 + rq.zero_point) as i8),
        }
    }

    /// `J <= 4` vectors of 16 consecutive columns requantized into the first `16·J` bytes
    /// of the result, in column order. Only the upper clamp is applied in float (it keeps
    /// the conversion in `i32` range; a value below `i32::MIN` converts to `i32::MIN`, still
    /// the smallest); the rounded values are narrowed with saturation, the zero point is
    /// added in saturating `i16` and the lower clamp is a byte `max`. Rounding is monotonic
    /// and the bounds are integers, so the bytes equal [`Requantizer::apply`]'s.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) fn apply_columns<const J: usize>(&self, acc: &[__m512i; J], mult: &[__m512; J]) -> __m512i {
        let mut q = [_mm512_setzero_si512(); 4];
        for j in 0..J.min(4) {
            let v = _mm512_min_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[j]), mult[j]), self.hi);
            q[j] = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        }
        let low = _mm512_adds_epi16(_mm512_packs_epi32(q[0], q[1]), self.zp16);
        let high = if J > 2 {
            _mm512_adds_epi16(_mm512_packs_epi32(q[2], q[3]), self.zp16)
        } else {
            low
        };
        // 128-bit lane L now holds dword L of every column vector j at dword 4L + j; gather
        // each vector's four dwords back together.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let bytes = _mm512_permutexvar_epi32(order, _mm512_packs_epi16(low, high));
        _mm512_max_epi8(bytes, self.min8)
    }

    /// 32 channels from even/odd accumulators (`even` lane k is channel 2k, `odd` lane k
    /// channel 2k + 1) requantized as 32 bytes in channel order: the two rounded halves are
    /// merged as `i16` pairs, the zero point is added in `i16` and the words are narrowed
    /// (exact: the clamp keeps every value in `i8` range).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) fn apply_even_odd(
        &self,
        even: __m512i,
        odd: __m512i,
        m_even: __m512,
        m_odd: __m512,
    ) -> __m256i {
        let round = |acc: __m512i, m: __m512| {
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), m);
            let v = _mm512_min_ps(_mm512_max_ps(v, self.lo), self.hi);
            _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v)
        };
        let pairs = _mm512_mask_blend_epi16(
            0xAAAA_AAAA,
            round(even, m_even),
            _mm512_slli_epi32::<16>(round(odd, m_odd)),
        );
        // The zero point fits in i16 lanes (|zp| <= 128), and so does every sum.
        let zp = _mm512_set1_epi16(_mm_cvtsi128_si32(_mm512_castsi512_si128(self.zp)) as i16);
        _mm512_cvtepi16_epi8(_mm512_add_epi16(pairs, zp))
    }

    /// 64 lanes of `requantize(v)` (`v[j]` lane k is element `16·j + k`) as 64 bytes in
    /// element order. Each lane is clamped in float, rounded and offset as in
    /// [`Requant512::apply_f32`]; the sums are already in `i8` range, so the saturating packs
    /// only narrow them.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) fn apply_f32x4(&self, v: [__m512; 4]) -> __m512i {
        let q = v.map(|v| {
            let v = _mm512_min_ps(_mm512_max_ps(v, self.lo), self.hi);
            let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm512_add_epi32(q, self.zp)
        });
        let bytes = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
        // 128-bit lane L holds dword L of every vector j at dword 4L + j; put each vector's
        // four dwords back together.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_epi32(order, bytes)
    }

    /// 16 lanes of `requantize(v)` as 16 bytes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn apply_f32(&self, v: __m512) -> __m128i {
        let v = _mm512_min_ps(_mm512_max_ps(v, self.lo), self.hi);
        let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        _mm512_cvtepi32_epi8(_mm512_add_epi32(q, self.zp))
    }
}

/// Broadcast requantization constants for 256-bit kernels.
#[derive(Clone, Copy)]
pub(crate) struct Requant256 {
    lo: __m256,
    hi: __m256,
    zp: __m256i,
}

impl Requant256 {
    /// Broadcasts the constants of `rq`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn new(rq: &Requantizer) -> Self {
        Requant256 {
            lo: _mm256_set1_ps(rq.min_less_zp),
            hi: _mm256_set1_ps(rq.max_less_zp),
            zp: _mm256_set1_epi32(rq.zero_point),
        }
    }

    /// 8 lanes of `requantize((acc as f32) * mult)` in the low 8 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn apply(&self, acc: __m256i, mult: __m256) -> __m128i {
        self.apply_f32(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), mult))
    }

    /// 32 lanes of `requantize(v)` (`v[j]` lane k is element `8·j + k`) as 32 bytes in
    /// element order, each lane as in [`Requant256::apply_f32`]; the sums are already in `i8`
    /// range, so the saturating packs only narrow them.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn apply_f32x4(&self, v: [__m256; 4]) -> __m256i {
        let q = v.map(|v| {
            let v = _mm256_min_ps(_mm256_max_ps(v, self.lo), self.hi);
            let v = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm256_add_epi32(_mm256_cvttps_epi32(v), self.zp)
        });
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        // 128-bit half H holds dwords 4H..4H + 4 of every vector j at dword 4H + j; put each
        // vector's two dwords back together.
        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// 8 lanes of `requantize(v)` in the low 8 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn apply_f32(&self, v: __m256) -> __m128i {
        let v = _mm256_min_ps(_mm256_max_ps(v, self.lo), self.hi);
        let v = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        let q = _mm256_add_epi32(_mm256_cvttps_epi32(v), self.zp);
        let words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
        _mm_packs_epi16(words, words)
    }
}

/// Stores the low `n <= 8` bytes of `v` at `dst`.
///
/// # Safety
/// `dst` must be valid for `n` byte writes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn store_low_bytes(dst: *mut i8, v: __m128i, n: usize) {
    // SAFETY: writes exactly n <= 8 bytes at dst (caller contract).
    unsafe {
        if n == 8 {
            _mm_storel_epi64(dst.cast(), v);
        } else {
            let mut tmp = [0i8; 16];
            _mm_storeu_si128(tmp.as_mut_ptr().cast(), v);
            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n);
        }
    }
}
