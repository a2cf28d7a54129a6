//! Float interpreter latency on MobileNetV2 (1×3×224×224, one thread) next to ONNX
//! Runtime's, measured in the same run. Needs `XQ_PYTHON` (numpy, onnx, onnxruntime).
//!
//! `XQ_PYTHON=... cargo bench --bench graph_interp`

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 50;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let Some(py) = std::env::var_os("XQ_PYTHON") else {
        println!("SKIPPED: graph_interp benchmark needs onnx/onnxruntime (set XQ_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/fixtures/build_models.py");
    let out = Command::new(py)
        .arg(script)
        .arg(dir.path())
        .args(["--bench", &RUNS.to_string()])
        .output()
        .expect("run build_models.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ort_ms = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ort_mobilenet_v2_ms "))
        .unwrap_or("?")
        .to_string();

    for name in ["mobilenet_v2", "resnet18"] {
        let mut graph = xq::onnx::load_file(dir.path().join(format!("{name}.onnx"))).expect("load");
        graph
            .fix_input_shapes(&[("input", &[1, 3, 224, 224])])
            .expect("fix shapes");
        xq::interp::simplify(&mut graph).expect("simplify");
        let interp = xq::interp::Interpreter::new(&graph).expect("plan");
        let x = xq::ir::Tensor::from_f32(
            vec![1, 3, 224, 224],
            (0..3 * 224 * 224)
                .map(|i| ((i % 255) as f32 / 127.0) - 1.0)
                .collect(),
        )
        .expect("input");
        for _ in 0..3 {
            interp.run(std::slice::from_ref(&x)).expect("run");
        }
        let times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t0 = Instant::now();
                interp.run(std::slice::from_ref(&x)).expect("run");
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        println!(
            "xq_interp_{name}_ms {:.3} (median of {RUNS}, 1 thread)",
            median(times)
        );
    }
    println!("ort_mobilenet_v2_ms {ort_ms} (median of {RUNS}, intra_op_num_threads=1)");
}
