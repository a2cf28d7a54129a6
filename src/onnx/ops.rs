//! ONNX node → typed [`Op`]: attribute parsing and normalisation of older opsets (operands
//! that were attributes become constant inputs).

use super::proto::{attr_type, AttributeProto, NodeProto, TensorProto};
use crate::ir::op::*;
use crate::ir::{DType, Tensor};
use crate::{Error, Result};
use std::collections::HashMap;

mod transformer;
pub use transformer::is_microsoft;

/// Typed access to a node's attributes.
pub struct Attrs<'a> {
    node: &'a NodeProto,
    map: HashMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    /// Indexes the attributes of `node`.
    pub fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs {
            node,
            map: node.attribute.iter().map(|a| (a.name.as_str(), a)).collect(),
        }
    }

    fn err(&self, name: &str, msg: impl std::fmt::Display) -> Error {
        Error::InvalidModel(format!(
            "node `{}` ({}): attribute `{name}` {msg}",
            self.node.name, self.node.op_type
        ))
    }

    fn typed(&self, name: &str, ty: i32) -> Result<Option<&'a AttributeProto>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == ty || a.r#type == 0 => Ok(Some(a)),
            Some(a) => Err(self.err(name, format!("has type {} where {ty} was expected", a.r#type))),
        }
    }

    /// True if the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// An int attribute or its default.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self
            .typed(name, attr_type::INT)?
            .and_then(|a| a.i)
            .unwrap_or(default))
    }

    /// A non-negative int attribute as usize.
    pub fn usize(&self, name: &str, default: usize) -> Result<usize> {
        let v = self.int(name, default as i64)?;
        usize::try_from(v).map_err(|_| self.err(name, format!("is negative ({v})")))
    }

    /// A float attribute or its default.
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self
            .typed(name, attr_type::FLOAT)?
            .and_then(|a| a.f)
            .unwrap_or(default))
    }

    /// An ints attribute, if present.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.typed(name, attr_type::INTS)?.map(|a| a.ints.clone()))
    }

    /// A non-negative ints attribute as usizes (empty when absent).
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>> {
        self.ints(name)?
            .unwrap_or_default()
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| self.err(name, format!("has a negative entry {v}"))))
            .collect()
    }

    /// A floats attribute, if present.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self.typed(name, attr_type::FLOATS)?.map(|a| a.floats.clone()))
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        match self.typed(name, attr_type::STRING)?.and_then(|a| a.s.as_ref()) {
            Some(bytes) => String::from_utf8(bytes.clone())
                .map(Some)
                .map_err(|_| self.err(name, "is not UTF-8")),
            None => Ok(None),
        }
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self.typed(name, attr_type::TENSOR)?.and_then(|a| a.t.as_ref()))
    }

    /// Parses a string enum attribute with a default.
    fn choice<T: Copy>(&self, name: &str, default: T, table: &[(&str, T)]) -> Result<T> {
        match self.string(name)? {
            None => Ok(default),
            Some(s) => table
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&s))
                .map(|(_, v)| *v)
                .ok_or_else(|| self.err(name, format!("has unknown value `{s}`"))),
        }
    }
}

/// The result of converting one node: its op, its (possibly extended) inputs, and new
/// constants created from attributes of older opsets.
pub struct Converted {
    /// The typed operator.
    pub op: Op,
    /// Inputs after normalisation.
    pub inputs: Vec<String>,
    /// Constants to add as initializers (name, value).
    pub constants: Vec<(String, Tensor)>,
}

/// True if libxq imports this ONNX op type (default domain).
pub fn is_supported(op_type: &str) -> bool {
    SUPPORTED.contains(&op_type) || transformer::ONNX_SUPPORTED.contains(&op_type)
}

/// True if libxq imports this op type of `domain` (default, `ai.onnx` or `com.microsoft`).
pub fn is_supported_in(domain: &str, op_type: &str) -> bool {
    match domain {
        "" | "ai.onnx" => is_supported(op_type),
        d if is_microsoft(d) => transformer::MICROSOFT_SUPPORTED.contains(&op_type),
        _ => false,
    }
}

