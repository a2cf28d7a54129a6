//! Resize: every ISA variant bit-identical to the scalar kernels, over random shapes, taps
//! (weights in `[0, 1]`, exact `0` / `1`, and huge ones whose products overflow to infinities
//! and NaNs), qparams and output ranges, in both modes; rows computed one call at a time equal
//! rows computed together (where equal taps turn into row copies), and nothing is written
//! outside the rows asked for.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::kernels::output::SharedOutput;
use xq::kernels::resize::{AxisTap, Resize, ResizeGeometry, ResizeToF32};
use xq::kernels::{Isa, OutputRange, QuantParams};

/// A weight: mostly in `[0, 1]`, sometimes exactly 0 or 1, sometimes far outside.
fn weight() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => 0f32..=1.0,
        1 => Just(0.0f32),
        1 => Just(1.0f32),
        1 => prop_oneof![Just(-3.5f32), Just(1e30), Just(-1e38), Just(3e38)],
    ]
}

/// `out` taps reading an axis of `len` (repeating the previous tap now and then, as
/// upsampling does).
fn taps(len: u32, out: usize) -> impl Strategy<Value = Vec<AxisTap>> {
    prop::collection::vec((0..len, 0..len, weight(), 0u8..4), out).prop_map(|v| {
        let mut taps: Vec<AxisTap> = Vec::with_capacity(v.len());
        for (i0, i1, w, repeat) in v {
            match taps.last() {
                Some(&last) if repeat == 0 => taps.push(last),
                _ => taps.push(AxisTap { i0, i1, w }),
            }
        }
        taps
    })
}

fn geometry() -> impl Strategy<Value = ResizeGeometry> {
    (1usize..3, 1usize..40, 1u32..7, 1u32..7, 1usize..12, 1usize..12).prop_flat_map(
        |(batch, channels, in_h, in_w, out_h, out_w)| {
            (taps(in_h, out_h), taps(in_w, out_w)).prop_map(move |(rows, cols)| ResizeGeometry {
                batch,
                channels,
                in_hw: (in_h as usize, in_w as usize),
                rows,
                cols,
            })
        },
    )
}

fn qparams() -> impl Strategy<Value = QuantParams> {
    (
        prop_oneof![1e-3f32..2.0, Just(1e-30f32), Just(1e30f32)],
        any::<i8>(),
    )
        .prop_map(|(scale, zp)| QuantParams {
            scale,
            zero_point: i32::from(zp),
        })
}

fn range() -> impl Strategy<Value = OutputRange> {
    (any::<i8>(), any::<i8>()).prop_map(|(a, b)| OutputRange::new(a.min(b), a.max(b)).unwrap())
}

/// Runs `r` on `x` one call for all rows and one call per row; both must agree. A guard byte
/// after the output catches writes past the end.
fn run(r: &Resize, x: &[i8]) -> Vec<i8> {
    let g = r.geometry();
    let n = g.output_len();
    let mut all = vec![0x55i8; n + 1];
    let out = SharedOutput::new(&mut all[..n]);
    // SAFETY: one call at a time.
    unsafe { r.run_shared(x, &out, 0..g.output_rows()).unwrap() };
    assert_eq!(all[n], 0x55, "wrote past the end");
    all.truncate(n);
    let mut each = vec![0x55i8; n];
    let out = SharedOutput::new(&mut each);
    for row in (0..g.output_rows()).rev() {
        // SAFETY: one call at a time.
        unsafe { r.run_shared(x, &out, row..row + 1).unwrap() };
    }
    assert_eq!(all, each, "rows computed alone differ");
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn simd_variants_match_scalar(
        g in geometry(),
        seed in any::<u64>(),
        x_q in qparams(),
        y_q in qparams(),
        range in range(),
        table in prop::collection::vec(any::<i8>(), 256),
    ) {
        let mut s = seed | 1;
        let x: Vec<i8> = (0..g.input_len())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as i8
            })
            .collect();
        let table: [i8; 256] = table.try_into().unwrap();
        let bilinear = |isa| Resize::bilinear(isa, g.clone(), x_q, y_q, range).unwrap();
        let want = run(&bilinear(Isa::Scalar), &x);
        let nearest = run(&Resize::nearest(Isa::Scalar, g.clone(), Some(table)).unwrap(), &x);
        for isa in simd_isas() {
            let r = bilinear(isa);
            prop_assert_eq!(&run(&r, &x), &want, "{}", r.kernel_name().unwrap());
            let r = Resize::nearest(isa, g.clone(), Some(table)).unwrap();
            prop_assert_eq!(&run(&r, &x), &nearest, "nearest under {}", isa);
        }
    }
}

