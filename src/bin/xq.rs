//! `xq`: the libxq command-line tool — quantize float ONNX models into QDQ ONNX, compile QDQ
//! ONNX models into programs, run and benchmark programs, and the digits demo (the main job).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xq::delegate::{lower, PartitionMode};
use xq::interp::Interpreter;
use xq::ir::{Graph, Tensor, TensorInfo};
use xq::npy;
use xq::quant::{ActivationMode, QuantConfig, Quantizer, WeightGranularity};
use xq::runtime::{Program, ProgramOptions};

#[path = "xq/npz.rs"]
mod npz;

/// Calibration batch size (samples per `Quantizer::calibrate` call).
const CALIBRATION_BATCH: usize = 128;

#[derive(Parser)]
#[command(
    name = "xq",
    version,
    about = "libxq: int8 quantization and CPU inference delegate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Every supported pattern; connected patterns share a partition.
    All,
    /// One partition per delegated operator.
    PerOp,
    /// Nothing delegated (interpreter only).
    None,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize a float ONNX model with libxq's quantizer (static per-channel by default,
    /// calibrated on the samples of an .npy file) and save the QDQ ONNX model.
    Quantize {
        /// The float ONNX model.
        model: PathBuf,
        /// Calibration samples: an .npy array whose first axis indexes samples (required for
        /// static activations).
        #[arg(long)]
        calib: Option<PathBuf>,
        /// Output QDQ ONNX model.
        #[arg(short, long)]
        output: PathBuf,
        /// One weight scale per tensor instead of per output channel.
        #[arg(long)]
        per_tensor: bool,
        /// Dynamic (per-row, run-time) activation quantization of linear layers.
        #[arg(long)]
        dynamic: bool,
        /// Fix an input shape, e.g. `input=1,3,224,224` (repeatable).
        #[arg(long)]
        shape: Vec<String>,
    },
    /// Partition and lower a QDQ ONNX model into a program file; prints the report.
    Compile {
        /// The QDQ ONNX model.
        model: PathBuf,
        /// Output program file (.xq).
        #[arg(short, long)]
        output: PathBuf,
        /// Fix an input shape, e.g. `input=1,3,224,224` (repeatable).
        #[arg(long)]
        shape: Vec<String>,
        /// Partitioning.
        #[arg(long, value_enum, default_value = "all")]
        mode: Mode,
        /// Int8 boundaries: inputs that only feed partitions are taken already quantized,
        /// partition outputs are returned as int8 (the report lists their qparams).
        #[arg(long)]
        int8_io: bool,
    },
    /// Run a program (or an ONNX model, compiled on the fly) and report latency; `--profile`
    /// prints per-operator times.
    ///
    /// Inputs come two ways. `--input samples.npy` (one-input programs): an array whose first
    /// axis indexes samples shaped like the input (or exactly the input's shape); runs cycle
    /// through the samples. `--input NAME=FILE.npy`, once per program input: each array is that
    /// input's whole value, of any element type the model takes (f32, int64 token ids, bool
    /// masks, ...); or `--input inputs.npz` (numpy `savez`), whose arrays are named after the
    /// inputs; an ONNX model's symbolic dims are fixed from the arrays. Example:
    /// `xq run bert.onnx --input input_ids=ids.npy --input attention_mask=mask.npy --save-npy out/`
    Run {
        /// Program file (.xq) or ONNX model.
        program: PathBuf,
        /// `samples.npy`, or `NAME=FILE.npy` once per program input, or an `.npz` of arrays
        /// named after the inputs (repeatable).
        #[arg(long, required = true)]
        input: Vec<String>,
        /// Fix an ONNX model's input shape, e.g. `input_ids=1,128` (repeatable; by default the
        /// shapes of `NAME=FILE` arrays).
        #[arg(long)]
        shape: Vec<String>,
        /// Threads (0 = physical cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Timed runs (median reported).
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Print per-operator times of one run.
        #[arg(long)]
        profile: bool,
        /// Write the first output of every sample, concatenated, to this raw little-endian f32
        /// file (`samples.npy` inputs).
        #[arg(long)]
        save_outputs: Option<PathBuf>,
        /// Write every output of the first run to DIR/<output name>.npy.
        #[arg(long, value_name = "DIR")]
        save_npy: Option<PathBuf>,
    },
    /// The main job on the shipped digits data: float model vs int8 program (accuracy,
    /// latency), with the program saved, reloaded and executed.
    DigitsDemo {
        /// Repository fixtures directory.
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
        /// Threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Where to write the program.
        #[arg(long, default_value = "digits_cnn.xq")]
        output: PathBuf,
    },
}

