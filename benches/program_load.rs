//! Program load time of a MobileNetV2-sized program, phase by phase: reading the file
//! (memory map), validating the container (checksum included), decoding the program section,
//! and building the kernels (weight packing, indirection tables) per kernel family, then the
//! whole `load` + `Program::new` a user sees. Medians of repeated single-threaded loads in
//! one process (warm: the allocator and the page cache are primed), then medians of single
//! loads in fresh processes (cold: what `xq run` and a C host see at start-up, page faults
//! of new memory included), also with another ISA than the file's packed section was written
//! for (the weights are then packed from the memory map).
//!
//! The program is a MobileNetV2 (width 1.0, 224×224, 3.5 M int8 weights) built here with
//! random weights, or the `.xq` file named by `XQ_BENCH_PROGRAM` (e.g. the anchor model
//! compiled by `bench/mobilenet_v2.sh`). `XQ_ISA` selects the kernels as everywhere.
//!
//! ```sh
//! cargo bench --bench program_load
//! XQ_BENCH_PROGRAM=/tmp/xq-anchor-mv2/mobilenet_v2_libxq.xq cargo bench --bench program_load
//! ```
//!
//! `XQ_BENCH_SAVE_PROGRAM=P.xq` only writes the built program to `P.xq` (for `xq run P.xq`
//! under each `XQ_ISA` where the anchor model of `bench/mobilenet_v2.sh` is not available).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use xq::format::{program_file, ContainerReader, ProgramBytes};
use xq::ir::{DType, Dim, TensorInfo};
use xq::kernels::{Isa, OutputRange, QuantParams};
use xq::program::{
    BinaryKind, BinarySpec, ConvSpec, FullyConnectedSpec, GlobalAvgPoolSpec, KernelSpec, ProgramSpec,
    ReshapeSpec, StepSpec, ValueSpec, Window,
};
use xq::qscheme::QWeights;
use xq::runtime::kernel_step::KernelStep;
use xq::runtime::{Program, ProgramOptions};

/// Builds MobileNetV2's int8 body as a lowered program (random weights, plausible scales).
struct Builder {
    spec: ProgramSpec,
    seed: u64,
}

impl Builder {
    fn value(&mut self, dims: Vec<usize>) -> usize {
        let i = self.spec.values.len();
        self.spec.values.push(ValueSpec {
            name: format!("v{i}"),
            dims,
            q: QuantParams {
                scale: 0.02 + (i % 7) as f32 * 1e-3,
                zero_point: (i % 11) as i32 - 5,
            },
            unsigned: false,
        });
        i
    }

    fn step(&mut self, kernel: KernelSpec) {
        let node = format!("node{}", self.spec.steps.len());
        self.spec.steps.push(StepSpec::Kernel {
            partition: 0,
            node,
            kernel,
        });
    }

    /// A convolution (`groups == channels` for depthwise) with a fused ReLU6-like clamp.
    fn conv(
        &mut self,
        input: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        groups: usize,
        relu: bool,
    ) -> usize {
        let d = self.spec.values[input].dims.clone();
        let (in_c, pad) = (d[1], k / 2);
        let (oh, ow) = (
            (d[2] + 2 * pad - k) / stride + 1,
            (d[3] + 2 * pad - k) / stride + 1,
        );
        let output = self.value(vec![d[0], out_c, oh, ow]);
        self.seed += 1;
        let weights: Vec<i8> = common::bytes(out_c * k * k * in_c / groups, self.seed)
            .into_iter()
            .map(|w| w.max(-127))
            .collect();
        let scales: Vec<f32> = (0..out_c).map(|c| 1e-3 * (1.0 + (c % 13) as f32)).collect();
        let bias: Vec<i32> = (0..out_c as i32).map(|c| c * 37 - 500).collect();
        let range = if relu {
            OutputRange::relu(self.spec.values[output].q.zero_point)
        } else {
            OutputRange::FULL
        };
        self.step(KernelSpec::Conv(ConvSpec {
            input,
            output,
            window: Window {
                kernel: (k, k),
                stride: (stride, stride),
                dilation: (1, 1),
                pads: (pad, pad, pad, pad),
            },
            groups,
            depthwise: groups > 1,
            weights: QWeights::new(weights, scales),
            bias,
            range,
        }));
        output
    }

    fn add(&mut self, a: usize, b: usize) -> usize {
        let output = self.value(self.spec.values[a].dims.clone());
        self.step(KernelSpec::Binary(BinarySpec {
            kind: BinaryKind::Add,
            a,
            b,
            output,
            range: OutputRange::FULL,
        }));
        output
    }
}

