//! int8 CPU kernels: one module per kernel family, each with a scalar reference and SIMD
//! variants (AVX2, AVX-VNNI, AVX-512 VNNI) that give bit-identical results.
//!
//! Kernels know nothing about graphs. Activations are NHWC `i8` slices; weights are packed
//! once (`pack`, for an explicit [`Isa`]) into an owned struct, then `run` computes a range
//! of tiles so that a runtime can split an operator's tiles across threads.
//! The kernel variant of each family is chosen in one place, [`table`]: one row of function
//! pointers and layouts per ISA ([`table::selected`] gives the process-wide row; every
//! `pack`/`new` also accepts an explicit [`Isa`] so tests and benchmarks can run each row in
//! one process).
//!
//! Families: [`gemm`] (fully connected, 1×1 conv), [`conv`] (k×k grouped convolution
//! through an [`indirection`] table and the GEMM microkernels), [`dwconv`] (depthwise),
//! [`elementwise`] (add, mul), [`lut`] (table lookup: the int8 unary operators), [`softmax`] (along one axis, by a
//! table of exponentials), [`pool`]
//! (global average / mean, windowed average, max pool), [`concat`](mod@concat), [`resize`]
//! (nearest, bilinear), [`dynamic`] (per-row quantization + GEMM with `f32` output), and the byte moves [`gather`],
//! [`block_copy`] and [`im2col`]. Several threads may run
//! disjoint tile ranges of one operator through the `run_shared` functions and
//! [`output::SharedOutput`]. The kernels assume the default floating-point environment
//! (round to nearest, no flush-to-zero), as Rust itself does.
//!
//! # Requantization (the one contract every kernel follows)
//!
//! Quantized values are `real = (q - zp) * scale` (see DESIGN §3). Every kernel computes an
//! exact integer or `f32` intermediate and requantizes with the same final step:
//!
//! ```text
//! requantize(v) = clamp(round_half_even(max(min(v, hi - zp_y), lo - zp_y)) + zp_y, lo, hi)
//! ```
//!
//! where `v` is an `f32`, `[lo, hi]` is the output range (−128..127 narrowed by a fused
//! activation), and the float clamp happens *before* rounding (equivalent to clamping after,
//! since the bounds are integers, and it keeps the float→int conversion in range on every
//! ISA). All `f32` operations below are single IEEE operations in the order written
//! (`fma(x, y, z)` is one fused multiply-add, rounded once), which is what makes the SIMD
//! paths bit-identical to the scalar ones.
//!
//! The add / mul / mean / concat formulas are ONNX Runtime's integer kernels on x86-64 (MLAS
//! `QLinearAdd` (AVX2), `QLinearMul`, `QLinearGlobalAveragePool`, `QLinearConcat`, as its
//! CPU provider runs them for QDQ models), restated here, so that a QDQ model gives the same bytes in both:
//! `tests/kernels_elementwise.rs` and `tests/kernels_pool.rs` check every input pair /
//! many images against ONNX Runtime byte for byte. ONNX Runtime computes add and mul on the
//! tensors' stored integers with the output zero point inside the rounding, so their
//! rounding depends on the storage type: `off` below is 0 for int8 tensors and 128 for uint8
//! ones (which libxq carries as the int8 `u - 128`, zero points shifted alike); add and mul
//! then produce the output in the stored domain and requantize with zero point `-off`.
//! ONNX Runtime is not consistent across its own ISAs (its SSE2-only QLinearAdd rounds
//! `(fixed + a·ma) + b·mb` without FMA, its Arm one uses fixed-point arithmetic); libxq
//! follows the x86-64 AVX2 kernel, which ONNX Runtime runs on every AVX2 or AVX-512 CPU, and
//! gives that result on every ISA of its own.
//!
//! - **Conv / fully connected / depthwise:** `acc = Σ (x - zp_x)·w + bias` in wrapping
//!   `i32` (exact for every size the packers accept), `v = (acc as f32) * m[c]` with
//!   `m[c] = (s_x * s_w[c]) / s_y` computed in `f32` once at pack time. ONNX Runtime's
//!   QLinearConv / QGemm give the same bytes only on CPUs with VNNI: on AVX2 without it their
//!   uint8 × int8 path saturates pairwise sums in int16 (up to 27 steps off on a QDQ Conv
//!   under `qemu-x86_64 -cpu Haswell`), so tests check these kernels against exact
//!   arithmetic and against ONNX Runtime's unfused DequantizeLinear → Conv → QuantizeLinear
//!   (within one step), never against its fused kernels.
//! - **Add:** with `ma = s_a / s_y`, `mb = s_b / s_y` and
//!   `fixed = (zp_y + off) - fma(ma, zp_a + off, mb * (zp_b + off))` computed in `f32` once,
//!   `v = fma(a + off, ma, fma(b + off, mb, fixed))`, requantized with zero point `-off`.
//!   When one operand is broadcast along the innermost ONNX axis (an SE-block scale
//!   `N×C×1×1`, a scalar) and the other is not, the operands exchange roles (ONNX Runtime
//!   streams the full one and folds the broadcast one into its constant term; it keeps such
//!   a broadcasting add in NCHW, as observed after an NHWC QLinearConv).
//! - **Sub:** the Add with the subtrahend's multiplier negated (`mb = -s_b / s_y`, or
//!   `ma = -s_b / s_y` for the streamed operand when the operands exchange roles), `fixed`
//!   computed from the signed multipliers.
//! - **Mul:** `v = ((a - zp_a) * (b - zp_b)) as f32 * m + (zp_y + off)` with
//!   `m = (s_a * s_b) / s_y` (two roundings, no FMA; the integer product is exact in `i32`),
//!   requantized with zero point `-off`.
//! - **Mean over H·W (global average pool):** `v = (Σ (x - zp_x)) as f32 * (s_x / (s_y * count))`,
//!   the ratio computed in `f32` once as `s_x / (s_y * count as f32)`; the same bytes for
//!   either storage type (the zero point is added after rounding). A windowed average pool
//!   (ONNX AveragePool) is the same formula over each output pixel's window, the sum over the
//!   taps inside the input and `count` that pixel's divisor (see [`pool::AvgPool`]).
//! - **Concat with differing qparams:** each input is requantized with
//!   `v = ((x - zp_x) as f32 * s_x) / s_y` (dequantize, then ONNX QuantizeLinear's division,
//!   as ONNX Runtime's QLinearConcat builds its lookup table); inputs whose qparams equal the
//!   output's are copied.
//! - **Max pool** is a byte move (output qparams equal input qparams) with an optional clamp.
//! - **Dynamic quantization** (per row of an `f32` matrix,
//!   [`RowRule::Qd8`](crate::qscheme::RowRule::Qd8)): `rmin = min(0, min row)`,
//!   `rmax = max(0, max row)`, `scale = (rmax - rmin) / 255` (1 when the row is all zero),
//!   `zp = clamp(round_half_even(-128 - rmin / scale), -128, 127)`,
//!   `q = clamp(round_half_even(x / scale) + zp, -128, 127)`; the dynamic GEMM returns
//!   `y = (acc as f32) * (s_row * s_w[c]) + bias_f32[c]` with `acc = Σ (q - zp)·w`.