/// Every ONNX op type the importer accepts (Constant becomes an initializer).
pub const SUPPORTED: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Relu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "Sqrt",
    "Exp",
    "Erf",
    "Neg",
    "Abs",
    "Reciprocal",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "HardSigmoid",
    "Softmax",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Concat",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Pad",
    "DepthToSpace",
    "SpaceToDepth",
    "Gather",
    "Shape",
    "Cast",
    "Constant",
    "Identity",
    "Resize",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "LayerNormalization",
    "Gelu",
    "Log",
    "Max",
    "Min",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Where",
    "Expand",
    "Split",
    "ConstantOfShape",
    "Range",
    "Size",
    "Floor",
    "Ceil",
    "Round",
    "Not",
    "And",
    "Or",
    "Xor",
    "CastLike",
    "Sum",
    "Elu",
    "Celu",
    "Selu",
    "Softplus",
    "Softsign",
    "Mish",
    "Cos",
    "Sin",
    "IsNaN",
    "GatherElements",
    "GatherND",
    "ScatterND",
    "Trilu",
    "CumSum",
    "Einsum",
];

fn auto_pad(a: &Attrs) -> Result<AutoPad> {
    a.choice(
        "auto_pad",
        AutoPad::NotSet,
        &[
            ("NOTSET", AutoPad::NotSet),
            ("VALID", AutoPad::Valid),
            ("SAME_UPPER", AutoPad::SameUpper),
            ("SAME_LOWER", AutoPad::SameLower),
        ],
    )
}

fn conv_attrs(a: &Attrs) -> Result<ConvAttrs> {
    Ok(ConvAttrs {
        kernel_shape: a.usizes("kernel_shape")?,
        strides: a.usizes("strides")?,
        pads: a.usizes("pads")?,
        dilations: a.usizes("dilations")?,
        group: a.usize("group", 1)?,
        auto_pad: auto_pad(a)?,
    })
}

fn pool_attrs(a: &Attrs) -> Result<PoolAttrs> {
    if a.int("storage_order", 0)? != 0 {
        return Err(Error::Unsupported("MaxPool with storage_order=1".into()));
    }
    Ok(PoolAttrs {
        kernel_shape: a.usizes("kernel_shape")?,
        strides: a.usizes("strides")?,
        pads: a.usizes("pads")?,
        dilations: a.usizes("dilations")?,
        auto_pad: auto_pad(a)?,
        ceil_mode: a.int("ceil_mode", 0)? != 0,
        count_include_pad: a.int("count_include_pad", 0)? != 0,
    })
}

fn quant_attrs(a: &Attrs) -> Result<QuantAttrs> {
    let od = a.int("output_dtype", 0)?;
    Ok(QuantAttrs {
        axis: a.int("axis", 1)?,
        block_size: a.usize("block_size", 0)?,
        output_dtype: if od == 0 {
            None
        } else {
            Some(DType::from_onnx_code(od as i32)?)
        },
        saturate: a.int("saturate", 1)? != 0,
    })
}

