//! Global average pool, average pool and max pool: every ISA variant bit-identical to the
//! scalar kernel, the scalar kernels checked against f64 (means, within one step) and exactly
//! (max), the mean byte-identical to ONNX Runtime's QLinearGlobalAveragePool and an average
//! pool over the whole image byte-identical to the mean.

mod common;
mod delegate_common;
mod kernels_common;

use kernels_common::{conv_geometry, simd_isas};
use proptest::prelude::*;
use xq::kernels::indirection::{ConvGeometry, Indirection};
use xq::kernels::pool::{AvgDivisor, AvgPool, GlobalAvgPool, MaxPool};
use xq::kernels::reference::{dequantize, quantize};
use xq::kernels::{Isa, OutputRange, QuantParams};

fn mean(
    isa: Isa,
    batch: usize,
    pixels: usize,
    c: usize,
    x: &[i8],
    q: (QuantParams, QuantParams, OutputRange),
) -> Vec<i8> {
    let k = GlobalAvgPool::new(isa, pixels, q.0, q.1, q.2).unwrap();
    let mut y = vec![0x55; batch * c];
    k.run(batch, c, x, &mut y, 0..k.tile_count(batch)).unwrap();
    y
}

fn max_pool(isa: Isa, g: &ConvGeometry, x: &[i8], range: OutputRange, split: f64) -> Vec<i8> {
    let k = MaxPool::new(isa, range).unwrap();
    let ind = Indirection::new(g).unwrap();
    let tiles = k.tile_count(&ind);
    let cut = (tiles as f64 * split) as usize;
    let mut y = vec![0x55; g.batch * g.out_h() * g.out_w() * g.in_c];
    k.run(&ind, x, &mut y, 0..cut).unwrap();
    k.run(&ind, x, &mut y, cut..tiles).unwrap();
    y
}

fn avg_pool(
    isa: Isa,
    g: &ConvGeometry,
    d: AvgDivisor,
    x: &[i8],
    q: (QuantParams, QuantParams, OutputRange),
    split: f64,
) -> Vec<i8> {
    let k = AvgPool::new(isa, g, d, q.0, q.1, q.2).unwrap();
    let tiles = k.tile_count();
    let cut = (tiles as f64 * split) as usize;
    let mut y = vec![0x55; g.batch * g.out_h() * g.out_w() * g.in_c];
    k.run(x, &mut y, 0..cut).unwrap();
    k.run(x, &mut y, cut..tiles).unwrap();
    y
}

/// The average of every output element from the definition, in f64, quantized.
fn avg_pool_reference(
    g: &ConvGeometry,
    d: AvgDivisor,
    x: &[i8],
    q: (QuantParams, QuantParams, OutputRange),
) -> Vec<i8> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut y = Vec::new();
    for b in 0..g.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..g.in_c {
                    let (mut sum, mut inside, mut padded) = (0f64, 0usize, 0usize);
                    for ky in 0..g.k_h {
                        for kx in 0..g.k_w {
                            let py = oy * g.stride.0 + ky * g.dilation.0;
                            let px = ox * g.stride.1 + kx * g.dilation.1;
                            if let AvgDivisor::Padded { end } = d {
                                if py < g.in_h + g.padding.0 + end.0 && px < g.in_w + g.padding.1 + end.1 {
                                    padded += 1;
                                }
                            }
                            let (iy, ix) = (
                                py as isize - g.padding.0 as isize,
                                px as isize - g.padding.1 as isize,
                            );
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                                sum += dequantize(
                                    x[((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c + c],
                                    q.0,
                                );
                                inside += 1;
                            }
                        }
                    }
                    let n = if matches!(d, AvgDivisor::Inside) {
                        inside
                    } else {
                        padded
                    };
                    y.push(quantize(if n == 0 { 0.0 } else { sum / n as f64 }, q.1, q.2));
                }
            }
        }
    }
    y
}

