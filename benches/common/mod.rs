//! Shared benchmark helpers: ISA selection, timing, and the VNNI peak measurement.

#![allow(dead_code)]

use std::time::{Duration, Instant};
use xq::kernels::Isa;

/// Whether `cargo bench` started this binary (it passes `--bench`); `cargo test
/// --all-targets` runs bench binaries without it, and then they only smoke-test.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// ISAs to benchmark: the one named by `XQ_ISA` if set, else every supported one.
pub fn isas() -> Vec<Isa> {
    match std::env::var("XQ_ISA") {
        Ok(s) if !s.trim().is_empty() => {
            let isa = Isa::parse(&s).unwrap_or_else(|| panic!("XQ_ISA={s} is not a known ISA"));
            assert!(isa.is_supported(), "XQ_ISA={s} is not supported by this CPU");
            vec![isa]
        }
        _ => Isa::ALL.into_iter().filter(|i| i.is_supported()).collect(),
    }
}

/// Best time per call of `f` over repeated runs lasting about `budget` in total (a single
/// call when not a [`full_run`]).
pub fn best_time(budget: Duration, mut f: impl FnMut()) -> Duration {
    if !full_run() {
        let t = Instant::now();
        f();
        return t.elapsed();
    }
    f();
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

/// Deterministic pseudo-random bytes (xorshift), so runs are comparable.
pub fn bytes(len: usize, seed: u64) -> Vec<i8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as i8
        })
        .collect()
}

/// Measured single-thread `vpdpbusd` (zmm) peak in GOPS (2 ops per int8 MAC, 64 MACs each),
/// from 12 independent accumulator chains, best of 12 trials; `None` without AVX-512 VNNI.
pub fn vnni_peak_gops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512Vnni.is_supported() {
        // Many short trials, best kept: other processes on a shared machine only slow trials.
        let iters = if full_run() { 5_000_000u64 } else { 10_000 };
        let mut best = f64::MAX;
        for _ in 0..12 {
            let t = Instant::now();
            // SAFETY: the CPU supports AVX-512 VNNI (checked above).
            std::hint::black_box(unsafe { vnni_chains(iters) });
            best = best.min(t.elapsed().as_secs_f64());
        }
        return Some(iters as f64 * 12.0 * 64.0 * 2.0 / best / 1e9);
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni_chains(iters: u64) -> i32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_epi8(3);
    let b = _mm512_set1_epi8(5);
    let mut acc = [_mm512_setzero_si512(); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
        // Keeps the compiler from collapsing the iterations.
        // SAFETY: an empty asm block with no operands has no effect.
        unsafe { std::arch::asm!("", options(nomem, nostack)) };
    }
    let mut s = acc[0];
    for v in &acc[1..] {
        s = _mm512_add_epi32(s, *v);
    }
    _mm512_reduce_add_epi32(s)
}

/// A line naming the ISA that run-time dispatch picks in this process (`XQ_ISA` honoured).
pub fn dispatch_line() -> String {
    match xq::kernels::table::selected_isa() {
        Ok(isa) => format!(
            "dispatch picks: {isa} ({})",
            xq::kernels::table::kernel_names(isa).join(", ")
        ),
        Err(e) => format!("dispatch: {e}"),
    }
}

/// The CPU model name from `/proc/cpuinfo`, for reports.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Prints the header every kernel benchmark starts with (CPU, dispatch, smoke-run notice,
/// measured VNNI peak) and returns the peak in GOPS, if the CPU has VNNI.
pub fn print_header() -> Option<f64> {
    let peak = vnni_peak_gops();
    println!("cpu: {}", cpu_name());
    println!("{}", dispatch_line());
    if !full_run() {
        println!(
            "smoke run (not started by `cargo bench`): one call per kernel, figures are not measurements"
        );
    }
    match peak {
        Some(p) => println!("avx512vnni vpdpbusd peak (1 thread): {p:.1} GOPS"),
        None => println!("avx512vnni peak: SKIPPED (not supported)"),
    }
    peak
}

/// GEMM shapes `(M, N, K)` to run: `XQ_BENCH_SHAPES=MxNxK,...` or `default`.
pub fn gemm_shapes(default: &[(usize, usize, usize)]) -> Vec<(usize, usize, usize)> {
    match std::env::var("XQ_BENCH_SHAPES") {
        Ok(s) => s
            .split(',')
            .map(|t| {
                let d: Vec<usize> = t
                    .split('x')
                    .map(|v| v.trim().parse().expect("XQ_BENCH_SHAPES"))
                    .collect();
                assert_eq!(d.len(), 3, "XQ_BENCH_SHAPES entries are MxNxK");
                (d[0], d[1], d[2])
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}
