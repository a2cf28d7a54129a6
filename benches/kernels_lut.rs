//! Single-thread table lookup throughput (bytes/s) over 1 MiB for every ISA and every lookup
//! variant it runs on this CPU (the AVX-512 row's VBMI and `vpshufb` kernels).
//! `XQ_ISA=avx2 cargo bench --bench kernels_lut` runs one ISA.

mod common;

use std::time::Duration;
use xq::kernels::lut::Lut;

fn main() {
    common::print_header();
    let x = common::bytes(1 << 20, 5);
    let table: [i8; 256] = std::array::from_fn(|b| (b as u8).wrapping_mul(29) as i8);
    let mut y = vec![0i8; x.len()];
    println!("{:<14} {:<16} {:>9} {:>8}", "isa", "kernel", "time(us)", "GB/s");
    for (isa, lut) in common::isas().into_iter().flat_map(|isa| {
        Lut::each_variant(isa, table)
            .expect("lut")
            .into_iter()
            .map(move |l| (isa, l))
    }) {
        let t = common::best_time(Duration::from_millis(500), || lut.run(&x, &mut y).expect("run"));
        let gbs = x.len() as f64 / t.as_secs_f64() / 1e9;
        println!(
            "{:<14} {:<16} {:>9.1} {:>8.2}",
            isa.name(),
            lut.kernel_name(),
            t.as_secs_f64() * 1e6,
            gbs
        );
    }
}