fn info(name: &str, dims: &[usize]) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        dtype: DType::F32,
        shape: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
    }
}

/// MobileNetV2 (width 1.0) on 1×3×224×224: stem, 17 inverted residual blocks, 1×1 to 1280,
/// global average pool, fully connected to 1000 classes.
fn mobilenet_v2() -> ProgramSpec {
    let mut b = Builder {
        spec: ProgramSpec {
            inputs: vec![info("input", &[1, 3, 224, 224])],
            outputs: vec![info("logits", &[1, 1000])],
            values: Vec::new(),
            steps: Vec::new(),
            fallback: Default::default(),
            report: String::new(),
            report_data: None,
        },
        seed: 0,
    };
    let input = b.value(vec![1, 3, 224, 224]);
    b.spec.steps.push(StepSpec::Quantize {
        tensor: "input".into(),
        value: input,
    });
    let mut x = b.conv(input, 32, 3, 2, 1, true);
    let mut c = 32;
    for (t, out_c, n, s) in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ] {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let hidden = c * t;
            let mut h = x;
            if t != 1 {
                h = b.conv(h, hidden, 1, 1, 1, true);
            }
            h = b.conv(h, hidden, 3, stride, hidden, true);
            h = b.conv(h, out_c, 1, 1, 1, false);
            x = if stride == 1 && c == out_c { b.add(x, h) } else { h };
            c = out_c;
        }
    }
    x = b.conv(x, 1280, 1, 1, 1, true);
    let pooled = b.value(vec![1, 1280, 1, 1]);
    b.step(KernelSpec::GlobalAvgPool(GlobalAvgPoolSpec {
        input: x,
        output: pooled,
        range: OutputRange::FULL,
    }));
    let flat = b.value(vec![1, 1280]);
    b.step(KernelSpec::Reshape(ReshapeSpec {
        input: pooled,
        output: flat,
    }));
    let logits = b.value(vec![1, 1000]);
    b.seed += 1;
    b.step(KernelSpec::FullyConnected(FullyConnectedSpec {
        input: flat,
        output: logits,
        n: 1000,
        k: 1280,
        weights: QWeights::new(
            common::bytes(1000 * 1280, b.seed)
                .into_iter()
                .map(|w| w.max(-127))
                .collect(),
            vec![1e-3; 1000],
        ),
        bias: vec![7; 1000],
        range: OutputRange::FULL,
    }));
    b.spec.steps.push(StepSpec::Dequantize {
        value: logits,
        tensor: "logits".into(),
        int8: false,
    });
    b.spec
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median of `runs` timings of `f`.
fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed struct it is given.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r.ru_minflt
    }
}

/// One load in this (fresh) process, `Program::load_file` (packed weights in place when the
/// file has them for this CPU) or, with `--pack`, decoding and packing at load: prints the
/// load time in ms and the minor page faults of the load, for the parent to collect.
fn cold_child(path: &std::path::Path, pack: bool) {
    let options = ProgramOptions { threads: 1 };
    xq::kernels::table::selected_isa().expect("ISA");
    let faults = minor_faults();
    let t = Instant::now();
    let program = if pack {
        Program::new(program_file::load(path).expect("decode"), options)
    } else {
        Program::load_file(path, options)
    }
    .expect("program");
    let elapsed = t.elapsed();
    let faults = minor_faults() - faults;
    std::hint::black_box(program);
    println!("{} {faults}", ms(elapsed));
}

/// Medians of `runs` cold loads, each in a new process running [`cold_child`].
fn cold(path: &std::path::Path, runs: usize, pack: bool, isa: Option<Isa>) -> (f64, f64) {
    let exe = std::env::current_exe().expect("own path");
    let (mut times, mut faults) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--cold-child").env("XQ_BENCH_PROGRAM", path);
        if pack {
            cmd.arg("--pack");
        }
        if let Some(isa) = isa {
            cmd.env("XQ_ISA", isa.name());
        }
        let out = cmd.output().expect("spawn a cold load");
        assert!(
            out.status.success(),
            "cold load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).expect("UTF-8");
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().expect("a number"))
            .collect();
        times.push(v[0]);
        faults.push(v[1]);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (med(times), med(faults))
}