pub mod block_copy;
pub mod boundary;
pub mod buffer;
pub mod concat;
pub mod conv;
pub mod dwconv;
pub mod dynamic;
pub mod elementwise;
mod epilogue;
pub mod gather;
pub mod gemm;
pub mod im2col;
pub mod indirection;
pub mod lut;
pub mod output;
pub mod pool;
pub mod reduce;
pub mod reference;
pub mod requant;
pub mod resize;
pub mod scratch;
pub mod softmax;
pub mod table;

pub use crate::cpu::Isa;
pub use requant::{OutputRange, QuantParams};

use crate::{Error, Result};

/// Fails with a clear error when `isa` cannot run on this CPU.
pub fn ensure_supported(isa: Isa) -> Result<()> {
    if isa.is_supported() {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "kernel ISA `{isa}` is not supported by this CPU"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn packed_operators_can_be_shared_across_threads() {
        assert_send_sync::<gemm::PackedGemm>();
        assert_send_sync::<conv::PackedConv>();
        assert_send_sync::<conv::PackedDynamicConv>();
        assert_send_sync::<dwconv::PackedDwConv>();
        assert_send_sync::<dynamic::PackedDynamicGemm>();
        assert_send_sync::<elementwise::QuantizedBinary>();
        assert_send_sync::<pool::GlobalAvgPool>();
        assert_send_sync::<pool::MaxPool>();
        assert_send_sync::<pool::AvgPool>();
        assert_send_sync::<concat::Concat>();
        assert_send_sync::<indirection::Indirection>();
        assert_send_sync::<lut::Lut>();
        assert_send_sync::<softmax::Softmax>();
        assert_send_sync::<output::SharedOutput<'static>>();
    }

    #[test]
    fn ensure_supported_accepts_exactly_the_supported_isas() {
        for isa in Isa::ALL {
            assert_eq!(ensure_supported(isa).is_ok(), isa.is_supported(), "{isa}");
        }
    }
}