fn geometry() -> impl Strategy<Value = ConvGeometry> {
    conv_geometry(9, 100, 4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mean_scalar_close_and_simd_identical(
        (batch, pixels, c) in (1usize..3, 1usize..60, 1usize..80),
        seed in any::<u64>(),
        (xs, xz, ys, yz, relu) in (-6f32..0f32, -128i32..=127, -6f32..0f32, -128i32..=127, any::<bool>()),
    ) {
        let mut s = seed | 1;
        let x: Vec<i8> = (0..batch * pixels * c).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as i8 }).collect();
        let qi = QuantParams { scale: xs.exp2(), zero_point: xz };
        let qo = QuantParams { scale: ys.exp2(), zero_point: yz };
        let range = if relu { OutputRange::relu(yz) } else { OutputRange::FULL };
        let scalar = mean(Isa::Scalar, batch, pixels, c, &x, (qi, qo, range));
        for b in 0..batch {
            for ch in 0..c {
                let sum: f64 = (0..pixels).map(|p| dequantize(x[(b * pixels + p) * c + ch], qi)).sum();
                let want = quantize(sum / pixels as f64, qo, range);
                let got = scalar[b * c + ch];
                prop_assert!((got as i32 - want as i32).abs() <= 1, "{} vs {}", got, want);
            }
        }
        for isa in simd_isas() {
            prop_assert_eq!(&mean(isa, batch, pixels, c, &x, (qi, qo, range)), &scalar, "{}", isa);
        }
    }

    #[test]
    fn avg_pool_scalar_close_and_simd_identical(
        g in conv_geometry(9, 150, 5),
        seed in any::<u64>(),
        (include, end_h, end_w) in (any::<bool>(), 0usize..3, 0usize..3),
        (xs, xz, ys, yz, relu) in (-6f32..0f32, -128i32..=127, -6f32..0f32, -128i32..=127, any::<bool>()),
        split in 0.0f64..1.0,
    ) {
        let mut s = seed | 1;
        let x: Vec<i8> = (0..g.batch * g.image_len()).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as i8 }).collect();
        let qi = QuantParams { scale: xs.exp2(), zero_point: xz };
        let qo = QuantParams { scale: ys.exp2(), zero_point: yz };
        let range = if relu { OutputRange::relu(yz) } else { OutputRange::FULL };
        let d = if include {
            AvgDivisor::Padded { end: (end_h.min(g.padding.2), end_w.min(g.padding.3)) }
        } else {
            AvgDivisor::Inside
        };
        let scalar = avg_pool(Isa::Scalar, &g, d, &x, (qi, qo, range), split);
        let want = avg_pool_reference(&g, d, &x, (qi, qo, range));
        for (i, (&got, &want)) in scalar.iter().zip(&want).enumerate() {
            prop_assert!((got as i32 - want as i32).abs() <= 1, "element {}: {} vs {}", i, got, want);
        }
        for isa in simd_isas() {
            prop_assert_eq!(&avg_pool(isa, &g, d, &x, (qi, qo, range), split), &scalar, "{}", isa);
        }
    }

    #[test]
    fn max_pool_exact_and_simd_identical(g in geometry(), seed in any::<u64>(), lo in -128i8..0, split in 0.0f64..1.0) {
        let mut s = seed | 1;
        let x: Vec<i8> = (0..g.batch * g.image_len()).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as i8 }).collect();
        let range = OutputRange::new(lo, 127).unwrap();
        let scalar = max_pool(Isa::Scalar, &g, &x, range, split);
        let (oh, ow) = (g.out_h(), g.out_w());
        for b in 0..g.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for c in 0..g.in_c {
                        let mut want = i8::MIN;
                        for ky in 0..g.k_h {
                            for kx in 0..g.k_w {
                                let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize - g.padding.0 as isize;
                                let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize - g.padding.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                                    want = want.max(x[((b * g.in_h + iy as usize) * g.in_w + ix as usize) * g.in_c + c]);
                                }
                            }
                        }
                        let got = scalar[((b * oh + oy) * ow + ox) * g.in_c + c];
                        prop_assert_eq!(got, want.max(lo));
                    }
                }
            }
        }
        for isa in simd_isas() {
            prop_assert_eq!(&max_pool(isa, &g, &x, range, split), &scalar, "{}", isa);
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let q = QuantParams {
        scale: 1.0,
        zero_point: 0,
    };
    assert!(GlobalAvgPool::new(Isa::Scalar, 0, q, q, OutputRange::FULL).is_err());
    assert!(GlobalAvgPool::new(Isa::Scalar, 1 << 24, q, q, OutputRange::FULL).is_err());
    let k = GlobalAvgPool::new(Isa::Scalar, 4, q, q, OutputRange::FULL).unwrap();
    let mut y = vec![0; 6];
    assert!(k.run(2, 3, &[0; 23], &mut y, 0..2).is_err());
    assert!(k.run(2, 3, &[0; 24], &mut y, 0..3).is_err());
    let x: Vec<i8> = (0..24).map(|i| i as i8).collect();
    k.run(2, 3, &x, &mut y, 0..2).unwrap();
    // Channel 0 of image 0: mean(0, 3, 6, 9) = 4.5 -> 4 (ties to even).
    assert_eq!(y, vec![4, 6, 6, 16, 18, 18]);
}