fn resize_attrs(a: &Attrs) -> Result<ResizeAttrs> {
    use CoordinateTransform as C;
    Ok(ResizeAttrs {
        mode: a.choice(
            "mode",
            ResizeMode::Nearest,
            &[
                ("nearest", ResizeMode::Nearest),
                ("linear", ResizeMode::Linear),
                ("cubic", ResizeMode::Cubic),
            ],
        )?,
        coordinate_transform: a.choice(
            "coordinate_transformation_mode",
            C::HalfPixel,
            &[
                ("half_pixel", C::HalfPixel),
                ("pytorch_half_pixel", C::PytorchHalfPixel),
                ("align_corners", C::AlignCorners),
                ("asymmetric", C::Asymmetric),
                ("tf_crop_and_resize", C::TfCropAndResize),
                ("half_pixel_symmetric", C::HalfPixelSymmetric),
            ],
        )?,
        nearest_mode: a.choice(
            "nearest_mode",
            NearestMode::RoundPreferFloor,
            &[
                ("round_prefer_floor", NearestMode::RoundPreferFloor),
                ("round_prefer_ceil", NearestMode::RoundPreferCeil),
                ("floor", NearestMode::Floor),
                ("ceil", NearestMode::Ceil),
            ],
        )?,
        cubic_coeff_a: a.float("cubic_coeff_a", -0.75)?,
        exclude_outside: a.int("exclude_outside", 0)? != 0,
        extrapolation_value: a.float("extrapolation_value", 0.0)?,
        antialias: a.int("antialias", 0)? != 0,
        axes: a.ints("axes")?.unwrap_or_default(),
        keep_aspect_ratio_policy: a.choice(
            "keep_aspect_ratio_policy",
            AspectRatioPolicy::Stretch,
            &[
                ("stretch", AspectRatioPolicy::Stretch),
                ("not_larger", AspectRatioPolicy::NotLarger),
                ("not_smaller", AspectRatioPolicy::NotSmaller),
            ],
        )?,
    })
}

/// Converts a supported node (not Constant) of the default or `com.microsoft` domain at
/// `opset` (the default domain's).
pub fn convert(node: &NodeProto, opset: i64, fresh: &mut dyn FnMut(&str) -> String) -> Result<Converted> {
    let mut c = Conversion {
        node,
        opset,
        a: Attrs::new(node),
        inputs: node.input.clone(),
        constants: Vec::new(),
        fresh,
    };
    for newer in ["precision", "round_mode"] {
        if c.a.has(newer) {
            return Err(Error::Unsupported(format!(
                "{} with attribute `{newer}`",
                node.op_type
            )));
        }
    }
    let families: [Family; 9] = [
        transformer::transformer_op,
        indexing_op,
        elementwise_op,
        linear_op,
        activation_op,
        pool_reduce_op,
        shape_op,
        layout_op,
        quantize_op,
    ];
    let mut op = None;
    for family in families {
        op = family(&mut c)?;
        if op.is_some() {
            break;
        }
    }
    let op = op.ok_or_else(|| Error::Unsupported(format!("ONNX op {}", node.op_type)))?;
    let Conversion {
        mut inputs,
        constants,
        ..
    } = c;
    while inputs.last().is_some_and(|s| s.is_empty()) && inputs.len() > op.input_arity().0 {
        inputs.pop();
    }
    Ok(Converted {
        op,
        inputs,
        constants,
    })
}

/// Converts the node if its op type is of this family (`Ok(None)` otherwise).
type Family = fn(&mut Conversion) -> Result<Option<Op>>;

/// A node being converted: its attributes, its inputs so far and the constants that
/// attributes of older opsets become.
struct Conversion<'a, 'f> {
    node: &'a NodeProto,
    opset: i64,
    a: Attrs<'a>,
    inputs: Vec<String>,
    constants: Vec<(String, Tensor)>,
    fresh: &'f mut dyn FnMut(&str) -> String,
}

impl Conversion<'_, '_> {
    /// Puts `value` in input slot `slot` as a new constant named after the node and `name`.
    fn constant_input(&mut self, name: &str, slot: usize, value: Tensor) {
        let cname = (self.fresh)(&format!("{}_{name}", self.node.name));
        self.constants.push((cname.clone(), value));
        if self.inputs.len() <= slot {
            self.inputs.resize(slot + 1, String::new());
        }
        self.inputs[slot] = cname;
    }

    /// Moves an ints attribute of an older opset, when present, into input slot `slot` as an
    /// i64 constant.
    fn attr_to_input(&mut self, name: &str, slot: usize) -> Result<()> {
        if let Some(v) = self.a.ints(name)? {
            self.constant_input(name, slot, Tensor::vec_i64(v));
        }
        Ok(())
    }
}

