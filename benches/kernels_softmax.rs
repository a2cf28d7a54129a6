//! Single-thread int8 softmax throughput (elements/s) for a few row shapes: classification
//! rows (contiguous, 1000 long), attention-score rows (contiguous, 64 and 197 long) and
//! rows strided through NHWC storage (a softmax over W with 64 channels). The kernel is
//! scalar on every ISA, so one row of figures.

mod common;

use std::time::Duration;
use xq::kernels::output::SharedOutput;
use xq::kernels::softmax::{RowLayout, Softmax};
use xq::kernels::{OutputRange, QuantParams};

fn main() {
    common::print_header();
    let x_q = QuantParams {
        scale: 0.08,
        zero_point: 3,
    };
    let y_q = QuantParams {
        scale: 1.0 / 256.0,
        zero_point: -128,
    };
    println!("{:<28} {:>9} {:>10}", "rows", "time(us)", "Melem/s");
    let shapes: [(&str, Vec<usize>, usize); 4] = [
        ("1000 x 1000 (classes)", vec![1000, 1000], 1),
        ("12·197 x 197 (ViT scores)", vec![12 * 197, 197], 1),
        ("8·64 x 64 (scores)", vec![8 * 64, 64], 1),
        ("NHWC W rows: 32x28, C=64", vec![32, 28, 64], 1),
    ];
    for (name, dims, axis) in shapes {
        let layout = RowLayout::along(&dims, axis).expect("layout");
        let softmax = Softmax::new(x_q, y_q, OutputRange::FULL, layout).expect("softmax");
        let n = layout.numel().expect("numel");
        let x = common::bytes(n, 7);
        let mut y = vec![0i8; n];
        let t = common::best_time(Duration::from_millis(500), || {
            let out = SharedOutput::new(&mut y);
            // SAFETY: one caller writes every row.
            unsafe { softmax.run_shared(&x, &out, 0..softmax.rows()).expect("run") };
        });
        println!(
            "{:<28} {:>9.1} {:>10.1}",
            name,
            t.as_secs_f64() * 1e6,
            n as f64 / t.as_secs_f64() / 1e6
        );
    }
}
