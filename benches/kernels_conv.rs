//! Single-thread throughput of convolution through the indirection table (MobileNetV2-like
//! layers), plus the elementwise and pooling kernels, for every ISA.
//! `XQ_ISA=avx2 cargo bench --bench kernels_conv` runs one ISA; `XQ_BENCH_FILTER=stem` runs
//! only the convolutions whose name contains the filter.

mod common;

use std::time::Duration;
use xq::kernels::conv::{ConvWeights, PackedConv};
use xq::kernels::elementwise::{BinaryOp, BinaryQuant, BinaryShape, OperandStrides, QuantizedBinary};
use xq::kernels::gemm::GemmQuant;
use xq::kernels::indirection::{ConvGeometry, Indirection};
use xq::kernels::pool::{AvgDivisor, AvgPool, GlobalAvgPool, MaxPool};
use xq::kernels::{Isa, OutputRange, QuantParams};

/// (name, H, W, Cin, Cout, k, stride)
const CONVS: [(&str, usize, usize, usize, usize, usize, usize); 3] = [
    ("stem 3x3/2", 224, 224, 3, 32, 3, 2),
    ("3x3 56²×64→64", 56, 56, 64, 64, 3, 1),
    ("1x1 28²×192→64", 28, 28, 192, 64, 1, 1),
];

fn budget(isa: Isa) -> Duration {
    if isa == Isa::Scalar {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(700)
    }
}