#[test]
fn an_avg_pool_over_the_whole_image_is_the_global_average_pool_byte_for_byte() {
    // Same formula, same multiplier: the bytes ONNX Runtime's QLinearGlobalAveragePool gives
    // (checked below for the global pool) are the windowed pool's too.
    let mut s = 11u64;
    for (h, w, c) in [(7, 7, 300), (13, 13, 100), (2, 3, 33), (1, 1, 64)] {
        let x: Vec<i8> = (0..2 * h * w * c)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as i8
            })
            .collect();
        let q = (
            QuantParams {
                scale: 0.05,
                zero_point: 9,
            },
            QuantParams {
                scale: 0.013,
                zero_point: -20,
            },
            OutputRange::FULL,
        );
        let g = ConvGeometry {
            batch: 2,
            in_h: h,
            in_w: w,
            in_c: c,
            k_h: h,
            k_w: w,
            stride: (1, 1),
            dilation: (1, 1),
            padding: (0, 0, 0, 0),
        };
        let want = mean(Isa::Scalar, 2, h * w, c, &x, q);
        for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
            assert_eq!(
                avg_pool(isa, &g, AvgDivisor::Inside, &x, q, 0.5),
                want,
                "{isa} {h}x{w}x{c}"
            );
        }
    }
}

#[test]
fn avg_pool_windows_past_the_i16_sums_of_the_simd_rows_are_identical() {
    // 17 × 17 = 289 taps, past the 256 the SIMD rows sum in i16; and 16 × 16 = 256 at it,
    // with inputs at -128 where an i16 sum would first overflow.
    let mut s = 7u64;
    for (k, fill) in [(17, None), (16, Some(-128i8)), (16, None)] {
        let g = ConvGeometry {
            batch: 1,
            in_h: 20,
            in_w: 18,
            in_c: 70,
            k_h: k,
            k_w: k,
            stride: (1, 1),
            dilation: (1, 1),
            padding: (0, 0, 0, 0),
        };
        let x: Vec<i8> = (0..g.image_len())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                fill.unwrap_or(s as i8)
            })
            .collect();
        let qi = QuantParams {
            scale: 0.03,
            zero_point: -5,
        };
        let qo = QuantParams {
            scale: 0.01,
            zero_point: 2,
        };
        let q = (qi, qo, OutputRange::FULL);
        let scalar = avg_pool(Isa::Scalar, &g, AvgDivisor::Inside, &x, q, 0.5);
        for (got, want) in scalar
            .iter()
            .zip(avg_pool_reference(&g, AvgDivisor::Inside, &x, q))
        {
            assert!((*got as i32 - want as i32).abs() <= 1, "k {k}: {got} vs {want}");
        }
        for isa in simd_isas() {
            assert_eq!(
                avg_pool(isa, &g, AvgDivisor::Inside, &x, q, 0.5),
                scalar,
                "{isa} k {k}"
            );
        }
    }
}

#[test]
fn avg_pool_divisors_and_bad_arguments() {
    let q = QuantParams {
        scale: 1.0,
        zero_point: 0,
    };
    // A 2×2 single-channel image, 2×2 window, stride 2, pads (1, 1, 1, 1): each output pixel
    // sees one input cell of its four.
    let g = ConvGeometry {
        batch: 1,
        in_h: 2,
        in_w: 2,
        in_c: 1,
        k_h: 2,
        k_w: 2,
        stride: (2, 2),
        dilation: (1, 1),
        padding: (1, 1, 1, 1),
    };
    let x = [8i8, 12, -20, 100];
    let run = |d: AvgDivisor, g: &ConvGeometry| {
        let k = AvgPool::new(Isa::Scalar, g, d, q, q, OutputRange::FULL).unwrap();
        let mut y = vec![0; g.out_h() * g.out_w()];
        k.run(&x, &mut y, 0..k.tile_count()).unwrap();
        y
    };
    assert_eq!(run(AvgDivisor::Inside, &g), vec![8, 12, -20, 100]);
    assert_eq!(run(AvgDivisor::Padded { end: (1, 1) }, &g), vec![2, 3, -5, 25]);
    // End padding not counted (ceil_mode's extra): the last row and column count 2 cells.
    assert_eq!(run(AvgDivisor::Padded { end: (0, 0) }, &g), vec![2, 6, -10, 100]);
    // A window wholly in the padding gives the output zero point.
    let far = ConvGeometry {
        padding: (0, 0, 2, 2),
        ..g
    };
    let qo = QuantParams {
        scale: 1.0,
        zero_point: 7,
    };
    let k = AvgPool::new(Isa::Scalar, &far, AvgDivisor::Inside, q, qo, OutputRange::FULL).unwrap();
    let mut y = vec![0; 4];
    k.run(&x, &mut y, 0..k.tile_count()).unwrap();
    assert_eq!(y, vec![25 + 7, 7, 7, 7]);
    // Counted padding past the window's, a huge window and short buffers are errors.
    assert!(AvgPool::new(
        Isa::Scalar,
        &g,
        AvgDivisor::Padded { end: (2, 1) },
        q,
        q,
        OutputRange::FULL
    )
    .is_err());
    let wide = ConvGeometry {
        in_h: 4096,
        in_w: 4096,
        k_h: 4096,
        k_w: 4096,
        padding: (0, 0, 0, 0),
        ..g
    };
    assert!(AvgPool::new(Isa::Scalar, &wide, AvgDivisor::Inside, q, q, OutputRange::FULL).is_err());
    let k = AvgPool::new(Isa::Scalar, &g, AvgDivisor::Inside, q, q, OutputRange::FULL).unwrap();
    assert!(k.run(&x[..3], &mut [0; 4], 0..2).is_err());
    assert!(k.run(&x, &mut [0; 3], 0..2).is_err());
    assert!(k.run(&x, &mut [0; 4], 0..3).is_err());
}

