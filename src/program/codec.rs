//! The encoding of the `program` section of a program file: a [`ProgramSpec`] as
//! little-endian bytes (inputs, outputs, values and steps with each kernel's unpacked int8
//! weights, scales and int32 bias). [`crate::format::program_file`] frames these bytes in a
//! container section; this module gives them meaning.
//!
//! Every count and length read is checked against the bytes that remain before anything is
//! allocated.

use crate::ir::{DType, Dim, Graph, TensorInfo};
use crate::kernels::{OutputRange, QuantParams};
use crate::program::steps::fixed;
use crate::program::steps::resize::ResizeTaps;
use crate::program::{KernelSpec, ProgramSpec, StepSpec, ValueSpec, Window};
use crate::qscheme::QWeights;
use crate::{Error, Result};

/// Version of the `program` section's encoding, checked on load: bumped when an existing
/// layout changes; a new kernel kind takes a new tag instead.
pub const PROGRAM_ENCODING: u32 = 4;

/// The step tag of [`StepSpec::ResizeExit`] (0–5 are the other step kinds; 6–12 are free).
const RESIZE_EXIT_TAG: u8 = 13;

/// Little-endian encoder.
#[derive(Default)]
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u64(&mut self, v: usize) {
        self.0.extend((v as u64).to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend(v.to_le_bytes());
    }
    pub(crate) fn f32(&mut self, v: f32) {
        self.0.extend(v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.u64(s.len());
        self.0.extend(s.as_bytes());
    }
    pub(crate) fn usizes(&mut self, v: &[usize]) {
        self.u64(v.len());
        v.iter().for_each(|&x| self.u64(x));
    }
    pub(crate) fn i8s(&mut self, v: &[i8]) {
        self.u64(v.len());
        self.0.extend(v.iter().map(|&x| x as u8));
    }
    /// Constant weights: the values (as [`Enc::i8s`]), then the scales.
    pub(crate) fn qweights(&mut self, w: &QWeights) {
        self.i8s(&w.values);
        self.f32s(&w.scales);
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len());
        v.iter().for_each(|&x| self.f32(x));
    }
    pub(crate) fn i32s(&mut self, v: &[i32]) {
        self.u64(v.len());
        v.iter().for_each(|&x| self.i32(x));
    }
    pub(crate) fn info(&mut self, t: &TensorInfo) {
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
    pub(crate) fn window(&mut self, w: &Window) {
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
    pub(crate) fn range(&mut self, r: &OutputRange) {
        self.u8(r.min as u8);
        self.u8(r.max as u8);
    }
}

/// Bounds-checked little-endian decoder.
pub(crate) struct Dec<'a> {
    b: &'a [u8],
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::CorruptFile(format!("program section is corrupt: {what}"))
}

impl<'a> Dec<'a> {
    /// Decodes `b` from its start.
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Dec { b }
    }
    /// No bytes remain.
    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() {
            return Err(corrupt("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<usize> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| corrupt("size overflows"))
    }
    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub(crate) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    /// A count of elements of `elem` bytes each, checked against the remaining bytes.
    pub(crate) fn count(&mut self, elem: usize) -> Result<usize> {
        let n = self.u64()?;
        if n.checked_mul(elem.max(1)).is_none_or(|b| b > self.b.len()) {
            return Err(corrupt("length exceeds the section"));
        }
        Ok(n)
    }
    pub(crate) fn str(&mut self) -> Result<String> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("name is not UTF-8"))
    }
    pub(crate) fn usizes(&mut self) -> Result<Vec<usize>> {
        let n = self.count(8)?;
        (0..n).map(|_| self.u64()).collect()
    }
    pub(crate) fn i8s(&mut self) -> Result<Vec<i8>> {
        let n = self.count(1)?;
        Ok(self.take(n)?.iter().map(|&x| x as i8).collect())
    }
    /// [`Dec::i8s`], or with `view` an empty vector and the bytes in place (length checked).
    pub(crate) fn i8s_or_view(&mut self, view: bool) -> Result<(Vec<i8>, Option<&'a [u8]>)> {
        if view {
            let n = self.count(1)?;
            Ok((Vec::new(), Some(self.take(n)?)))
        } else {
            Ok((self.i8s()?, None))
        }
    }
    /// Constant weights written by [`Enc::qweights`]; with `view`, the values are left in
    /// the file (empty here) and their bytes are returned instead.
    pub(crate) fn qweights_or_view(&mut self, view: bool) -> Result<(QWeights, Option<&'a [u8]>)> {
        let (values, viewed) = self.i8s_or_view(view)?;
        let scales = self.f32s()?;
        Ok((QWeights { values, scales }, viewed))
    }
    pub(crate) fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.f32()).collect()
    }
    pub(crate) fn i32s(&mut self) -> Result<Vec<i32>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.i32()).collect()
    }
    pub(crate) fn info(&mut self) -> Result<TensorInfo> {
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
    pub(crate) fn window(&mut self) -> Result<Window> {
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
    pub(crate) fn range(&mut self) -> Result<OutputRange> {
        let (lo, hi) = (self.u8()? as i8, self.u8()? as i8);
        OutputRange::new(lo, hi).map_err(|_| corrupt("output range"))
    }
}

/// Encodes the `program` section payload of `spec`.
pub(crate) fn encode_program(spec: &ProgramSpec) -> Vec<u8> {
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
                kernel.encode(&mut e);
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
            StepSpec::ResizeExit {
                node,
                value,
                tensor,
                resize,
            } => {
                e.u8(RESIZE_EXIT_TAG);
                e.str(node);
                e.u64(*value);
                e.str(tensor);
                resize.encode(&mut e);
            }
            StepSpec::DynamicLinear {
                node,
                input,
                output,
                n,
                k,
                weights,
                bias,
                relu,
            } => {
                // Tag 5 is the same step with a fused ReLU (tag 4 files stay readable).
                e.u8(if *relu { 5 } else { 4 });
                e.str(node);
                e.str(input);
                e.str(output);
                e.usizes(&[*n, *k]);
                e.qweights(weights);
                e.f32s(bias);
            }
        }
    }
    e.0
}

/// Decodes the program section. With `views`, the int8 weights of convolutions and fully
/// connected layers are left empty in the program and pushed to `views` in place (one entry
/// per step, `None` for the other steps).
pub(crate) fn decode_program<'a>(
    bytes: &'a [u8],
    fallback: Graph,
    report: String,
    mut views: Option<&mut Vec<Option<&'a [u8]>>>,
) -> Result<ProgramSpec> {
    let mut d = Dec::new(bytes);
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
                let (kernel, weights) = KernelSpec::decode(&mut d, views.is_some())?;
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
            RESIZE_EXIT_TAG => StepSpec::ResizeExit {
                node: d.str()?,
                value: d.u64()?,
                tensor: d.str()?,
                resize: ResizeTaps::decode(&mut d)?,
            },
            tag @ (4 | 5) => {
                let (node, input, output) = (d.str()?, d.str()?, d.str()?);
                let [n, k] = fixed(&mut d)?;
                StepSpec::DynamicLinear {
                    node,
                    input,
                    output,
                    n,
                    k,
                    weights: d.qweights_or_view(false)?.0,
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
        report_data: None,
    })
}
