//! Int8 program boundaries, on request. By default a program takes and returns `f32`
//! tensors: an input is quantized where a partition starts and an output dequantized where
//! one ends. A host that already holds quantized data (or wants the int8 result, e.g. to
//! chain delegates) asks for int8 boundaries instead: every input that feeds only
//! partition entries becomes an int8 (or uint8) tensor with the qparams of its
//! `QuantizeLinear`, and every output produced by a partition exit becomes the int8 (or
//! uint8) tensor behind its `DequantizeLinear`. Inputs also read by the interpreter or a
//! dynamic step, and outputs the interpreter or a float exit (`StepSpec::ResizeExit`)
//! produces, stay `f32`.

use crate::ir::DType;
use crate::program::{ProgramSpec, StepSpec};
use crate::qscheme::Carrier;

/// The quantization of an int8 program input or output, in the terms of its element type
/// (a uint8 zero point is in `0..=255`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IoQuant {
    /// `DType::I8` or `DType::U8`.
    pub dtype: DType,
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

/// Makes every boundary of `spec` that can be int8 int8 (see the module docs); returns the
/// names of the inputs and outputs changed.
pub fn make_int8_io(spec: &mut ProgramSpec) -> Vec<String> {
    let mut changed = Vec::new();
    for i in 0..spec.inputs.len() {
        if spec.inputs[i].dtype != DType::F32 {
            continue;
        }
        let name = spec.inputs[i].name.clone();
        let Some(q) = entry_quant(spec, &name) else {
            continue;
        };
        spec.inputs[i].dtype = q.dtype;
        changed.push(name);
    }
    for o in 0..spec.outputs.len() {
        if spec.outputs[o].dtype != DType::F32 {
            continue;
        }
        let name = spec.outputs[o].name.clone();
        let Some(at) = spec
            .steps
            .iter()
            .position(|s| matches!(s, StepSpec::Dequantize { tensor, int8: false, .. } if *tensor == name))
        else {
            continue;
        };
        if let StepSpec::Dequantize { value, int8, .. } = &mut spec.steps[at] {
            *int8 = true;
            spec.outputs[o].dtype = if spec.values[*value].unsigned {
                DType::U8
            } else {
                DType::I8
            };
            changed.push(name);
        }
    }
    changed
}

/// The quantization of program input (`output` false) or output `index`, or None when that
/// boundary is `f32` (or out of range).
pub fn io_quant(spec: &ProgramSpec, output: bool, index: usize) -> Option<IoQuant> {
    let info = if output {
        spec.outputs.get(index)?
    } else {
        spec.inputs.get(index)?
    };
    if !matches!(info.dtype, DType::I8 | DType::U8) {
        return None;
    }
    let value = spec.steps.iter().find_map(|s| match s {
        StepSpec::Quantize { tensor, value } if !output && *tensor == info.name => Some(*value),
        StepSpec::Dequantize {
            value,
            tensor,
            int8: true,
        } if output && *tensor == info.name => Some(*value),
        _ => None,
    })?;
    let v = spec.values.get(value)?;
    Some(IoQuant {
        dtype: info.dtype,
        scale: v.q.scale,
        zero_point: Carrier::new(v.unsigned).tensor_zero_point(v.q.zero_point),
    })
}

/// The int8 form of input `name` if every reader is a partition entry with the same
/// qparams and signedness.
fn entry_quant(spec: &ProgramSpec, name: &str) -> Option<IoQuant> {
    let mut found: Option<IoQuant> = None;
    for s in &spec.steps {
        match s {
            StepSpec::Quantize { tensor, value } if tensor == name => {
                let v = spec.values.get(*value)?;
                let q = IoQuant {
                    dtype: if v.unsigned { DType::U8 } else { DType::I8 },
                    scale: v.q.scale,
                    zero_point: Carrier::new(v.unsigned).tensor_zero_point(v.q.zero_point),
                };
                if found.is_some_and(|f| f != q) {
                    return None;
                }
                found = Some(q);
            }
            StepSpec::DynamicLinear { input, .. } if input == name => return None,
            _ => {}
        }
    }
    let read_by_interpreter = spec
        .fallback
        .nodes
        .iter()
        .any(|n| n.inputs.iter().any(|i| i == name));
    if read_by_interpreter || spec.outputs.iter().any(|o| o.name == name) {
        return None;
    }
    found
}