/// Operators without attributes, mapped one to one (and two-input Sum, an Add).
fn elementwise_op(c: &mut Conversion) -> Result<Option<Op>> {
    Ok(Some(match c.node.op_type.as_str() {
        "Add" => Op::Binary(BinaryOp::Add),
        "Sub" => Op::Binary(BinaryOp::Sub),
        "Mul" => Op::Binary(BinaryOp::Mul),
        "Div" => Op::Binary(BinaryOp::Div),
        "Pow" => Op::Binary(BinaryOp::Pow),
        "Max" => Op::Binary(BinaryOp::Max),
        "Min" => Op::Binary(BinaryOp::Min),
        "PRelu" => Op::Binary(BinaryOp::PRelu),
        "Relu" => Op::Unary(UnaryOp::Relu),
        "Sigmoid" => Op::Unary(UnaryOp::Sigmoid),
        "Tanh" => Op::Unary(UnaryOp::Tanh),
        "HardSwish" => Op::Unary(UnaryOp::HardSwish),
        "Sqrt" => Op::Unary(UnaryOp::Sqrt),
        "Exp" => Op::Unary(UnaryOp::Exp),
        "Erf" => Op::Unary(UnaryOp::Erf),
        "Neg" => Op::Unary(UnaryOp::Neg),
        "Abs" => Op::Unary(UnaryOp::Abs),
        "Reciprocal" => Op::Unary(UnaryOp::Reciprocal),
        "Log" => Op::Unary(UnaryOp::Log),
        "Floor" => Op::Unary(UnaryOp::Floor),
        "Ceil" => Op::Unary(UnaryOp::Ceil),
        "Round" => Op::Unary(UnaryOp::Round),
        "Not" => Op::Unary(UnaryOp::Not),
        "Softplus" => Op::Unary(UnaryOp::Softplus),
        "Softsign" => Op::Unary(UnaryOp::Softsign),
        "Mish" => Op::Unary(UnaryOp::Mish),
        "Cos" => Op::Unary(UnaryOp::Cos),
        "Sin" => Op::Unary(UnaryOp::Sin),
        "IsNaN" => Op::IsNaN,
        "Equal" => Op::Compare(CompareOp::Equal),
        "Less" => Op::Compare(CompareOp::Less),
        "Greater" => Op::Compare(CompareOp::Greater),
        "LessOrEqual" => Op::Compare(CompareOp::LessOrEqual),
        "GreaterOrEqual" => Op::Compare(CompareOp::GreaterOrEqual),
        "And" => Op::Logical(LogicalOp::And),
        "Or" => Op::Logical(LogicalOp::Or),
        "Xor" => Op::Logical(LogicalOp::Xor),
        "Where" => Op::Where,
        "Expand" => Op::Expand,
        "CastLike" => Op::CastLike,
        "Identity" => Op::Identity,
        "Sum" if c.node.input.len() == 2 => Op::Binary(BinaryOp::Add),
        "Sum" => {
            return Err(Error::Unsupported(format!(
                "Sum with {} inputs here (the importer chains it into Adds; build Add nodes instead)",
                c.node.input.len()
            )))
        }
        _ => return Ok(None),
    }))
}

/// Convolutions, Gemm and matrix products.
fn linear_op(c: &mut Conversion) -> Result<Option<Op>> {
    let a = &c.a;
    Ok(Some(match c.node.op_type.as_str() {
        "Conv" => Op::Conv(conv_attrs(a)?),
        "ConvInteger" => Op::ConvInteger(conv_attrs(a)?),
        "QLinearConv" => Op::QLinearConv(conv_attrs(a)?),
        "ConvTranspose" => Op::ConvTranspose(ConvTransposeAttrs {
            conv: conv_attrs(a)?,
            output_padding: a.usizes("output_padding")?,
            output_shape: a.usizes("output_shape")?,
        }),
        "Gemm" => Op::Gemm(GemmAttrs {
            alpha: a.float("alpha", 1.0)?,
            beta: a.float("beta", 1.0)?,
            trans_a: a.int("transA", 0)? != 0,
            trans_b: a.int("transB", 0)? != 0,
        }),
        "MatMul" => Op::MatMul,
        "MatMulInteger" => Op::MatMulInteger,
        "QLinearMatMul" => Op::QLinearMatMul,
        _ => return Ok(None),
    }))
}