/// The bits of `r`'s `f32` output of `x` (every NaN as one pattern: huge weights make NaNs
/// whose payload is not part of the contract), computed for all rows at once and row by row
/// (both must agree).
fn run_f32(r: &ResizeToF32, x: &[i8]) -> Vec<u32> {
    let mut y = vec![0f32; r.geometry().output_len() + 1];
    y[r.geometry().output_len()] = 7.0;
    let n = y.len() - 1;
    r.run(x, &mut y[..n]).unwrap();
    assert_eq!(y[n], 7.0, "wrote past the end");
    let mut each = vec![0f32; n];
    for row in (0..r.geometry().output_rows()).rev() {
        // SAFETY: `each` holds `n` elements; one call at a time.
        unsafe { r.run_rows(x, each.as_mut_ptr(), n, row..row + 1).unwrap() };
    }
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&each), bits(&y[..n]), "rows computed alone differ");
    y[..n]
        .iter()
        .map(|v| {
            if v.is_nan() {
                f32::NAN.to_bits()
            } else {
                v.to_bits()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn simd_variants_to_f32_match_scalar(g in geometry(), seed in any::<u64>(), x_q in qparams()) {
        let mut s = seed | 1;
        let x: Vec<i8> = (0..g.input_len())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as i8
            })
            .collect();
        for linear in [false, true] {
            let want = run_f32(&ResizeToF32::new(Isa::Scalar, g.clone(), x_q, linear).unwrap(), &x);
            for isa in simd_isas() {
                let r = ResizeToF32::new(isa, g.clone(), x_q, linear).unwrap();
                prop_assert_eq!(&run_f32(&r, &x), &want, "linear {} under {}", linear, isa);
            }
        }
    }
}

/// Bilinear into `f32` is the quantized kernel's value before its quantization: quantizing
/// the `f32` output gives the int8 kernel's bytes (NCHW against NHWC).
#[test]
fn the_f32_output_is_the_value_the_int8_kernel_quantizes() {
    let g = ResizeGeometry {
        batch: 2,
        channels: 21,
        in_hw: (3, 4),
        rows: (0..7)
            .map(|i| AxisTap {
                i0: i % 3,
                i1: (i + 1) % 3,
                w: i as f32 / 7.0,
            })
            .collect(),
        cols: (0..9)
            .map(|i| AxisTap {
                i0: i % 4,
                i1: (i * 3) % 4,
                w: 1.0 - i as f32 / 9.0,
            })
            .collect(),
    };
    let x: Vec<i8> = (0..g.input_len()).map(|i| (i * 37 % 251) as i8).collect();
    let (qx, qy) = (
        QuantParams {
            scale: 0.05,
            zero_point: 3,
        },
        QuantParams {
            scale: 0.03,
            zero_point: -7,
        },
    );
    for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
        let r = ResizeToF32::new(isa, g.clone(), qx, true).unwrap();
        let mut y = vec![0f32; g.output_len()];
        r.run(&x, &mut y).unwrap();
        let q = Resize::bilinear(isa, g.clone(), qx, qy, OutputRange::FULL).unwrap();
        let mut bytes = vec![0i8; g.output_len()];
        let out = SharedOutput::new(&mut bytes);
        // SAFETY: one call covers every row.
        unsafe { q.run_shared(&x, &out, 0..g.output_rows()).unwrap() };
        let (c, oh, ow) = (g.channels, g.rows.len(), g.cols.len());
        for (i, &b) in bytes.iter().enumerate() {
            let (n, oy, ox, k) = (i / (oh * ow * c), i / (ow * c) % oh, i / c % ow, i % c);
            let v = y[((n * c + k) * oh + oy) * ow + ox];
            let want = qy.quantize(v, xq::qscheme::QRange::I8, xq::qscheme::NanRule::Zero) as i8;
            assert_eq!(b, want, "{isa} at {i}");
        }
    }
}

/// The LR-ASPP head's shape, 21 channels (16 + 5 lanes, 2 × 8 + 5), 28 × 28 → 224 × 224 with
/// half-pixel taps, under every ISA.
#[test]
fn lraspp_head_upsampling_is_bit_identical_under_every_isa() {
    let half_pixel = |len: u32, out: u32| -> Vec<AxisTap> {
        (0..out)
            .map(|o| {
                let src = ((o as f32 + 0.5) * len as f32 / out as f32 - 0.5).max(0.0);
                let i0 = (src.floor() as u32).min(len - 1);
                AxisTap {
                    i0,
                    i1: (i0 + 1).min(len - 1),
                    w: src - src.floor(),
                }
            })
            .collect()
    };
    let g = ResizeGeometry {
        batch: 1,
        channels: 21,
        in_hw: (28, 28),
        rows: half_pixel(28, 224),
        cols: half_pixel(28, 224),
    };
    let x: Vec<i8> = (0..g.input_len()).map(|i| (i * 37 % 251) as i8).collect();
    let (qx, qy) = (
        QuantParams {
            scale: 0.173,
            zero_point: -7,
        },
        QuantParams {
            scale: 0.161,
            zero_point: 3,
        },
    );
    let want = run(
        &Resize::bilinear(Isa::Scalar, g.clone(), qx, qy, OutputRange::FULL).unwrap(),
        &x,
    );
    for isa in simd_isas() {
        let r = Resize::bilinear(isa, g.clone(), qx, qy, OutputRange::FULL).unwrap();
        assert_eq!(run(&r, &x), want, "{isa}");
    }
}
