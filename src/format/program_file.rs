//! The program file: a [`ProgramSpec`] in a `.xq` container.
//!
//! Sections: `program` (kind 1: inputs, outputs, values and steps with each kernel's
//! unpacked int8 weights, scales and int32 bias, in a little-endian encoding),
//! `fallback` (kind 2: the interpreter's nodes and constants as ONNX protobuf; empty when
//! everything is delegated), `report` (kind 3: the partitioning report, UTF-8) and,
//! optionally, `packed` (kind 4, [`super::packed`]: the GEMM weights packed for the kernels of
//! the saving process's ISA). A loading process whose kernels match uses the packed weights
//! in place from the memory map; any other packs the unpacked weights, so one file serves
//! every ISA. Readers that predate the packed section ignore it (the container skips unknown
//! kinds). Every count and length read from a file is checked against the bytes that remain
//! before anything is allocated.
//!
//! This module knows the program ([`crate::program`]), not the runtime: packing weights for
//! an ISA is the runtime's job, so the packed section is written from blobs the runtime
//! hands over ([`to_bytes_with_packed`], called by `runtime::Program::to_bytes`,
//! which saves the weights its kernels already packed), and read back as blobs per step that
//! the runtime's kernel steps take ([`from_bytes_for`]). [`to_bytes`] and [`save`] write a
//! program without that section.

use super::container::{ContainerReader, ContainerWriter, Section};
use super::packed::{PackedSection, KIND_PACKED};
use crate::ir::{DType, Dim, Graph, TensorInfo};
use crate::kernels::{OutputRange, QuantParams};
use crate::program::{BinaryKind, KernelSpec, ProgramSpec, StepSpec, ValueSpec, Window};
use crate::{Error, Result};

const KIND_PROGRAM: u32 = 1;
const KIND_FALLBACK: u32 = 2;
const KIND_REPORT: u32 = 3;
/// Version of the `program` section's encoding (checked on load, bumped on any change).
const PROGRAM_ENCODING: u32 = 4;

/// Little-endian encoder.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: usize) {
        self.0.extend((v as u64).to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend(v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend(v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len());
        self.0.extend(s.as_bytes());
    }
    fn usizes(&mut self, v: &[usize]) {
        self.u64(v.len());
        v.iter().for_each(|&x| self.u64(x));
    }
    fn i8s(&mut self, v: &[i8]) {
        self.u64(v.len());
        self.0.extend(v.iter().map(|&x| x as u8));
    }
    fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len());
        v.iter().for_each(|&x| self.f32(x));
    }
    fn i32s(&mut self, v: &[i32]) {
        self.u64(v.len());
        v.iter().for_each(|&x| self.i32(x));
    }
    fn info(&mut self, t: &TensorInfo) {
        self.str(&t.name);
        self.i32(t.dtype.onnx_code());
        match &t.shape {
            None => self.u8(0),
            Some(dims) => {
                self.u8(1);
                self.u64(dims.len());
                for d in dims {
                    match d {
                        Dim::Known(n) => {
                            self.u8(0);
                            self.u64(*n);
                        }
                        Dim::Symbolic(s) => {
                            self.u8(1);
                            self.str(s);
                        }
                    }
                }
            }
        }
    }
    fn window(&mut self, w: &Window) {
        for v in [
            w.kernel.0,
            w.kernel.1,
            w.stride.0,
            w.stride.1,
            w.dilation.0,
            w.dilation.1,
            w.pads.0,
            w.pads.1,
            w.pads.2,
            w.pads.3,
        ] {
            self.u64(v);
        }
    }
    fn range(&mut self, r: &OutputRange) {
        self.u8(r.min as u8);
        self.u8(r.max as u8);
    }
}

/// Bounds-checked little-endian decoder.
struct Dec<'a> {
    b: &'a [u8],
}