/// Activations with attributes and normalizations (Clip's bounds become inputs before
/// opset 11).
fn activation_op(c: &mut Conversion) -> Result<Option<Op>> {
    let node = c.node;
    Ok(Some(match node.op_type.as_str() {
        "Clip" => {
            if c.opset < 11 {
                for (slot, key, default) in [(1, "min", f32::MIN), (2, "max", f32::MAX)] {
                    let v = c.a.float(key, default)?;
                    c.constant_input(key, slot, Tensor::scalar_f32(v));
                }
            }
            Op::Clip
        }
        "LeakyRelu" => Op::LeakyRelu {
            alpha: c.a.float("alpha", 0.01)?,
        },
        "HardSigmoid" => Op::HardSigmoid {
            alpha: c.a.float("alpha", 0.2)?,
            beta: c.a.float("beta", 0.5)?,
        },
        "Elu" => Op::Elu {
            alpha: c.a.float("alpha", 1.0)?,
        },
        "Celu" => Op::Celu {
            alpha: c.a.float("alpha", 1.0)?,
        },
        "Selu" => Op::Selu {
            alpha: c.a.float("alpha", 1.673_263_2)?,
            gamma: c.a.float("gamma", 1.050_701)?,
        },
        "Softmax" => {
            let legacy = c.opset < 13;
            Op::Softmax {
                axis: c.a.int("axis", if legacy { 1 } else { -1 })?,
                coerce_2d: legacy,
            }
        }
        "BatchNormalization" => {
            if c.a.int("spatial", 1)? == 0 {
                return Err(Error::Unsupported(format!(
                    "BatchNormalization `{}` with spatial=0",
                    node.name
                )));
            }
            if c.a.int("training_mode", 0)? != 0 || node.output.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(Error::Unsupported(format!(
                    "BatchNormalization `{}` in training mode",
                    node.name
                )));
            }
            Op::BatchNormalization {
                epsilon: c.a.float("epsilon", 1e-5)?,
            }
        }
        "LayerNormalization" => Op::LayerNormalization {
            axis: c.a.int("axis", -1)?,
            epsilon: c.a.float("epsilon", 1e-5)?,
        },
        "Gelu" => Op::Gelu {
            tanh_approximation: c
                .a
                .choice("approximate", false, &[("none", false), ("tanh", true)])?,
        },
        _ => return Ok(None),
    }))
}

/// Pooling and reductions (the axes attribute becomes an input before opset 18, 13 for
/// ReduceSum).
fn pool_reduce_op(c: &mut Conversion) -> Result<Option<Op>> {
    let node = c.node;
    let (kind, axes_became_input) = match node.op_type.as_str() {
        "MaxPool" => {
            if node.output.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(Error::Unsupported(format!(
                    "MaxPool `{}` with an Indices output",
                    node.name
                )));
            }
            return Ok(Some(Op::MaxPool(pool_attrs(&c.a)?)));
        }
        "AveragePool" => return Ok(Some(Op::AveragePool(pool_attrs(&c.a)?))),
        "GlobalAveragePool" => return Ok(Some(Op::GlobalAveragePool)),
        "ReduceMean" => (ReduceKind::Mean, 18),
        "ReduceSum" => (ReduceKind::Sum, 13),
        "ReduceMax" => (ReduceKind::Max, 18),
        "ReduceMin" => (ReduceKind::Min, 18),
        _ => return Ok(None),
    };
    if c.opset < axes_became_input {
        c.attr_to_input("axes", 1)?;
    }
    Ok(Some(Op::Reduce {
        kind,
        keepdims: c.a.int("keepdims", 1)? != 0,
        noop_with_empty_axes: c.a.int("noop_with_empty_axes", 0)? != 0,
    }))
}

