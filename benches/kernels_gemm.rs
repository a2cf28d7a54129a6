//! Single-thread GEMM throughput (GOPS = 2·M·N·K / time) for every ISA, next to the
//! measured AVX-512 VNNI peak. `XQ_ISA=avx2 cargo bench --bench kernels_gemm` runs one ISA.

mod common;

use std::time::Duration;
use xq::kernels::gemm::{GemmQuant, GemmWeights, PackedGemm};
use xq::kernels::{Isa, OutputRange, QuantParams};

const SHAPES: [(usize, usize, usize); 5] = [
    (210, 256, 1024),
    (196, 512, 512),
    (3136, 128, 128),
    (12544, 32, 32),
    (1, 1024, 1024),
];

fn main() {
    let peak = common::print_header();
    let q = GemmQuant {
        input: QuantParams {
            scale: 0.02,
            zero_point: -3,
        },
        output: QuantParams {
            scale: 0.5,
            zero_point: 5,
        },
        range: OutputRange::FULL,
    };
    println!(
        "{:<22} {:<40} {:>9} {:>10} {:>8}",
        "M×N×K", "kernel", "time(us)", "GOPS", "%peak"
    );
    for (m, n, k) in common::gemm_shapes(&SHAPES) {
        let x = common::bytes(m * k, 1);
        let w: Vec<i8> = common::bytes(n * k, 2).iter().map(|&v| v.max(-127)).collect();
        let scales: Vec<f32> = (0..n).map(|c| 1e-3 * (1.0 + (c % 7) as f32)).collect();
        let bias: Vec<i32> = (0..n as i32).map(|c| c * 17 - 300).collect();
        let weights = GemmWeights {
            n,
            ks: 1,
            kc: k,
            weights: &w,
            scales: &scales,
            bias: Some(&bias),
        };
        let mut y = vec![0i8; m * n];
        for isa in common::isas() {
            let packed = PackedGemm::pack(isa, &weights, &q).expect("pack");
            let tiles = packed.tile_count(m);
            let budget = if isa == Isa::Scalar {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(1)
            };
            let t = common::best_time(budget, || packed.run(m, &x, k, &mut y, n, 0..tiles).expect("run"));
            let gops = 2.0 * (m * n * k) as f64 / t.as_secs_f64() / 1e9;
            let pct = peak.map_or("-".to_string(), |p| format!("{:.1}", 100.0 * gops / p));
            println!(
                "{:<22} {:<40} {:>9.1} {:>10.1} {:>8}",
                format!("{m}×{n}×{k}"),
                packed.kernel().name,
                t.as_secs_f64() * 1e6,
                gops,
                pct
            );
        }
    }
}