fn corrupt(what: &str) -> Error {
    Error::CorruptFile(format!("program section is corrupt: {what}"))
}

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() {
            return Err(corrupt("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<usize> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| corrupt("size overflows"))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    /// A count of elements of `elem` bytes each, checked against the remaining bytes.
    fn count(&mut self, elem: usize) -> Result<usize> {
        let n = self.u64()?;
        if n.checked_mul(elem.max(1)).is_none_or(|b| b > self.b.len()) {
            return Err(corrupt("length exceeds the section"));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("name is not UTF-8"))
    }
    fn usizes(&mut self) -> Result<Vec<usize>> {
        let n = self.count(8)?;
        (0..n).map(|_| self.u64()).collect()
    }
    fn i8s(&mut self) -> Result<Vec<i8>> {
        let n = self.count(1)?;
        Ok(self.take(n)?.iter().map(|&x| x as i8).collect())
    }
    /// [`Dec::i8s`], or with `view` an empty vector and the bytes in place (length checked).
    fn i8s_or_view(&mut self, view: bool) -> Result<(Vec<i8>, Option<&'a [u8]>)> {
        if view {
            let n = self.count(1)?;
            Ok((Vec::new(), Some(self.take(n)?)))
        } else {
            Ok((self.i8s()?, None))
        }
    }
    fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.f32()).collect()
    }
    fn i32s(&mut self) -> Result<Vec<i32>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.i32()).collect()
    }
    fn info(&mut self) -> Result<TensorInfo> {
        let name = self.str()?;
        let dtype = DType::from_onnx_code(self.i32()?)?;
        let shape = match self.u8()? {
            0 => None,
            1 => {
                let n = self.count(9)?;
                let mut dims = Vec::with_capacity(n);
                for _ in 0..n {
                    dims.push(match self.u8()? {
                        0 => Dim::Known(self.u64()?),
                        1 => Dim::Symbolic(self.str()?),
                        _ => return Err(corrupt("dim tag")),
                    });
                }
                Some(dims)
            }
            _ => return Err(corrupt("shape tag")),
        };
        Ok(TensorInfo { name, dtype, shape })
    }
    fn window(&mut self) -> Result<Window> {
        let mut v = [0usize; 10];
        for x in &mut v {
            *x = self.u64()?;
        }
        Ok(Window {
            kernel: (v[0], v[1]),
            stride: (v[2], v[3]),
            dilation: (v[4], v[5]),
            pads: (v[6], v[7], v[8], v[9]),
        })
    }
    fn range(&mut self) -> Result<OutputRange> {
        let (lo, hi) = (self.u8()? as i8, self.u8()? as i8);
        OutputRange::new(lo, hi).map_err(|_| corrupt("output range"))
    }
}

fn encode_kernel(e: &mut Enc, k: &KernelSpec) {
    match k {
        KernelSpec::Conv {
            input,
            output,
            window,
            groups,
            depthwise,
            weights,
            scales,
            bias,
            range,
        } => {
            e.u8(0);
            e.usizes(&[*input, *output, *groups, *depthwise as usize]);
            e.window(window);
            e.i8s(weights);
            e.f32s(scales);
            e.i32s(bias);
            e.range(range);
        }
        KernelSpec::FullyConnected {
            input,
            output,
            n,
            k,
            weights,
            scales,
            bias,
            range,
        } => {
            e.u8(1);
            e.usizes(&[*input, *output, *n, *k]);
            e.i8s(weights);
            e.f32s(scales);
            e.i32s(bias);
            e.range(range);
        }
        KernelSpec::Binary {
            kind,
            a,
            b,
            output,
            range,
        } => {
            e.u8(2);
            e.usizes(&[*kind as usize, *a, *b, *output]);
            e.range(range);
        }
        KernelSpec::GlobalAvgPool { input, output, range } => {
            e.u8(3);
            e.usizes(&[*input, *output]);
            e.range(range);
        }
        KernelSpec::MaxPool {
            input,
            output,
            window,
        } => {
            e.u8(4);
            e.usizes(&[*input, *output]);
            e.window(window);
        }
        KernelSpec::Concat { inputs, output, axis } => {
            e.u8(5);
            e.usizes(inputs);
            e.usizes(&[*output, *axis]);
        }
        KernelSpec::Reshape { input, output } => {
            e.u8(6);
            e.usizes(&[*input, *output]);
        }
        KernelSpec::Gather {
            input,
            output,
            map,
            fill,
        } => {
            e.u8(8);
            e.usizes(&[*input, *output]);
            e.u8(*fill as u8);
            e.u64(map.len());
            map.iter().for_each(|&m| e.0.extend(m.to_le_bytes()));
        }
        KernelSpec::Im2col {
            input,
            output,
            window,
            k_padded,
        } => {
            e.u8(7);
            e.usizes(&[*input, *output, *k_padded]);
            e.window(window);
        }
    }
}

