//! Single-thread depthwise 3×3 throughput (GOPS = 2·outputs·9 / time) for every ISA, next
//! to the measured AVX-512 VNNI peak. `XQ_ISA=avx2 cargo bench --bench kernels_dwconv`
//! runs one ISA.

mod common;

use std::time::Duration;
use xq::kernels::dwconv::{DwWeights, PackedDwConv};
use xq::kernels::gemm::GemmQuant;
use xq::kernels::indirection::{ConvGeometry, Indirection};
use xq::kernels::{Isa, OutputRange, QuantParams};

/// (H, W, C, stride) of a pad-1 3×3 depthwise convolution: MobileNetV2's depthwise layers.
const SHAPES: [(usize, usize, usize, usize); 6] = [
    (112, 112, 32, 1),
    (112, 112, 96, 2),
    (56, 56, 144, 1),
    (28, 28, 192, 1),
    (14, 14, 576, 1),
    (7, 7, 960, 1),
];

fn main() {
    let peak = common::print_header();
    let q = GemmQuant {
        input: QuantParams {
            scale: 0.02,
            zero_point: -3,
        },
        output: QuantParams {
            scale: 0.05,
            zero_point: 5,
        },
        range: OutputRange::relu(5),
    };
    println!(
        "{:<16} {:<40} {:>9} {:>8} {:>8}",
        "H×W×C/s 3x3", "kernel", "time(us)", "GOPS", "%peak"
    );
    for (h, w, c, s) in SHAPES {
        let g = ConvGeometry {
            batch: 1,
            in_h: h,
            in_w: w,
            in_c: c,
            k_h: 3,
            k_w: 3,
            stride: (s, s),
            dilation: (1, 1),
            padding: (1, 1, 1, 1),
        };
        let ind = Indirection::new(&g).expect("indirection");
        let x = common::bytes(h * w * c, 3);
        let wt: Vec<i8> = common::bytes(9 * c, 4).iter().map(|&v| v.max(-127)).collect();
        let scales: Vec<f32> = (0..c).map(|i| 1e-2 * (1.0 + (i % 5) as f32)).collect();
        let weights = DwWeights {
            channels: c,
            k_h: 3,
            k_w: 3,
            weights: &wt,
            scales: &scales,
            bias: None,
        };
        let mut y = vec![0i8; g.out_h() * g.out_w() * c];
        for isa in common::isas() {
            let packed = PackedDwConv::pack(isa, &weights, &q).expect("pack");
            let tiles = packed.tile_count(&ind);
            let budget = if isa == Isa::Scalar {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(1)
            };
            let t = common::best_time(budget, || packed.run(&ind, &x, &mut y, 0..tiles).expect("run"));
            let gops = 2.0 * (y.len() * 9) as f64 / t.as_secs_f64() / 1e9;
            let pct = peak.map_or("-".to_string(), |p| format!("{:.1}", 100.0 * gops / p));
            println!(
                "{:<16} {:<40} {:>9.1} {:>8.1} {:>8}",
                format!("{h}×{w}×{c}/{s}"),
                packed.kernel().name,
                t.as_secs_f64() * 1e6,
                gops,
                pct
            );
        }
    }
}
