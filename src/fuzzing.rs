//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the corpus replay in
//! `tests/fuzz_replay.rs` (so a stable `cargo test` runs every committed corpus file through
//! exactly the code the fuzzers ran). Not a public API.
//!
//! Each harness takes arbitrary bytes and must return normally: errors are expected, panics,
//! hangs and huge allocations are bugs.

use crate::delegate::{lower, PartitionMode};
use crate::format::ProgramBytes;
use crate::ir::{checked_numel, DType, Dim, Graph, Tensor, TensorInfo};
use crate::onnx::{add_onnx_node, AttrValue};
use crate::quant::observer::PercentileTails;
use crate::quant::{ObserverConfig, QuantConfig, Quantizer, WeightGranularity};
use crate::runtime::{Program, ProgramOptions};

/// Largest total input element count a loaded program is executed on.
const MAX_EXEC_INPUT_ELEMENTS: usize = 1 << 16;
/// Largest arena (bytes) a loaded program is executed with.
const MAX_EXEC_ARENA_BYTES: usize = 1 << 22;
/// Most steps a loaded program is executed with.
const MAX_EXEC_STEPS: usize = 64;

/// ONNX bytes → [`crate::onnx::load_bytes`] (decode, import, validation, shape inference),
/// then the simplification every consumer runs (constant folding, BatchNorm folding).
pub fn onnx_import(data: &[u8]) {
    if let Ok(mut graph) = crate::onnx::load_bytes(data, None) {
        let _ = crate::interp::simplify(&mut graph);
    }
}

/// `.xq` bytes → [`Program::load_bytes`]; a program that loads is executed once on zero
/// inputs of its declared shapes (symbolic dims as 1) when it is small enough to run quickly.
pub fn program_load(data: &[u8]) {
    let Ok(bytes) = ProgramBytes::copy_from(data) else {
        return;
    };
    let Ok(program) = Program::load_bytes(bytes, ProgramOptions { threads: 1 }) else {
        return;
    };
    if program.arena_size() > MAX_EXEC_ARENA_BYTES {
        return;
    }
    let mut inputs = Vec::new();
    let mut total = 0usize;
    for info in program.inputs() {
        let dims: Vec<usize> = match &info.shape {
            None => Vec::new(),
            Some(shape) => shape
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => *n,
                    Dim::Symbolic(_) => 1,
                })
                .collect(),
        };
        let Ok(n) = checked_numel(&dims) else { return };
        total = total.saturating_add(n);
        if total > MAX_EXEC_INPUT_ELEMENTS {
            return;
        }
        let Ok(t) = Tensor::zeros(info.dtype, dims) else {
            return;
        };
        inputs.push(t);
    }
    if program.spec().steps.len() > MAX_EXEC_STEPS {
        return;
    }
    let _ = program.execute(&inputs);
}

/// Reads fuzz bytes as small choices; zeros once the bytes run out.
struct Choices<'a> {
    data: &'a [u8],
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.byte() as usize % (hi - lo + 1)
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
}

/// Deterministic pseudo-random values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Builds a small random float graph from the choices (every dim ≤ 16).
struct GraphBuilder<'a> {
    c: Choices<'a>,
    graph: Graph,
    /// Values that nodes may read: name and dims.
    values: Vec<(String, Vec<usize>)>,
    seed: u64,
    count: usize,
}