fn fixed<const N: usize>(d: &mut Dec) -> Result<[usize; N]> {
    d.usizes()?
        .try_into()
        .map_err(|_| corrupt("wrong number of kernel fields"))
}

/// Decodes a kernel; with `view`, a convolution's or fully connected layer's int8 weights
/// are left empty and returned in place instead (length checked).
fn decode_kernel<'a>(d: &mut Dec<'a>, view: bool) -> Result<(KernelSpec, Option<&'a [u8]>)> {
    Ok(match d.u8()? {
        0 => {
            let [input, output, groups, dw] = fixed(d)?;
            let window = d.window()?;
            let (weights, viewed) = d.i8s_or_view(view)?;
            let kernel = KernelSpec::Conv {
                input,
                output,
                groups,
                depthwise: dw != 0,
                window,
                weights,
                scales: d.f32s()?,
                bias: d.i32s()?,
                range: d.range()?,
            };
            (kernel, viewed)
        }
        1 => {
            let [input, output, n, k] = fixed(d)?;
            let (weights, viewed) = d.i8s_or_view(view)?;
            let kernel = KernelSpec::FullyConnected {
                input,
                output,
                n,
                k,
                weights,
                scales: d.f32s()?,
                bias: d.i32s()?,
                range: d.range()?,
            };
            (kernel, viewed)
        }
        tag => (decode_weightless_kernel(d, tag)?, None),
    })
}

/// Decodes a kernel without weights (the tags after 1).
fn decode_weightless_kernel(d: &mut Dec, tag: u8) -> Result<KernelSpec> {
    Ok(match tag {
        2 => {
            let [kind, a, b, output] = fixed(d)?;
            let kind = match kind {
                0 => BinaryKind::Add,
                1 => BinaryKind::Mul,
                _ => return Err(corrupt("binary kind")),
            };
            KernelSpec::Binary {
                kind,
                a,
                b,
                output,
                range: d.range()?,
            }
        }
        3 => {
            let [input, output] = fixed(d)?;
            KernelSpec::GlobalAvgPool {
                input,
                output,
                range: d.range()?,
            }
        }
        4 => {
            let [input, output] = fixed(d)?;
            KernelSpec::MaxPool {
                input,
                output,
                window: d.window()?,
            }
        }
        5 => {
            let inputs = d.usizes()?;
            let [output, axis] = fixed(d)?;
            KernelSpec::Concat { inputs, output, axis }
        }
        6 => {
            let [input, output] = fixed(d)?;
            KernelSpec::Reshape { input, output }
        }
        8 => {
            let [input, output] = fixed(d)?;
            let fill = d.u8()? as i8;
            let n = d.count(4)?;
            let map = (0..n)
                .map(|_| Ok(u32::from_le_bytes(d.take(4)?.try_into().expect("4 bytes"))))
                .collect::<Result<Vec<_>>>()?;
            KernelSpec::Gather {
                input,
                output,
                map,
                fill,
            }
        }
        7 => {
            let [input, output, k_padded] = fixed(d)?;
            KernelSpec::Im2col {
                input,
                output,
                k_padded,
                window: d.window()?,
            }
        }
        _ => return Err(corrupt("kernel tag")),
    })
}