fn main() {
    common::print_header();
    let qx = QuantParams {
        scale: 0.02,
        zero_point: -3,
    };
    let qy = QuantParams {
        scale: 0.05,
        zero_point: 5,
    };
    let q = GemmQuant {
        input: qx,
        output: qy,
        range: OutputRange::relu(5),
    };
    println!("{:<22} {:<40} {:>9} {:>8}", "layer", "kernel", "time(us)", "GOPS");
    let filter = std::env::var("XQ_BENCH_FILTER").unwrap_or_default();
    for (name, h, w, cin, cout, k, s) in CONVS.into_iter().filter(|c| c.0.contains(filter.as_str())) {
        let pad = k / 2;
        let g = ConvGeometry {
            batch: 1,
            in_h: h,
            in_w: w,
            in_c: cin,
            k_h: k,
            k_w: k,
            stride: (s, s),
            dilation: (1, 1),
            padding: (pad, pad, pad, pad),
        };
        let ind = Indirection::new(&g).expect("indirection");
        let x = common::bytes(h * w * cin, 5);
        let wt: Vec<i8> = common::bytes(cout * k * k * cin, 6)
            .iter()
            .map(|&v| v.max(-127))
            .collect();
        let scales: Vec<f32> = (0..cout).map(|i| 1e-3 * (1.0 + (i % 3) as f32)).collect();
        let weights = ConvWeights {
            out_c: cout,
            in_c_per_group: cin,
            groups: 1,
            k_h: k,
            k_w: k,
            weights: &wt,
            scales: &scales,
            bias: None,
        };
        let mut y = vec![0i8; g.out_h() * g.out_w() * cout];
        for isa in common::isas() {
            let packed = PackedConv::pack(isa, &weights, &q).expect("pack");
            let tiles = packed.tile_count(&ind);
            let t = common::best_time(budget(isa), || {
                packed.run(&ind, &x, &mut y, 0..tiles).expect("run")
            });
            let ops = 2.0 * (y.len() * k * k * cin) as f64;
            println!(
                "{:<22} {:<40} {:>9.1} {:>8.1}",
                name,
                packed.kernel().name,
                t.as_secs_f64() * 1e6,
                ops / t.as_secs_f64() / 1e9
            );
        }
    }
    // The im2col gather of a 3-channel stem (3×3, stride 2, pad 1; the same on every ISA).
    if "im2col stem".contains(filter.as_str()) {
        let g = ConvGeometry {
            batch: 1,
            in_h: 224,
            in_w: 224,
            in_c: 3,
            k_h: 3,
            k_w: 3,
            stride: (2, 2),
            dilation: (1, 1),
            padding: (1, 1, 1, 1),
        };
        let x = common::bytes(g.image_len(), 10);
        let k_padded = 28;
        let mut rows = vec![0i8; g.out_h() * g.out_w() * k_padded];
        let tiles = xq::kernels::im2col::tile_count(&g);
        let t = common::best_time(budget(Isa::Scalar), || {
            let out = xq::kernels::output::SharedOutput::new(&mut rows);
            // SAFETY: one call covers every tile of this output.
            unsafe { xq::kernels::im2col::run_shared(&g, k_padded, -3, &x, &out, 0..tiles) }.expect("im2col")
        });
        println!(
            "{:<22} {:<40} {:>9.1} {:>8.2}",
            "im2col stem 224²×3",
            "(rows of 28 bytes)",
            t.as_secs_f64() * 1e6,
            (g.out_h() * g.out_w()) as f64 / t.as_secs_f64() / 1e9
        );
    }
    let bq = BinaryQuant {
        a: qx,
        b: qy,
        output: qy,
        range: OutputRange::FULL,
    };
    // Residual adds and squeeze-excite scalings (`N×H×W×C · N×1×1×C`) at the shapes of
    // MobileNetV3 and EfficientNet; the filter also selects these by label.
    for (label, op, (h, c)) in [
        ("add 56²×64", BinaryOp::Add, (56, 64)),
        ("mul SE 56²×64", BinaryOp::Mul, (56, 64)),
        ("mul SE 56²×16", BinaryOp::Mul, (56, 16)),
        ("mul SE 112²×32", BinaryOp::Mul, (112, 32)),
        ("mul SE 28²×40", BinaryOp::Mul, (28, 40)),
        ("mul SE 14²×576", BinaryOp::Mul, (14, 576)),
    ]
    .into_iter()
    .filter(|e| e.0.contains(filter.as_str()))
    {
        let p = h * h;
        let a = common::bytes(p * c, 7);
        let (b, bs) = if op == BinaryOp::Add {
            (common::bytes(p * c, 9), OperandStrides::dense(p, c))
        } else {
            (common::bytes(c, 8), OperandStrides::per_channel(c))
        };
        let mut y = vec![0i8; p * c];
        for isa in common::isas() {
            let names = xq::kernels::table::kernel_names(isa);
            let k = QuantizedBinary::new(isa, op, &bq).expect("binary");
            let shape = BinaryShape {
                n: 1,
                p,
                c,
                a: OperandStrides::dense(p, c),
                b: bs,
            };
            let tiles = k.tile_count(&shape);
            let t = common::best_time(budget(isa), || {
                k.run(&shape, &a, &b, &mut y, 0..tiles).expect("run")
            });
            println!(
                "{:<22} {:<40} {:>9.1} {:>8.2}",
                label,
                names[if op == BinaryOp::Add { 2 } else { 3 }],
                t.as_secs_f64() * 1e6,
                (p * c) as f64 / t.as_secs_f64() / 1e9
            );
        }
    }
    if !filter.is_empty() {
        println!("(elementwise columns are G elements/s, not GOPS)");
        return;
    }
    let (p, c) = (56 * 56, 64);
    let a = common::bytes(p * c, 7);
    for isa in common::isas() {
        let names = xq::kernels::table::kernel_names(isa);
        let gap = GlobalAvgPool::new(isa, p, qx, qy, OutputRange::FULL).expect("gap");
        let mut yc = vec![0i8; c];
        let t = common::best_time(budget(isa), || gap.run(1, c, &a, &mut yc, 0..1).expect("run"));
        println!(
            "{:<22} {:<40} {:>9.1} {:>8.2}",
            "global avg 56²×64",
            names[5],
            t.as_secs_f64() * 1e6,
            (p * c) as f64 / t.as_secs_f64() / 1e9
        );
        let g = ConvGeometry {
            batch: 1,
            in_h: 56,
            in_w: 56,
            in_c: c,
            k_h: 3,
            k_w: 3,
            stride: (2, 2),
            dilation: (1, 1),
            padding: (1, 1, 1, 1),
        };
        let ind = Indirection::new(&g).expect("indirection");
        let mp = MaxPool::new(isa, OutputRange::FULL).expect("maxpool");
        let mut ym = vec![0i8; g.out_h() * g.out_w() * c];
        let tiles = mp.tile_count(&ind);
        let t = common::best_time(budget(isa), || mp.run(&ind, &a, &mut ym, 0..tiles).expect("run"));
        println!(
            "{:<22} {:<40} {:>9.1} {:>8.2}",
            "maxpool 3x3/2 56²×64",
            names[6],
            t.as_secs_f64() * 1e6,
            (ym.len() * 9) as f64 / t.as_secs_f64() / 1e9
        );
        let ap = AvgPool::new(isa, &g, AvgDivisor::Inside, qx, qy, OutputRange::FULL).expect("avgpool");
        let tiles = ap.tile_count();
        let t = common::best_time(budget(isa), || ap.run(&a, &mut ym, 0..tiles).expect("run"));
        println!(
            "{:<22} {:<40} {:>9.1} {:>8.2}",
            "avgpool 3x3/2 56²×64",
            names[7],
            t.as_secs_f64() * 1e6,
            (ym.len() * 9) as f64 / t.as_secs_f64() / 1e9
        );
    }
    println!("(elementwise / pooling columns are G elements/s, not GOPS)");
}