fn main() {
    if std::env::args().any(|a| a == "--cold-child") {
        let path = std::env::var("XQ_BENCH_PROGRAM").expect("XQ_BENCH_PROGRAM");
        cold_child(
            std::path::Path::new(&path),
            std::env::args().any(|a| a == "--pack"),
        );
        return;
    }
    if let Some(p) = std::env::var_os("XQ_BENCH_SAVE_PROGRAM") {
        program_file::save(&mobilenet_v2(), std::path::Path::new(&p)).expect("save");
        println!("saved {}", std::path::Path::new(&p).display());
        return;
    }
    let runs = if common::full_run() { 101 } else { 1 };
    let path = match std::env::var("XQ_BENCH_PROGRAM") {
        Ok(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => {
            let path = std::env::temp_dir().join(format!("xq-bench-load-{}.xq", std::process::id()));
            Program::new(mobilenet_v2(), ProgramOptions { threads: 1 })
                .expect("program")
                .save(&path)
                .expect("save");
            path
        }
    };
    let isa = xq::kernels::table::selected_isa().expect("ISA");
    let options = ProgramOptions { threads: 1 };
    let file_len = std::fs::metadata(&path).expect("program file").len();
    println!(
        "program {} ({:.2} MiB), ISA {isa}, medians of {runs} loads, 1 thread",
        path.display(),
        file_len as f64 / (1 << 20) as f64
    );

    let map = time(runs, || {
        std::hint::black_box(ProgramBytes::map_file(&path).expect("map"));
    });
    let bytes = ProgramBytes::map_file(&path).expect("map");
    let container = time(runs, || {
        std::hint::black_box(ContainerReader::parse(bytes.as_slice()).expect("container"));
    });
    let decode = time(runs, || {
        std::hint::black_box(program_file::from_bytes(bytes.as_slice()).expect("decode"));
    });
    let spec = program_file::from_bytes(bytes.as_slice()).expect("decode");

    let mut per_kind: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    for _ in 0..runs {
        let mut sums: BTreeMap<&'static str, Duration> = BTreeMap::new();
        for s in &spec.steps {
            if let StepSpec::Kernel { kernel, .. } = s {
                let t = Instant::now();
                std::hint::black_box(KernelStep::build(isa, kernel, &spec.values).expect("build"));
                *sums.entry(kernel.kind_name()).or_default() += t.elapsed();
            }
        }
        for (k, d) in sums {
            per_kind.entry(k).or_default().push(d);
        }
    }
    let build = time(runs, || {
        std::hint::black_box(Program::new(spec.clone(), options).expect("program"));
    });
    let clone = time(runs, || {
        std::hint::black_box(spec.clone());
    });
    let packing = time(runs, || {
        let spec = program_file::load(&path).expect("load");
        std::hint::black_box(Program::new(spec, options).expect("program"));
    });
    let in_place = Program::load_file(&path, options).expect("program");
    let total = time(runs, || {
        std::hint::black_box(Program::load_file(&path, options).expect("program"));
    });

    println!("{:<44} {:>9}", "phase (warm)", "ms");
    println!("{:<44} {:>9.3}", "map file", ms(map));
    println!("{:<44} {:>9.3}", "container (table + checksum)", ms(container));
    println!(
        "{:<44} {:>9.3}",
        "program_file::from_bytes (incl. container)",
        ms(decode)
    );
    for (k, v) in per_kind {
        println!("{:<44} {:>9.3}", format!("  pack+build {k}"), ms(median(v)));
    }
    println!(
        "{:<44} {:>9.3}",
        "Program::new (packing, excl. spec clone)",
        ms(build.saturating_sub(clone))
    );
    println!("{:<44} {:>9.3}", "load, packing at load", ms(packing));
    println!(
        "{:<44} {:>9.3}",
        format!(
            "Program::load_file ({} steps in place)",
            in_place.steps_with_weights_in_place()
        ),
        ms(total)
    );
    let cold_runs = if common::full_run() { 31 } else { 1 };
    println!("cold: a fresh process per load, medians of {cold_runs}");
    // Another ISA than the one the file was packed for ignores the packed section.
    let other = Isa::ALL.into_iter().rev().find(|&i| i != isa && i.is_supported());
    let mut cases = vec![("decode + Program::new (packing)".to_string(), true, None)];
    if let Some(other) = other {
        cases.push((
            format!("Program::load_file, {other} (packing)"),
            false,
            Some(other),
        ));
    }
    cases.push(("Program::load_file (weights in place)".to_string(), false, None));
    for (name, pack, isa) in cases {
        let (t, faults) = cold(&path, cold_runs, pack, isa);
        println!(
            "{:<44} {:>9.3}   ({faults:.0} minor page faults)",
            format!("  {name}"),
            t
        );
    }
    if std::env::var("XQ_BENCH_PROGRAM").is_err() {
        let _ = std::fs::remove_file(&path);
    }
}