fn encode_program(spec: &ProgramSpec) -> Vec<u8> {
    let mut e = Enc::default();
    e.0.extend(PROGRAM_ENCODING.to_le_bytes());
    e.u64(spec.inputs.len());
    spec.inputs.iter().for_each(|i| e.info(i));
    e.u64(spec.outputs.len());
    spec.outputs.iter().for_each(|i| e.info(i));
    e.u64(spec.values.len());
    for v in &spec.values {
        e.str(&v.name);
        e.usizes(&v.dims);
        e.f32(v.q.scale);
        e.i32(v.q.zero_point);
        e.u8(v.unsigned as u8);
    }
    e.u64(spec.steps.len());
    for s in &spec.steps {
        match s {
            StepSpec::Kernel {
                partition,
                node,
                kernel,
            } => {
                e.u8(0);
                e.u64(*partition);
                e.str(node);
                encode_kernel(&mut e, kernel);
            }
            StepSpec::Quantize { tensor, value } => {
                e.u8(1);
                e.str(tensor);
                e.u64(*value);
            }
            StepSpec::Dequantize { value, tensor, int8 } => {
                e.u8(2);
                e.u64(*value);
                e.str(tensor);
                e.u8(*int8 as u8);
            }
            StepSpec::Interp { node } => {
                e.u8(3);
                e.str(node);
            }
            StepSpec::DynamicLinear {
                node,
                input,
                output,
                n,
                k,
                weights,
                scales,
                bias,
                relu,
            } => {
                // Tag 5 is the same step with a fused ReLU (tag 4 files stay readable).
                e.u8(if *relu { 5 } else { 4 });
                e.str(node);
                e.str(input);
                e.str(output);
                e.usizes(&[*n, *k]);
                e.i8s(weights);
                e.f32s(scales);
                e.f32s(bias);
            }
        }
    }
    e.0
}

/// Decodes the program section. With `views`, the int8 weights of convolutions and fully
/// connected layers are left empty in the program and pushed to `views` in place (one entry
/// per step, `None` for the other steps).
fn decode_program<'a>(
    bytes: &'a [u8],
    fallback: Graph,
    report: String,
    mut views: Option<&mut Vec<Option<&'a [u8]>>>,
) -> Result<ProgramSpec> {
    let mut d = Dec { b: bytes };
    let version = u32::from_le_bytes(d.take(4)?.try_into().expect("4 bytes"));
    if version != PROGRAM_ENCODING {
        return Err(Error::CorruptFile(format!(
            "program encoding {version} is not supported (this libxq reads {PROGRAM_ENCODING}); recompile the model"
        )));
    }
    let n = d.count(13)?;
    let inputs = (0..n).map(|_| d.info()).collect::<Result<Vec<_>>>()?;
    let n = d.count(13)?;
    let outputs = (0..n).map(|_| d.info()).collect::<Result<Vec<_>>>()?;
    let n = d.count(25)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.str()?;
        let dims = d.usizes()?;
        crate::ir::checked_numel(&dims)?;
        let q = QuantParams::new(d.f32()?, d.i32()?, "value").map_err(|_| corrupt("value qparams"))?;
        let unsigned = d.u8()? != 0;
        values.push(ValueSpec {
            name,
            dims,
            q,
            unsigned,
        });
    }
    let n = d.count(9)?;
    let mut steps = Vec::with_capacity(n);
    for _ in 0..n {
        let mut viewed = None;
        steps.push(match d.u8()? {
            0 => {
                let (partition, node) = (d.u64()?, d.str()?);
                let (kernel, weights) = decode_kernel(&mut d, views.is_some())?;
                viewed = weights;
                StepSpec::Kernel {
                    partition,
                    node,
                    kernel,
                }
            }
            1 => StepSpec::Quantize {
                tensor: d.str()?,
                value: d.u64()?,
            },
            2 => StepSpec::Dequantize {
                value: d.u64()?,
                tensor: d.str()?,
                int8: d.u8()? != 0,
            },
            3 => StepSpec::Interp { node: d.str()? },
            tag @ (4 | 5) => {
                let (node, input, output) = (d.str()?, d.str()?, d.str()?);
                let [n, k] = fixed(&mut d)?;
                StepSpec::DynamicLinear {
                    node,
                    input,
                    output,
                    n,
                    k,
                    weights: d.i8s()?,
                    scales: d.f32s()?,
                    bias: d.f32s()?,
                    relu: tag == 5,
                }
            }
            _ => return Err(corrupt("step tag")),
        });
        if let Some(v) = views.as_deref_mut() {
            v.push(viewed);
        }
    }
    if !d.b.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(ProgramSpec {
        inputs,
        outputs,
        values,
        steps,
        fallback,
        report,
    })
}