impl GraphBuilder<'_> {
    fn constant(&mut self, dims: &[usize], scale: f32) -> String {
        self.seed += 1;
        let name = format!("c{}", self.seed);
        let n = dims.iter().product();
        let t = Tensor::from_f32(dims.to_vec(), values(n, self.seed, scale)).expect("constant dims match");
        self.graph.initializers.insert(name.clone(), t);
        name
    }

    fn node(
        &mut self,
        op: &str,
        inputs: &[String],
        attrs: &[(&str, AttrValue)],
        dims: Vec<usize>,
    ) -> Option<()> {
        self.count += 1;
        let name = format!("n{}_{op}", self.count);
        let out = format!("t{}", self.count);
        let attrs: Vec<(String, AttrValue)> = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        add_onnx_node(
            &mut self.graph,
            op,
            &name,
            inputs,
            std::slice::from_ref(&out),
            &attrs,
        )
        .ok()?;
        self.values.push((out, dims));
        Some(())
    }

    /// A value to read: one of the last few, preferring the newest.
    fn pick(&mut self) -> (String, Vec<usize>) {
        let n = self.values.len();
        let back = self.c.range(0, 3).min(n - 1);
        let choice = if self.c.byte() < 160 { n - 1 } else { n - 1 - back };
        self.values[choice].clone()
    }

    fn pick_rank(&mut self, rank: usize) -> Option<(String, Vec<usize>)> {
        let (name, dims) = self.pick();
        if dims.len() == rank {
            return Some((name, dims));
        }
        self.values.iter().rev().find(|(_, d)| d.len() == rank).cloned()
    }

    /// Appends one node; `None` when the choice does not apply to the available values.
    fn step(&mut self) -> Option<()> {
        match self.c.byte() % 10 {
            0 => {
                // Conv (dense or depthwise), optional bias.
                let (x, d) = self.pick_rank(4)?;
                let (ci, h, w) = (d[1], d[2], d[3]);
                let depthwise = ci > 1 && self.c.byte().is_multiple_of(3);
                let (group, co) = if depthwise {
                    (ci, ci * self.c.range(1, 2))
                } else {
                    (1, self.c.range(1, 16))
                };
                let k = self.c.range(1, 3);
                let s = self.c.range(1, 2);
                let p = self.c.range(0, k - 1);
                if h + 2 * p < k || w + 2 * p < k || co > 16 {
                    return None;
                }
                let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
                let wt = self.constant(&[co, ci / group, k, k], 0.5);
                let mut ins = vec![x, wt];
                if self.c.flag() {
                    ins.push(self.constant(&[co], 0.2));
                }
                let attrs = [
                    ("kernel_shape", AttrValue::Ints(vec![k as i64; 2])),
                    ("strides", AttrValue::Ints(vec![s as i64; 2])),
                    ("pads", AttrValue::Ints(vec![p as i64; 4])),
                    ("group", AttrValue::Int(group as i64)),
                ];
                self.node("Conv", &ins, &attrs, vec![d[0], co, ho, wo])
            }
            1 => {
                // Gemm on [N, K] with a constant [M, K] weight (transB) and bias.
                let (x, d) = self.pick_rank(2)?;
                let m = self.c.range(1, 16);
                let wt = self.constant(&[m, d[1]], 0.5);
                let mut ins = vec![x, wt];
                if self.c.flag() {
                    ins.push(self.constant(&[m], 0.2));
                }
                self.node("Gemm", &ins, &[("transB", AttrValue::Int(1))], vec![d[0], m])
            }
            op @ (2 | 3) => {
                // Add / Mul of two values of the same shape, or of a broadcast constant.
                let op = if op == 2 { "Add" } else { "Mul" };
                let (a, d) = self.pick();
                let same: Vec<String> = self
                    .values
                    .iter()
                    .filter(|(n, dd)| *dd == d && *n != a)
                    .map(|(n, _)| n.clone())
                    .collect();
                let b = if !same.is_empty() && self.c.flag() {
                    same[self.c.byte() as usize % same.len()].clone()
                } else if d.len() == 4 && self.c.flag() {
                    self.constant(&[1, d[1], 1, 1], 1.0)
                } else {
                    self.constant(&d, 1.0)
                };
                let ins = if self.c.flag() { vec![a, b] } else { vec![b, a] };
                self.node(op, &ins, &[], d)
            }
            4 => {
                let (x, d) = self.pick();
                self.node("Relu", &[x], &[], d)
            }
            5 => {
                // MaxPool.
                let (x, d) = self.pick_rank(4)?;
                let k = self.c.range(1, 3);
                let s = self.c.range(1, 2);
                let p = self.c.range(0, k - 1);
                if d[2] + 2 * p < k || d[3] + 2 * p < k {
                    return None;
                }
                let (ho, wo) = ((d[2] + 2 * p - k) / s + 1, (d[3] + 2 * p - k) / s + 1);
                let attrs = [
                    ("kernel_shape", AttrValue::Ints(vec![k as i64; 2])),
                    ("strides", AttrValue::Ints(vec![s as i64; 2])),
                    ("pads", AttrValue::Ints(vec![p as i64; 4])),
                ];
                self.node("MaxPool", &[x], &attrs, vec![d[0], d[1], ho, wo])
            }
            6 => {
                let (x, d) = self.pick_rank(4)?;
                self.node("GlobalAveragePool", &[x], &[], vec![d[0], d[1], 1, 1])
            }
            7 => {
                // Reshape 4-D → [N, C·H·W] (or back to [N, C, 1, 1] from 2-D).
                let (x, d) = self.pick();
                let (shape, dims): (Vec<i64>, Vec<usize>) = match d.len() {
                    4 => (vec![d[0] as i64, -1], vec![d[0], d[1] * d[2] * d[3]]),
                    2 if d[1] <= 16 => (vec![d[0] as i64, d[1] as i64, 1, 1], vec![d[0], d[1], 1, 1]),
                    _ => return None,
                };
                if dims.iter().any(|&n| n > 16 * 16 * 16) {
                    return None;
                }
                self.seed += 1;
                let name = format!("c{}", self.seed);
                let len = shape.len();
                let t = Tensor::from_i64(vec![len], shape).ok()?;
                self.graph.initializers.insert(name.clone(), t);
                self.node("Reshape", &[x, name], &[], dims)
            }
            8 => {
                // Concat of two values that agree except on axis 1.
                let (a, d) = self.pick();
                let partner = self
                    .values
                    .iter()
                    .rev()
                    .find(|(n, dd)| {
                        *n != a
                            && dd.len() == d.len()
                            && dd.iter().zip(&d).enumerate().all(|(i, (x, y))| i == 1 || x == y)
                    })
                    .cloned();
                let (b, db) = match partner {
                    Some(p) if self.c.flag() => p,
                    _ => (a.clone(), d.clone()),
                };
                let mut dims = d.clone();
                dims[1] += db[1];
                if dims[1] > 32 {
                    return None;
                }
                self.node("Concat", &[a, b], &[("axis", AttrValue::Int(1))], dims)
            }
            _ => {
                // Flatten a 4-D value to 2-D.
                let (x, d) = self.pick_rank(4)?;
                let k = d[1] * d[2] * d[3];
                if k > 16 * 16 * 16 {
                    return None;
                }
                self.node("Flatten", &[x], &[("axis", AttrValue::Int(1))], vec![d[0], k])
            }
        }
    }
}

