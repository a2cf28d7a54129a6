//! Single-thread resize time for every ISA: the LR-ASPP segmentation head's final upsampling,
//! 21 channels 28×28 → 224×224 with half-pixel taps, bilinear and nearest (through a table),
//! into int8 and into `f32` (NCHW, the Resize at a partition's exit).
//! `XQ_ISA=avx2 cargo bench --bench kernels_resize` runs one ISA.

mod common;

use std::time::Duration;
use xq::kernels::output::SharedOutput;
use xq::kernels::resize::{AxisTap, Resize, ResizeGeometry, ResizeToF32};
use xq::kernels::{OutputRange, QuantParams};

/// Half-pixel taps of `out` indices over an axis of `len` (ONNX's `half_pixel`, clamped).
fn half_pixel(len: u32, out: u32) -> Vec<AxisTap> {
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
}

fn main() {
    common::print_header();
    let (c, in_hw, out_hw) = (21usize, 28u32, 224u32);
    let g = ResizeGeometry {
        batch: 1,
        channels: c,
        in_hw: (in_hw as usize, in_hw as usize),
        rows: half_pixel(in_hw, out_hw),
        cols: half_pixel(in_hw, out_hw),
    };
    let x = common::bytes(g.input_len(), 3);
    let mut y = vec![0i8; g.output_len()];
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
    let table: [i8; 256] = std::array::from_fn(|b| (b as u8).wrapping_mul(29) as i8);
    println!("21×28×28 → 21×224×224 (half_pixel), 1 thread");
    println!(
        "{:<14} {:<10} {:<34} {:>9} {:>12}",
        "isa", "mode", "kernel", "time(us)", "ns/out byte"
    );
    for isa in common::isas() {
        let cases: [(&str, Resize); 2] = [
            (
                "bilinear",
                Resize::bilinear(isa, g.clone(), qx, qy, OutputRange::FULL).expect("bilinear"),
            ),
            (
                "nearest",
                Resize::nearest(isa, g.clone(), Some(table)).expect("nearest"),
            ),
        ];
        for (mode, r) in cases {
            let t = common::best_time(Duration::from_millis(500), || {
                let out = SharedOutput::new(&mut y);
                // SAFETY: one call at a time, all rows.
                unsafe { r.run_shared(&x, &out, 0..g.output_rows()) }.expect("run");
            });
            println!(
                "{:<14} {:<10} {:<34} {:>9.1} {:>12.3}",
                isa.name(),
                mode,
                r.kernel_name().unwrap_or("copy"),
                t.as_secs_f64() * 1e6,
                t.as_secs_f64() * 1e9 / y.len() as f64
            );
        }
        let mut y32 = vec![0f32; g.output_len()];
        for (mode, linear) in [("bilinear", true), ("nearest", false)] {
            let r = ResizeToF32::new(isa, g.clone(), qx, linear).expect("f32");
            let t = common::best_time(Duration::from_millis(500), || {
                r.run(&x, &mut y32).expect("run");
            });
            println!(
                "{:<14} {:<10} {:<34} {:>9.1} {:>12.3}",
                isa.name(),
                format!("{mode}→f32"),
                r.kernel_name().unwrap_or("dequantize"),
                t.as_secs_f64() * 1e6,
                t.as_secs_f64() * 1e9 / y32.len() as f64
            );
        }
    }
}
