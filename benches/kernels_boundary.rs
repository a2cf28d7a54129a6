//! Single-thread boundary conversions of the LR-ASPP shapes: quantize of a 1×3×224×224 `f32`
//! NCHW input into int8 NHWC and dequantize of a 1×21×224×224 int8 NHWC output into `f32`
//! NCHW, for every ISA row, next to `before`: the per-element loops the runtime ran before
//! the rows existed (reproduced here, portable build). `XQ_ISA=avx2 cargo bench --bench
//! kernels_boundary` runs one ISA.

mod common;

use std::time::Duration;
use xq::kernels::boundary::Boundary;
use xq::kernels::QuantParams;
use xq::qscheme::{NanRule, QRange};

/// The former quantize loop: one channel run of a 64-pixel block at a time, per element.
fn quantize_before(x: &[f32], c: usize, hw: usize, q: QuantParams, y: &mut [i8]) {
    const B: usize = 64;
    let mut tmp = [0i8; 64 * B];
    for p0 in (0..hw).step_by(B) {
        let len = B.min(hw - p0);
        for ch in 0..c {
            for (t, &v) in tmp[ch * B..][..len].iter_mut().zip(&x[ch * hw + p0..][..len]) {
                *t = q.quantize(v, QRange::I8, NanRule::RangeMin) as i8;
            }
        }
        for (i, pixel) in y[p0 * c..][..len * c].chunks_exact_mut(c).enumerate() {
            for (ch, d) in pixel.iter_mut().enumerate() {
                *d = tmp[ch * B + i];
            }
        }
    }
}

/// The former dequantize loop: 256-pixel blocks, each channel's run written per element.
fn dequantize_before(x: &[i8], c: usize, hw: usize, q: QuantParams, y: &mut [f32]) {
    for p0 in (0..hw).step_by(256) {
        let block = p0..hw.min(p0 + 256);
        for ch in 0..c {
            for (d, p) in y[ch * hw..][block.clone()].iter_mut().zip(block.clone()) {
                *d = q.dequantize(i32::from(x[p * c + ch]));
            }
        }
    }
}

fn main() {
    common::print_header();
    let q = QuantParams {
        scale: 0.0187,
        zero_point: -3,
    };
    let (hw, budget) = (224 * 224, Duration::from_millis(400));
    let xq: Vec<f32> = common::bytes(3 * hw, 3)
        .iter()
        .map(|&b| f32::from(b) * 0.021)
        .collect();
    let xd = common::bytes(21 * hw, 7);
    let (mut yq, mut yd) = (vec![0i8; xq.len()], vec![0f32; xd.len()]);
    println!(
        "{:<14} {:<20} {:>20} {:>10} {:>8}",
        "isa", "rows", "op", "time(us)", "ns/elem"
    );
    let row = |isa: &str, rows: &str, op: &str, t: Duration, n: usize| {
        let us = t.as_secs_f64() * 1e6;
        println!(
            "{isa:<14} {rows:<20} {op:>20} {us:>10.1} {:>8.3}",
            us * 1e3 / n as f64
        );
    };
    let t = common::best_time(budget, || quantize_before(&xq, 3, hw, q, &mut yq));
    row("-", "before", "q 1x3x224x224", t, xq.len());
    let t = common::best_time(budget, || dequantize_before(&xd, 21, hw, q, &mut yd));
    row("-", "before", "dq 1x21x224x224", t, xd.len());
    for isa in common::isas() {
        let rows = Boundary::new(isa).expect("boundary rows");
        let t = common::best_time(budget, || {
            rows.quantize_nchw(&xq, [1, 3, 224, 224], q, &mut yq)
                .expect("quantize")
        });
        row(isa.name(), rows.name(), "q 1x3x224x224", t, xq.len());
        let t = common::best_time(budget, || {
            rows.dequantize_nhwc(&xd, [1, 21, 224, 224], q, &mut yd)
                .expect("dequantize")
        });
        row(isa.name(), rows.name(), "dq 1x21x224x224", t, xd.len());
    }
}