/// Serialises a lowered program into `.xq` bytes without a packed section (a loading process
/// packs the weights); `runtime::Program::to_bytes` adds the packed weights of its
/// kernels.
pub fn to_bytes(spec: &ProgramSpec) -> Result<Vec<u8>> {
    to_bytes_with_packed(spec, None)
}

/// Serialises a lowered program with the given packed section payload (encoded by
/// [`super::packed::encode`]), if any.
pub fn to_bytes_with_packed(spec: &ProgramSpec, packed: Option<&[u8]>) -> Result<Vec<u8>> {
    let program = encode_program(spec);
    let fallback = if spec.fallback.nodes.is_empty() {
        Vec::new()
    } else {
        crate::onnx::to_bytes(&spec.fallback)?
    };
    let mut w = ContainerWriter::new();
    for (kind, name, data) in [
        (KIND_PROGRAM, "program", program.as_slice()),
        (KIND_FALLBACK, "fallback", fallback.as_slice()),
        (KIND_REPORT, "report", spec.report.as_bytes()),
    ] {
        w.add(Section {
            kind,
            flags: 0,
            name,
            data,
        })?;
    }
    if let Some(data) = packed {
        w.add(Section {
            kind: KIND_PACKED,
            flags: 0,
            name: "packed",
            data,
        })?;
    }
    Ok(w.to_bytes())
}

/// Parses `.xq` bytes (validated container) into a lowered program; a packed section is
/// not read.
pub fn from_bytes(bytes: &[u8]) -> Result<ProgramSpec> {
    decode_sections(&ContainerReader::parse(bytes)?, None)
}

/// A program file decoded for loading by [`from_bytes_for`], borrowing from the file's bytes.
pub struct LoadView<'a> {
    /// The program, with empty `weights` in every convolution and fully connected step.
    pub spec: ProgramSpec,
    /// Per step: the int8 weights the program leaves empty, in place in the file.
    pub weights: Vec<Option<&'a [i8]>>,
    /// The packed section, when it was written for the kernels asked for.
    pub packed: Option<PackedSection<'a>>,
}

/// Views `bytes` as `i8`.
fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: `i8` and `u8` have the same size and alignment and every bit pattern is valid
    // for both.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Parses `.xq` bytes for loading with the kernels of `isa`, without copying constant data:
/// the int8 weights of convolutions and fully connected layers stay in `bytes` (for packing
/// at load), and the packed section is returned (validated, in place) when it was written
/// for exactly those kernels (same ISA and GEMM kernel name).
pub fn from_bytes_for(bytes: &[u8], isa: crate::cpu::Isa) -> Result<LoadView<'_>> {
    let c = ContainerReader::parse(bytes)?;
    let packed = match c.sections().iter().find(|s| s.kind == KIND_PACKED) {
        Some(s) => PackedSection::parse(s.data)?,
        None => None,
    }
    .filter(|p| p.isa == isa && p.kernel == crate::kernels::table::gemm_kernel(isa).name);
    let mut weights = Vec::new();
    let spec = decode_sections(&c, Some(&mut weights))?;
    Ok(LoadView {
        spec,
        weights: weights.into_iter().map(|w| w.map(as_i8)).collect(),
        packed,
    })
}

fn decode_sections<'a>(
    c: &ContainerReader<'a>,
    views: Option<&mut Vec<Option<&'a [u8]>>>,
) -> Result<ProgramSpec> {
    let program = c.require(KIND_PROGRAM, "program")?.data;
    let fallback = c.require(KIND_FALLBACK, "fallback")?.data;
    let report = c.require(KIND_REPORT, "report")?.data;
    let fallback = if fallback.is_empty() {
        Graph::default()
    } else {
        crate::onnx::load_bytes(fallback, None)?
    };
    let report = String::from_utf8(report.to_vec()).map_err(|_| corrupt("report is not UTF-8"))?;
    decode_program(program, fallback, report, views)
}

/// Writes a program file without a packed section (see [`to_bytes`]).
pub fn save(spec: &ProgramSpec, path: impl AsRef<std::path::Path>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(spec)?).map_err(|e| Error::io(path.display(), e))
}

/// Reads a program file through a memory map.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<ProgramSpec> {
    let bytes = super::ProgramBytes::map_file(path.as_ref())?;
    from_bytes(bytes.as_slice())
}
