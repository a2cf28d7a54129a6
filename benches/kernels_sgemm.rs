//! Single-thread f32 GEMM throughput (GFLOPS = 2·M·N·K / best time) of the packed-B kernel
//! (`interp::kernels::sgemm`, B packed once as a constant weight is) next to `matrixmultiply`
//! (packing both operands per call), on transformer linear shapes. `XQ_ISA` picks the
//! kernel's ISA; `XQ_BENCH_SHAPES=MxNxK,...` replaces the shapes.

mod common;

use std::time::Duration;
use xq::interp::kernels::sgemm::{sgemm, PackedB};

/// A 128-token prefill's linears of the bench-size decoder (hidden 512, MLP 1376) and of
/// the encoder (hidden 384, MLP 1536), and a decode step's.
const SHAPES: [(usize, usize, usize); 6] = [
    (128, 512, 512),
    (128, 1376, 512),
    (128, 512, 1376),
    (512, 1536, 384),
    (512, 384, 1536),
    (1, 1376, 512),
];

fn main() {
    println!(
        "{:<16} {:<22} {:>10} {:>8}",
        "M×N×K", "kernel", "time(us)", "GFLOPS"
    );
    for (m, n, k) in common::gemm_shapes(&SHAPES) {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 2003) as f32 / 1000.0 - 1.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104_729) % 1999) as f32 / 1000.0 - 1.0)
            .collect();
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let report = |name: &str, t: Duration| {
            println!(
                "{:<16} {:<22} {:>10.1} {:>8.1}",
                format!("{m}×{n}×{k}"),
                name,
                t.as_secs_f64() * 1e6,
                flops / t.as_secs_f64() / 1e9
            )
        };
        for isa in common::isas() {
            let packed = PackedB::new(isa, &b, k, n).unwrap();
            let t = common::best_time(Duration::from_millis(400), || sgemm(&a, k, m, &packed, &mut c, n));
            report(&format!("packed {isa}"), t);
        }
        let t = common::best_time(Duration::from_millis(400), || {
            // SAFETY: a, b and c hold m×k, k×n and m×n row-major elements.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        });
        report("matrixmultiply", t);
    }
}
