//! Portable pooling kernels: the test oracles of the SIMD variants.

use super::{AvgArgs, MaxArgs, MeanArgs};

/// Mean of one image.
///
/// # Safety
/// `a` satisfies the [`MeanArgs`] contract.
pub(super) unsafe fn mean(a: &MeanArgs) {
    for c in 0..a.channels {
        let mut sum = 0i32;
        for p in 0..a.pixels {
            // SAFETY: (p, c) is inside the image (MeanArgs contract).
            sum += unsafe { *a.x.add(p * a.channels + c) } as i32;
        }
        // SAFETY: c < channels is writable.
        unsafe { *a.out.add(c) = a.rq.apply((sum - a.zp_times_count) as f32 * a.m) };
    }
}

/// Max over the taps of one output pixel.
///
/// # Safety
/// `a` satisfies the [`MaxArgs`] contract.
pub(super) unsafe fn max(a: &MaxArgs) {
    for c in 0..a.channels {
        let mut v = i8::MIN;
        for &p in a.ptrs {
            // SAFETY: each pointer is readable for `channels` bytes.
            v = v.max(unsafe { *p.add(c) });
        }
        // SAFETY: c < channels is writable.
        unsafe { *a.out.add(c) = v.clamp(a.lo, a.hi) };
    }
}

/// Average over the taps of one output pixel.
///
/// # Safety
/// `a` satisfies the [`AvgArgs`] contract.
pub(super) unsafe fn avg(a: &AvgArgs) {
    for c in 0..a.channels {
        let mut sum = 0i32;
        for &p in a.ptrs {
            // SAFETY: each pointer is readable for `channels` bytes.
            sum += unsafe { *p.add(c) } as i32;
        }
        // SAFETY: c < channels is writable.
        unsafe { *a.out.add(c) = a.rq.apply((sum - a.zp_times_count) as f32 * a.m) };
    }
}
