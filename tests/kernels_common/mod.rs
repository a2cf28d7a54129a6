//! Helpers shared by the kernel test suites (`tests/kernels_*.rs`).

#![allow(dead_code)]

use proptest::prelude::*;
use std::io::Write;
use xq::kernels::indirection::ConvGeometry;
use xq::kernels::Isa;

/// The SIMD variants this CPU can run; each missing one is reported as skipped on stderr,
/// once per test binary (written to the handle, not `eprintln!`, so the test harness does not
/// capture it).
pub fn simd_isas() -> Vec<Isa> {
    static REPORTED: std::sync::Mutex<Vec<Isa>> = std::sync::Mutex::new(Vec::new());
    Isa::ALL
        .into_iter()
        .filter(|&isa| isa != Isa::Scalar)
        .filter(|isa| {
            let ok = isa.is_supported();
            let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
            if !ok && !reported.contains(isa) {
                reported.push(*isa);
                let _ = writeln!(std::io::stderr(), "SKIPPED: {isa} not supported by this CPU");
            }
            ok
        })
        .collect()
}

/// Random NHWC window geometries with up to `max_hw - 1` rows/columns, `max_c - 1` channels
/// and `max_k - 1` kernel taps per axis; strides and dilations 1..2, padding 0..2 per side.
pub fn conv_geometry(max_hw: usize, max_c: usize, max_k: usize) -> impl Strategy<Value = ConvGeometry> {
    (
        (1usize..3, 1usize..max_hw, 1usize..max_hw, 1usize..max_c),
        (1usize..max_k, 1usize..max_k),
        (1usize..3, 1usize..3, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3),
    )
        .prop_map(
            |((batch, in_h, in_w, in_c), (k_h, k_w), (sh, sw, dh, dw), padding)| ConvGeometry {
                batch,
                in_h,
                in_w,
                in_c,
                k_h,
                k_w,
                stride: (sh, sw),
                dilation: (dh, dw),
                padding,
            },
        )
        .prop_filter("window fits the padded input", |g| g.validate().is_ok())
}