/// Operators that read shapes or build tensors from scalars, and Cast.
fn shape_op(c: &mut Conversion) -> Result<Option<Op>> {
    let a = &c.a;
    Ok(Some(match c.node.op_type.as_str() {
        "Shape" => Op::Shape {
            start: a.int("start", 0)?,
            end: if a.has("end") {
                Some(a.int("end", 0)?)
            } else {
                None
            },
        },
        "Size" => Op::Size,
        "Range" => Op::Range,
        "ConstantOfShape" => Op::ConstantOfShape {
            value: match a.tensor("value")? {
                Some(t) => {
                    let v = super::tensor::tensor_from_proto(t, None)?;
                    if v.numel() != 1 {
                        return Err(a.err("value", "must hold exactly one element"));
                    }
                    v.reshaped(vec![])?
                }
                None => Tensor::scalar_f32(0.0),
            },
        },
        "Cast" => Op::Cast {
            to: DType::from_onnx_code(a.int("to", 0)? as i32)?,
        },
        _ => return Ok(None),
    }))
}

/// Data movement: Split, Concat, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice, Pad,
/// DepthToSpace, SpaceToDepth, Gather and Resize, with the operands older opsets gave as
/// attributes moved to inputs.
fn layout_op(c: &mut Conversion) -> Result<Option<Op>> {
    let (node, opset) = (c.node, c.opset);
    Ok(Some(match node.op_type.as_str() {
        "Split" => {
            if opset < 13 {
                c.attr_to_input("split", 1)?;
            }
            Op::Split {
                axis: c.a.int("axis", 0)?,
                num_outputs: node.output.len(),
            }
        }
        "Concat" => {
            if !c.a.has("axis") {
                return Err(c.a.err("axis", "is required"));
            }
            Op::Concat {
                axis: c.a.int("axis", 0)?,
            }
        }
        "Reshape" => Op::Reshape {
            allowzero: c.a.int("allowzero", 0)? != 0,
        },
        "Flatten" => Op::Flatten {
            axis: c.a.int("axis", 1)?,
        },
        "Transpose" => Op::Transpose {
            perm: match c.a.ints("perm")? {
                Some(p) => Some(
                    p.into_iter()
                        .map(|v| usize::try_from(v).map_err(|_| c.a.err("perm", "has a negative entry")))
                        .collect::<Result<_>>()?,
                ),
                None => None,
            },
        },
        "Squeeze" | "Unsqueeze" => {
            if opset < 13 {
                c.attr_to_input("axes", 1)?;
            }
            if node.op_type == "Squeeze" {
                Op::Squeeze
            } else {
                Op::Unsqueeze
            }
        }
        "Slice" if opset < 10 => {
            return Err(Error::Unsupported(
                "Slice before opset 10 (starts/ends as attributes)".into(),
            ))
        }
        "Slice" => Op::Slice,
        "Pad" if opset < 11 => {
            return Err(Error::Unsupported(
                "Pad before opset 11 (pads as an attribute)".into(),
            ))
        }
        "Pad" => Op::Pad {
            mode: c.a.choice(
                "mode",
                PadMode::Constant,
                &[
                    ("constant", PadMode::Constant),
                    ("reflect", PadMode::Reflect),
                    ("edge", PadMode::Edge),
                    ("wrap", PadMode::Wrap),
                ],
            )?,
        },
        "DepthToSpace" => Op::DepthToSpace {
            blocksize: blocksize(&c.a)?,
            mode: depth_space_mode(&c.a)?,
        },
        "SpaceToDepth" => Op::SpaceToDepth {
            blocksize: blocksize(&c.a)?,
            mode: depth_space_mode(&c.a)?,
        },
        "Gather" => Op::Gather {
            axis: c.a.int("axis", 0)?,
        },
        "Resize" if opset < 11 => {
            // Resize-10: inputs (X, scales), asymmetric coordinates.
            if c.inputs.len() != 2 {
                return Err(Error::InvalidModel(format!(
                    "Resize `{}` (opset {opset}) has {} input(s) where 2 (X, scales) are required",
                    node.name,
                    c.inputs.len()
                )));
            }
            c.inputs = vec![c.inputs[0].clone(), String::new(), c.inputs[1].clone()];
            Op::Resize(ResizeAttrs {
                coordinate_transform: CoordinateTransform::Asymmetric,
                ..resize_attrs(&c.a)?
            })
        }
        "Resize" => Op::Resize(resize_attrs(&c.a)?),
        _ => return Ok(None),
    }))
}