/// Fuzz bytes → a small random float graph (Conv, Gemm, Add, Mul, Relu, MaxPool,
/// GlobalAveragePool, Reshape, Concat, Flatten; dims ≤ 16) → quantizer (prepare, calibrate
/// on two inputs, convert) → lowering → [`Program::new`] → execute; the program also goes
/// through its file form, and the loaded program must compute the same outputs.
pub fn quantize_execute(data: &[u8]) {
    let _ = quantized_program_file(data);
}

/// [`quantize_execute`], returning the program file it wrote (seeds for `program_load`).
pub fn quantized_program_file(data: &[u8]) -> Option<Vec<u8>> {
    let mut c = Choices { data };
    let rank4 = !c.byte().is_multiple_of(4);
    let dims: Vec<usize> = if rank4 {
        vec![1, c.range(1, 8), c.range(1, 8), c.range(1, 8)]
    } else {
        vec![c.range(1, 2), c.range(1, 16)]
    };
    let seed = c.byte() as u64;
    let weights = if c.flag() {
        WeightGranularity::PerChannel
    } else {
        WeightGranularity::PerTensor
    };
    // Histogram-based observers get 2..=257 bins: the code paths are those of the default
    // 2048, at a fraction of the cost (2048 bins cap the fuzzer at about 100 runs/s).
    let observer = match c.byte() % 5 {
        0 => ObserverConfig::MinMax,
        1 => ObserverConfig::MOVING_AVERAGE_MIN_MAX,
        2 => ObserverConfig::Histogram {
            bins: c.range(2, 257),
        },
        3 => ObserverConfig::Percentile {
            percentile: [99.0, 99.99, 100.0][c.byte() as usize % 3],
            tails: if c.flag() {
                PercentileTails::Absolute
            } else {
                PercentileTails::Both
            },
            bins: c.range(2, 257),
        },
        _ => {
            // The divergence search is quadratic in the bin count (which grows to 8 times
            // the initial one): 64 initial bins keep every run well under the 1 s limit.
            let bins = 2 * c.range(1, 32);
            ObserverConfig::Entropy {
                bins,
                quantized_bins: c.range(2, bins),
            }
        }
    };
    let mode = match c.byte() % 4 {
        0 => PartitionMode::PerOp,
        _ => PartitionMode::All,
    };
    let mut b = GraphBuilder {
        c,
        graph: Graph {
            name: "fuzz".into(),
            inputs: vec![TensorInfo::known("x", DType::F32, &dims)],
            ..Default::default()
        },
        values: vec![("x".to_string(), dims.clone())],
        seed: seed << 8,
        count: 0,
    };
    let n_nodes = b.c.range(1, 8);
    for _ in 0..n_nodes {
        let _ = b.step();
    }
    let extra_output = b.c.flag() && b.values.len() > 2;
    if b.values.len() < 2 {
        return None;
    }
    let mut outputs = vec![b.values[b.values.len() - 1].0.clone()];
    if extra_output {
        let i = b.c.byte() as usize % (b.values.len() - 2) + 1;
        outputs.push(b.values[i].0.clone());
    }
    let mut graph = b.graph;
    for o in outputs {
        graph.outputs.push(TensorInfo {
            name: o,
            dtype: DType::F32,
            shape: None,
        });
    }
    if graph.validate().is_err() || graph.infer_shapes().is_err() {
        return None;
    }
    let config = QuantConfig {
        weights,
        observer,
        ..QuantConfig::default()
    };
    let Ok(mut quantizer) = Quantizer::new(Some(config)) else {
        return None;
    };
    if quantizer.prepare(&graph).is_err() {
        return None;
    }
    let n = dims.iter().product();
    let sample = |s: u64| Tensor::from_f32(dims.clone(), values(n, s, 2.0)).expect("input dims match");
    for s in 0..2 {
        if quantizer.calibrate(&[sample(seed * 4 + s)]).is_err() {
            return None;
        }
    }
    let Ok(qdq) = quantizer.convert() else { return None };
    let Ok((spec, _report)) = lower(&qdq, mode) else {
        return None;
    };
    let Ok(program) = Program::new(spec, ProgramOptions { threads: 1 }) else {
        return None;
    };
    let x = sample(seed * 4 + 3);
    let out = program.execute(std::slice::from_ref(&x));
    let Ok(file) = program.to_bytes() else { return None };
    let Ok(bytes) = ProgramBytes::copy_from(&file) else {
        return None;
    };
    let Ok(loaded) = Program::load_bytes(bytes, ProgramOptions { threads: 1 }) else {
        panic!("a saved program does not load");
    };
    let reloaded = loaded.execute(std::slice::from_ref(&x));
    match (out, reloaded) {
        (Ok(a), Ok(b)) => {
            let bits = |ts: &[Tensor]| -> Vec<(Vec<usize>, Vec<u8>)> {
                ts.iter().map(|t| (t.dims().to_vec(), t.to_le_bytes())).collect()
            };
            assert!(bits(&a) == bits(&b), "the loaded program computes other outputs");
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("execute: built {:?}, loaded {:?}", a.is_ok(), b.is_ok()),
    }
    Some(file)
}