fn parse_shapes(shapes: &[String]) -> xq::Result<Vec<(String, Vec<usize>)>> {
    shapes
        .iter()
        .map(|s| {
            let (name, dims) = s.split_once('=').ok_or_else(|| {
                xq::Error::invalid_argument("shape", format!("`{s}` is not NAME=D0,D1,..."))
            })?;
            let dims = dims
                .split(',')
                .map(|d| d.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| xq::Error::invalid_argument("shape", format!("`{s}` has a bad size")))?;
            Ok((name.to_string(), dims))
        })
        .collect()
}

fn load_graph(model: &Path, shapes: &[(String, Vec<usize>)]) -> xq::Result<xq::ir::Graph> {
    let fixed: Vec<(&str, &[usize])> = shapes.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    xq::interp::simplify_with_shapes(xq::onnx::load_file(model)?, &fixed)
}

fn mode_of(m: Mode) -> PartitionMode {
    match m {
        Mode::All => PartitionMode::All,
        Mode::PerOp => PartitionMode::PerOp,
        Mode::None => PartitionMode::None,
    }
}

/// Splits an .npy array into samples of `dims`.
fn samples(all: &Tensor, dims: &[usize]) -> xq::Result<Vec<Tensor>> {
    let per: usize = dims.iter().product();
    let x = all.as_f32()?;
    if x.is_empty() {
        return Err(xq::Error::ShapeMismatch(format!(
            "the input array {:?} holds no samples (need at least one of {dims:?})",
            all.dims()
        )));
    }
    if per == 0 || x.len() % per != 0 {
        return Err(xq::Error::ShapeMismatch(format!(
            "{} values do not split into samples of {dims:?}",
            x.len()
        )));
    }
    x.chunks(per)
        .map(|c| Tensor::from_f32(dims.to_vec(), c.to_vec()))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// What `xq run` reads its inputs from.
enum RunInputs {
    /// One array of samples for a one-input program.
    Samples(PathBuf),
    /// One array per named program input.
    Named(Vec<(String, Tensor)>),
}

impl RunInputs {
    /// Parses `--input` arguments: one plain path of samples, or named arrays from
    /// `NAME=FILE` pairs and `.npz` archives (a plain path that exists wins over a split at
    /// `=`).
    fn parse(args: &[String]) -> xq::Result<RunInputs> {
        let is_npz = |a: &String| {
            let p = Path::new(a);
            p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"))
        };
        let named = |a: &String| -> Option<(String, PathBuf)> {
            if Path::new(a).exists() {
                return None;
            }
            let (name, file) = a.split_once('=')?;
            (!name.is_empty()).then(|| (name.to_string(), PathBuf::from(file)))
        };
        if let [one] = args {
            if !is_npz(one) && named(one).is_none() {
                return Ok(RunInputs::Samples(PathBuf::from(one)));
            }
        }
        let mut pairs: Vec<(String, Tensor)> = Vec::with_capacity(args.len());
        let mut add = |name: String, t: Tensor| {
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(xq::Error::invalid_argument(
                    "input",
                    format!("`{name}` is given twice"),
                ));
            }
            pairs.push((name, t));
            Ok(())
        };
        for a in args {
            if is_npz(a) {
                for (name, t) in npz::read(Path::new(a))? {
                    add(name, t)?;
                }
                continue;
            }
            let (name, file) = named(a).ok_or_else(|| {
                xq::Error::invalid_argument(
                    "input",
                    format!("`{a}`: with several inputs each must be NAME=FILE.npy or an .npz"),
                )
            })?;
            add(name, npy::read(&file)?)?;
        }
        Ok(RunInputs::Named(pairs))
    }

    /// Input shapes to fix in an ONNX model: `--shape` entries, then the named arrays' shapes.
    fn shapes(&self, explicit: &[(String, Vec<usize>)]) -> Vec<(String, Vec<usize>)> {
        let mut shapes = explicit.to_vec();
        if let RunInputs::Named(pairs) = self {
            for (name, t) in pairs {
                if !shapes.iter().any(|(n, _)| n == name) {
                    shapes.push((name.clone(), t.dims().to_vec()));
                }
            }
        }
        shapes
    }

    /// Refuses one array of samples for a model of several inputs (before any compiling).
    fn check_count(&self, inputs: &[TensorInfo]) -> xq::Result<()> {
        match self {
            RunInputs::Samples(_) if inputs.len() != 1 => Err(xq::Error::invalid_argument(
                "input",
                format!(
                    "the model has {} inputs ({}): give each as NAME=FILE.npy, or all in an .npz",
                    inputs.len(),
                    describe_inputs(inputs)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The samples to run: each a full input list in the program's input order.
    fn samples(self, p: &Program) -> xq::Result<Vec<Vec<Tensor>>> {
        self.check_count(p.inputs())?;
        match self {
            RunInputs::Samples(path) => {
                let input = &p.inputs()[0];
                let dims = input.concrete_shape().ok_or_else(|| {
                    xq::Error::InvalidModel(format!(
                        "input `{}` has no fixed shape: give it as {}=FILE.npy, or fix it with --shape",
                        input.name, input.name
                    ))
                })?;
                Ok(samples(&npy::read(&path)?, &dims)?
                    .into_iter()
                    .map(|x| vec![x])
                    .collect())
            }
            RunInputs::Named(mut pairs) => {
                let mut ordered = Vec::with_capacity(p.inputs().len());
                for info in p.inputs() {
                    let at = pairs.iter().position(|(n, _)| *n == info.name).ok_or_else(|| {
                        xq::Error::invalid_argument(
                            "input",
                            format!(
                                "no array for program input `{}` (inputs: {})",
                                info.name,
                                describe_inputs(p.inputs())
                            ),
                        )
                    })?;
                    let (_, t) = pairs.swap_remove(at);
                    info.check_tensor(&t)?;
                    ordered.push(t);
                }
                if let Some((name, _)) = pairs.first() {
                    return Err(xq::Error::invalid_argument(
                        "input",
                        format!(
                            "the program has no input `{name}` (inputs: {})",
                            describe_inputs(p.inputs())
                        ),
                    ));
                }
                Ok(vec![ordered])
            }
        }
    }
}

/// Inputs as `name f32[1, 3, 224, 224]`, comma separated.
fn describe_inputs(inputs: &[TensorInfo]) -> String {
    inputs
        .iter()
        .map(|i| match &i.shape {
            Some(dims) => format!(
                "{} {}[{}]",
                i.name,
                i.dtype,
                dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ),
            None => format!("{} {}", i.name, i.dtype),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Options of `xq run` besides the program and its inputs.
struct RunOptions<'a> {
    shapes: Vec<(String, Vec<usize>)>,
    threads: usize,
    runs: usize,
    profile: bool,
    save_outputs: Option<&'a Path>,
    save_npy: Option<&'a Path>,
}

fn run(program: &Path, inputs: RunInputs, o: RunOptions<'_>) -> xq::Result<()> {
    let options = ProgramOptions { threads: o.threads };
    let t0 = Instant::now();
    // A program file loads in one call (its packed weights are used in place), so its
    // parse time is not separate: `parse_ms` is reported for ONNX models only.
    let (p, parse) = if program.extension().is_some_and(|e| e == "xq") {
        (Program::load_file(program, options)?, None)
    } else {
        let graph = xq::onnx::load_file(program)?;
        inputs.check_count(&graph.inputs)?;
        let shapes = inputs.shapes(&o.shapes);
        let fixed: Vec<(&str, &[usize])> = shapes.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let spec = lower(
            &xq::interp::simplify_with_shapes(graph, &fixed)?,
            PartitionMode::All,
        )?
        .0;
        let parse = t0.elapsed();
        (Program::new(spec, options)?, Some(parse))
    };
    let load = t0.elapsed();
    let xs = inputs.samples(&p)?;
    let mut outputs = Vec::new();
    for x in &xs {
        outputs.push(p.execute(x)?);
    }
    let mut times = Vec::with_capacity(o.runs);
    for i in 0..o.runs.max(1) {
        let x = &xs[i % xs.len()];
        let t = Instant::now();
        p.execute(x)?;
        times.push(t.elapsed());
    }
    let tail = match parse {
        Some(parse) => format!("parse_ms {:.3}", parse.as_secs_f64() * 1e3),
        None => format!("steps_weights_in_place {}", p.steps_with_weights_in_place()),
    };
    println!(
        "isa {} threads {} load_ms {:.3} median_ms {:.3} runs {} peak_rss_mib {:.1} arena_kib {:.1} {tail}",
        xq::cpu::selected_isa()?.name(),
        p.threads(),
        load.as_secs_f64() * 1e3,
        median(times).as_secs_f64() * 1e3,
        o.runs.max(1),
        peak_rss_mib().unwrap_or(f64::NAN),
        p.arena_size() as f64 / 1024.0,
    );
    if o.profile {
        let prof = p.profile(&xs[0])?;
        let total: Duration = prof.iter().map(|(_, t)| *t).sum();
        for (label, t) in &prof {
            println!("  {:9.1} us  {label}", t.as_secs_f64() * 1e6);
        }
        println!("  {:9.1} us  total", total.as_secs_f64() * 1e6);
    }
    if let Some(path) = o.save_outputs {
        let mut bytes = Vec::new();
        for out in &outputs {
            bytes.extend(out[0].to_le_bytes());
        }
        std::fs::write(path, bytes).map_err(|e| xq::Error::io(path.display(), e))?;
    }
    if let Some(dir) = o.save_npy {
        std::fs::create_dir_all(dir).map_err(|e| xq::Error::io(dir.display(), e))?;
        for (info, t) in p.outputs().iter().zip(&outputs[0]) {
            let file: String = info
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            npy::write(dir.join(format!("{file}.npy")), t)?;
        }
    }
    Ok(())
}

/// Splits an .npy array along its first axis into batches of at most `batch` samples.
fn batches(all: &Tensor, batch: usize) -> xq::Result<Vec<Tensor>> {
    let dims = all.dims().to_vec();
    let n = *dims
        .first()
        .ok_or_else(|| xq::Error::ShapeMismatch("calibration data must have a sample axis".into()))?;
    if n == 0 || all.numel() == 0 {
        return Err(xq::Error::ShapeMismatch(format!(
            "the calibration array {dims:?} holds no samples"
        )));
    }
    let x = all.as_f32()?;
    let per = x.len().checked_div(n).unwrap_or(0);
    (0..n)
        .step_by(batch.max(1))
        .map(|start| {
            let end = (start + batch).min(n);
            let mut shape = dims.clone();
            shape[0] = end - start;
            Tensor::from_f32(shape, x[start * per..end * per].to_vec())
        })
        .collect()
}

/// Prepares, calibrates (on every sample of `calib`, in batches) and converts `graph`;
/// returns the QDQ graph and the quantizer report.
fn quantize_graph(graph: &Graph, config: QuantConfig, calib: Option<&Tensor>) -> xq::Result<(Graph, String)> {
    let mut quantizer = Quantizer::new(Some(config))?;
    quantizer.prepare(graph)?;
    match calib {
        Some(data) => {
            for batch in batches(data, CALIBRATION_BATCH)? {
                quantizer.calibrate(&[batch])?;
            }
        }
        None if config.activations == ActivationMode::Static => {
            return Err(xq::Error::invalid_argument(
                "calib",
                "static quantization needs calibration samples (--calib X.npy)",
            ))
        }
        None => {}
    }
    let qdq = quantizer.convert()?;
    Ok((qdq, quantizer.report()))
}

fn quantize(
    model: &Path,
    calib: Option<&Path>,
    output: &Path,
    per_tensor: bool,
    dynamic: bool,
    shapes: &[(String, Vec<usize>)],
) -> xq::Result<()> {
    let config = QuantConfig {
        weights: if per_tensor {
            WeightGranularity::PerTensor
        } else {
            WeightGranularity::PerChannel
        },
        activations: if dynamic {
            ActivationMode::Dynamic
        } else {
            ActivationMode::Static
        },
        ..QuantConfig::default()
    };
    let calib = calib.map(npy::read).transpose()?;
    let (qdq, report) = quantize_graph(&load_graph(model, shapes)?, config, calib.as_ref())?;
    print!("{report}");
    xq::onnx::save_file(&qdq, output)
}

fn digits_demo(fixtures: &Path, threads: usize, output: &Path) -> xq::Result<()> {
    let digits = fixtures.join("digits");
    let x = npy::read(digits.join("digits_test_x.npy"))?;
    let labels = npy::read(digits.join("digits_test_y.npy"))?.to_i64_vec()?;
    let shape = [("input", &[1usize, 1, 8, 8][..])];
    let xs = samples(&x, &[1, 1, 8, 8])?;
    let accuracy = |pred: &[usize]| {
        pred.iter()
            .zip(&labels)
            .filter(|(p, l)| **p as i64 == **l)
            .count() as f64
            / labels.len() as f64
    };

    // Float reference: the interpreter on the float model.
    let float_graph =
        xq::interp::simplify_with_shapes(xq::onnx::load_file(digits.join("digits_cnn.onnx"))?, &shape)?;
    let interp = Interpreter::new(&float_graph)?;
    let t = Instant::now();
    let mut float_pred = Vec::new();
    for s in &xs {
        float_pred.push(argmax(interp.run(std::slice::from_ref(s))?[0].as_f32()?));
    }
    let float_ms = t.elapsed().as_secs_f64() * 1e3 / xs.len() as f64;

    // int8: libxq's quantizer (static, per-channel, calibrated on the training split) →
    // QDQ graph → partition → lower → save → load → execute.
    let train = npy::read(digits.join("digits_train_x.npy"))?;
    let (qdq, quant_report) = quantize_graph(&float_graph, QuantConfig::default(), Some(&train))?;
    println!("quantizer: {}", quant_report.lines().next().unwrap_or(""));
    let (spec, report) = lower(&qdq, PartitionMode::All)?;
    println!("partitions:\n{}", report.text());
    // Saved with the weights packed for this CPU, used in place by the load below.
    Program::new(spec, ProgramOptions { threads: 1 })?.save(output)?;
    let t = Instant::now();
    let program = Program::load_file(output, ProgramOptions { threads })?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut int8_pred = Vec::new();
    for s in &xs {
        int8_pred.push(argmax(program.execute(std::slice::from_ref(s))?[0].as_f32()?));
    }
    let int8_ms = t.elapsed().as_secs_f64() * 1e3 / xs.len() as f64;
    println!(
        "program: {} ({} bytes), loaded in {load_ms:.3} ms",
        output.display(),
        std::fs::metadata(output).map(|m| m.len()).unwrap_or(0)
    );
    println!("test images: {}", xs.len());
    println!(
        "float accuracy {:.4}  latency {float_ms:.4} ms/image (interpreter)",
        accuracy(&float_pred)
    );
    println!(
        "int8  accuracy {:.4}  latency {int8_ms:.4} ms/image (libxq program, {} thread(s))",
        accuracy(&int8_pred),
        program.threads()
    );
    let drop = accuracy(&float_pred) - accuracy(&int8_pred);
    if drop > 0.01 {
        return Err(xq::Error::Internal(format!(
            "int8 accuracy is {:.2} points below float (more than 1 point)",
            drop * 100.0
        )));
    }
    println!("int8 accuracy within 1 point of float: yes");
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quantize {
            model,
            calib,
            output,
            per_tensor,
            dynamic,
            shape,
        } => parse_shapes(&shape)
            .and_then(|s| quantize(&model, calib.as_deref(), &output, per_tensor, dynamic, &s)),
        Command::Compile {
            model,
            output,
            shape,
            mode,
            int8_io,
        } => parse_shapes(&shape).and_then(|s| {
            let (mut spec, report) = lower(&load_graph(&model, &s)?, mode_of(mode))?;
            print!("{}", report.text());
            if int8_io {
                for name in xq::delegate::int8_io::make_int8_io(&mut spec) {
                    println!("int8 boundary: {name}");
                }
            }
            Program::new(spec, ProgramOptions { threads: 1 })?.save(&output)
        }),
        Command::Run {
            program,
            input,
            shape,
            threads,
            runs,
            profile,
            save_outputs,
            save_npy,
        } => parse_shapes(&shape).and_then(|shapes| {
            run(
                &program,
                RunInputs::parse(&input)?,
                RunOptions {
                    shapes,
                    threads,
                    runs,
                    profile,
                    save_outputs: save_outputs.as_deref(),
                    save_npy: save_npy.as_deref(),
                },
            )
        }),
        Command::DigitsDemo {
            fixtures,
            threads,
            output,
        } => digits_demo(&fixtures, threads, &output),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