/// GatherElements, GatherND, ScatterND, Trilu, CumSum and Einsum.
fn indexing_op(c: &mut Conversion) -> Result<Option<Op>> {
    let a = &c.a;
    Ok(Some(match c.node.op_type.as_str() {
        "ScatterND" => Op::ScatterND {
            reduction: a.choice(
                "reduction",
                ScatterReduction::None,
                &[
                    ("none", ScatterReduction::None),
                    ("add", ScatterReduction::Add),
                    ("mul", ScatterReduction::Mul),
                    ("max", ScatterReduction::Max),
                    ("min", ScatterReduction::Min),
                ],
            )?,
        },
        "Trilu" => Op::Trilu {
            upper: a.int("upper", 1)? != 0,
        },
        "CumSum" => Op::CumSum {
            exclusive: a.int("exclusive", 0)? != 0,
            reverse: a.int("reverse", 0)? != 0,
        },
        "Einsum" => Op::Einsum {
            equation: a
                .string("equation")?
                .ok_or_else(|| a.err("equation", "is required"))?,
        },
        "GatherElements" => Op::GatherElements {
            axis: c.a.int("axis", 0)?,
        },
        "GatherND" => Op::GatherND {
            batch_dims: c.a.usize("batch_dims", 0)?,
        },
        _ => return Ok(None),
    }))
}

/// DepthToSpace's and SpaceToDepth's required `blocksize`, at least 1.
fn blocksize(a: &Attrs) -> Result<usize> {
    if !a.has("blocksize") {
        return Err(a.err("blocksize", "is required"));
    }
    match a.int("blocksize", 0)? {
        b if b >= 1 => usize::try_from(b).map_err(|_| a.err("blocksize", format!("is too large ({b})"))),
        b => Err(a.err("blocksize", format!("must be at least 1 (is {b})"))),
    }
}

/// DepthToSpace's and SpaceToDepth's `mode`, DCR when absent.
fn depth_space_mode(a: &Attrs) -> Result<DepthSpaceMode> {
    a.choice(
        "mode",
        DepthSpaceMode::Dcr,
        &[("DCR", DepthSpaceMode::Dcr), ("CRD", DepthSpaceMode::Crd)],
    )
}

/// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear.
fn quantize_op(c: &mut Conversion) -> Result<Option<Op>> {
    Ok(Some(match c.node.op_type.as_str() {
        "QuantizeLinear" => Op::QuantizeLinear(quant_attrs(&c.a)?),
        "DequantizeLinear" => Op::DequantizeLinear(quant_attrs(&c.a)?),
        "DynamicQuantizeLinear" => Op::DynamicQuantizeLinear,
        _ => return Ok(None),
    }))
}

/// The value of a Constant node.
pub fn constant_value(node: &NodeProto, base_dir: Option<&std::path::Path>) -> Result<Tensor> {
    let a = Attrs::new(node);
    if let Some(t) = a.tensor("value")? {
        return super::tensor::tensor_from_proto(t, base_dir);
    }
    if a.has("value_float") {
        return Ok(Tensor::scalar_f32(a.float("value_float", 0.0)?));
    }
    if let Some(v) = a.floats("value_floats")? {
        return Tensor::from_f32(vec![v.len()], v);
    }
    if a.has("value_int") {
        return Tensor::from_i64(vec![], vec![a.int("value_int", 0)?]);
    }
    if let Some(v) = a.ints("value_ints")? {
        return Ok(Tensor::vec_i64(v));
    }
    Err(Error::Unsupported(format!(
        "Constant `{}` without a value, value_float(s) or value_int(s) attribute",
        node.name
    )))
}