/// One global average pool case for ONNX Runtime: NCHW shape, qparams as (scale, zero
/// point in the graph's type), seed of its input (see tests/python/qlinear_cases.py).
#[derive(Clone, Copy, Debug)]
struct OrtGapCase {
    unsigned: bool,
    shape: [usize; 4],
    x: (f32, i32),
    y: (f32, i32),
    seed: u64,
}

#[test]
fn global_average_pool_is_byte_identical_to_onnxruntime() {
    let Some(python) = delegate_common::python("global_average_pool_is_byte_identical_to_onnxruntime") else {
        return;
    };
    let mut cases = Vec::new();
    let mut seed = 0;
    for unsigned in [false, true] {
        let (lo, hi) = if unsigned { (0, 255) } else { (-128, 127) };
        for shape in [
            [2, 300, 7, 7],
            [1, 64, 1, 1],
            [1, 100, 13, 13],
            [2, 33, 2, 3],
            [1, 17, 14, 14],
        ] {
            for (x, y) in [
                ((0.05, lo + 10), (0.01, lo)),
                ((0.02, hi), (0.02, (lo + hi) / 2)),
                ((0.0123, lo + 77), (0.031, hi - 3)),
                ((0.1, (lo + hi) / 2), (0.0007, lo + 1)),
            ] {
                seed += 1;
                cases.push(OrtGapCase {
                    unsigned,
                    shape,
                    x,
                    y,
                    seed,
                });
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cases.json");
    let q = |(s, z): (f32, i32)| serde_json::json!([s as f64, z]);
    let json: Vec<_> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "op": "GlobalAveragePool",
                "dtype": if c.unsigned { "uint8" } else { "int8" },
                "x": q(c.x), "y": q(c.y), "shape": c.shape, "seed": c.seed,
            })
        })
        .collect();
    std::fs::write(&spec, serde_json::to_string(&json).unwrap()).unwrap();
    let script = delegate_common::root().join("tests/python/qlinear_cases.py");
    delegate_common::run_python(
        &python,
        &script,
        &[spec.to_str().unwrap(), dir.path().to_str().unwrap()],
    );
    for (k, case) in cases.iter().enumerate() {
        let off = if case.unsigned { 128 } else { 0 };
        let carried = |b: u8| {
            if case.unsigned {
                (b as i32 - 128) as i8
            } else {
                b as i8
            }
        };
        let x_nchw = std::fs::read(dir.path().join(format!("{k}_x.bin"))).unwrap();
        let theirs: Vec<i8> = std::fs::read(dir.path().join(format!("{k}_y.bin")))
            .unwrap()
            .into_iter()
            .map(carried)
            .collect();
        let [n, c, h, w] = case.shape;
        let pixels = h * w;
        // NCHW → NHWC.
        let mut x = vec![0i8; x_nchw.len()];
        for b in 0..n {
            for ch in 0..c {
                for p in 0..pixels {
                    x[(b * pixels + p) * c + ch] = carried(x_nchw[(b * c + ch) * pixels + p]);
                }
            }
        }
        let qp = |(scale, z): (f32, i32)| QuantParams {
            scale,
            zero_point: z - off,
        };
        for isa in std::iter::once(Isa::Scalar).chain(simd_isas()) {
            let ours = mean(isa, n, pixels, c, &x, (qp(case.x), qp(case.y), OutputRange::FULL));
            assert_eq!(ours, theirs, "{isa} {case:?}");
        }
    }
    println!("{} global average pool cases byte-identical", cases.len());
}
