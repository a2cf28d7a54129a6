//! IR graph → ONNX model (opset 21), so that any graph, including a QDQ graph made by the
//! quantizer, can be saved and run by ONNX Runtime.

use super::proto::*;
use super::tensor::tensor_to_proto;
use crate::ir::op::*;
use crate::ir::{DType, Dim, Graph, Node, TensorInfo};
use crate::{Error, Result};
use prost::Message;
use std::path::Path;

/// The default-domain opset exported models declare.
pub const EXPORT_OPSET: i64 = 21;

/// Serialises a graph as ONNX protobuf bytes.
pub fn to_bytes(graph: &Graph) -> Result<Vec<u8>> {
    let model = to_model(graph)?;
    let len = model.encoded_len();
    if len > super::MAX_MODEL_BYTES {
        return Err(Error::ResourceLimit(format!(
            "the model would be {len} bytes, over the 2 GiB protobuf limit"
        )));
    }
    Ok(model.encode_to_vec())
}

/// Writes a graph to an ONNX file.
pub fn save_file(graph: &Graph, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(graph)?).map_err(|e| Error::io(path.display(), e))
}

fn to_model(graph: &Graph) -> Result<ModelProto> {
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        export_node(graph, node, &mut nodes)?;
    }
    let initializer = graph
        .initializers
        .iter()
        .map(|(n, t)| tensor_to_proto(n, t))
        .collect();
    let mut value_info: Vec<ValueInfoProto> = graph
        .value_info
        .values()
        .filter(|v| !graph.is_output(&v.name))
        .map(info_to_proto)
        .collect();
    value_info.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ModelProto {
        ir_version: 10,
        opset_import: opset_imports(graph),
        producer_name: "libxq".into(),
        producer_version: crate::VERSION.into(),
        graph: Some(GraphProto {
            node: nodes,
            name: if graph.name.is_empty() {
                "xq".into()
            } else {
                graph.name.clone()
            },
            initializer,
            input: graph.inputs.iter().map(info_to_proto).collect(),
            output: graph.outputs.iter().map(info_to_proto).collect(),
            value_info,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The default-domain opset the graph needs, and `com.microsoft` version 1 when it has an
/// ONNX Runtime contrib operator.
fn opset_imports(graph: &Graph) -> Vec<OperatorSetIdProto> {
    let mut v = vec![OperatorSetIdProto {
        domain: String::new(),
        version: required_opset(graph),
    }];
    if graph.nodes.iter().any(|n| n.op.domain() == OpDomain::Microsoft) {
        v.push(OperatorSetIdProto {
            domain: OpDomain::Microsoft.onnx_domain().into(),
            version: 1,
        });
    }
    v
}

/// The opset a graph needs: [`EXPORT_OPSET`], 23 when it has RMSNormalization or an ONNX
/// RotaryEmbedding or Attention, 25 when it uses 2-bit integers (which
/// QuantizeLinear/DequantizeLinear/Cast accept from opset 25 on), 28 when it has a CRD
/// SpaceToDepth (its `mode` attribute is new in opset 28).
fn required_opset(graph: &Graph) -> i64 {
    let crd_space_to_depth = graph.nodes.iter().any(|n| {
        matches!(
            n.op,
            Op::SpaceToDepth {
                mode: DepthSpaceMode::Crd,
                ..
            }
        )
    });
    if crd_space_to_depth {
        return 28;
    }
    let two_bit = |d: DType| matches!(d, DType::I2 | DType::U2);
    let in_values = graph.initializers.values().any(|t| two_bit(t.dtype()))
        || graph
            .inputs
            .iter()
            .chain(&graph.outputs)
            .chain(graph.value_info.values())
            .any(|i| two_bit(i.dtype));
    let in_ops = graph.nodes.iter().any(|n| match &n.op {
        Op::Cast { to } => two_bit(*to),
        Op::QuantizeLinear(q) => q.output_dtype.is_some_and(two_bit),
        _ => false,
    });
    let opset_23 = graph.nodes.iter().any(|n| {
        matches!(
            n.op,
            Op::RmsNormalization {
                simplified: false,
                ..
            } | Op::Attention(_)
        ) || matches!(&n.op, Op::RotaryEmbedding(r) if r.domain == OpDomain::Onnx)
    });
    if in_values || in_ops {
        25
    } else if opset_23 {
        23
    } else {
        EXPORT_OPSET
    }
}

fn info_to_proto(info: &TensorInfo) -> ValueInfoProto {
    let shape = info.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Dimension {
                    dim_value: Some(*n as i64),
                    dim_param: None,
                },
                Dim::Symbolic(s) => Dimension {
                    dim_value: None,
                    dim_param: Some(s.clone()),
                },
            })
            .collect(),
    });
    ValueInfoProto {
        name: info.name.clone(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: info.dtype.onnx_code(),
                shape,
            }),
        }),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INT,
        i: Some(v),
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::FLOAT,
        f: Some(v),
        ..Default::default()
    }
}

fn ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INTS,
        ints: v.into_iter().collect(),
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::STRING,
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn usizes(name: &str, v: &[usize]) -> Option<AttributeProto> {
    (!v.is_empty()).then(|| ints(name, v.iter().map(|&x| x as i64)))
}

fn auto_pad_attr(p: AutoPad) -> Option<AttributeProto> {
    let s = match p {
        AutoPad::NotSet => return None,
        AutoPad::Valid => "VALID",
        AutoPad::SameUpper => "SAME_UPPER",
        AutoPad::SameLower => "SAME_LOWER",
    };
    Some(string("auto_pad", s))
}

fn conv_attrs(c: &ConvAttrs) -> Vec<AttributeProto> {
    [
        usizes("kernel_shape", &c.kernel_shape),
        usizes("strides", &c.strides),
        usizes("pads", &c.pads),
        usizes("dilations", &c.dilations),
        Some(int("group", c.group as i64)),
        auto_pad_attr(c.auto_pad),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn pool_attrs(p: &PoolAttrs, average: bool) -> Vec<AttributeProto> {
    let mut v: Vec<AttributeProto> = [
        usizes("kernel_shape", &p.kernel_shape),
        usizes("strides", &p.strides),
        usizes("pads", &p.pads),
        usizes("dilations", &p.dilations),
        auto_pad_attr(p.auto_pad),
        Some(int("ceil_mode", p.ceil_mode as i64)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if average {
        v.push(int("count_include_pad", p.count_include_pad as i64));
    }
    v
}

fn quant_attrs(q: &QuantAttrs, quantize: bool) -> Vec<AttributeProto> {
    let mut v = vec![int("axis", q.axis)];
    if q.block_size > 0 {
        v.push(int("block_size", q.block_size as i64));
    }
    if quantize {
        if let Some(d) = q.output_dtype {
            v.push(int("output_dtype", d.onnx_code() as i64));
        }
    }
    v
}

fn resize_attrs(r: &ResizeAttrs) -> Vec<AttributeProto> {
    let mode = match r.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    };
    let ct = match r.coordinate_transform {
        CoordinateTransform::HalfPixel => "half_pixel",
        CoordinateTransform::PytorchHalfPixel => "pytorch_half_pixel",
        CoordinateTransform::AlignCorners => "align_corners",
        CoordinateTransform::Asymmetric => "asymmetric",
        CoordinateTransform::TfCropAndResize => "tf_crop_and_resize",
        CoordinateTransform::HalfPixelSymmetric => "half_pixel_symmetric",
    };
    let nm = match r.nearest_mode {
        NearestMode::RoundPreferFloor => "round_prefer_floor",
        NearestMode::RoundPreferCeil => "round_prefer_ceil",
        NearestMode::Floor => "floor",
        NearestMode::Ceil => "ceil",
    };
    let policy = match r.keep_aspect_ratio_policy {
        AspectRatioPolicy::Stretch => "stretch",
        AspectRatioPolicy::NotLarger => "not_larger",
        AspectRatioPolicy::NotSmaller => "not_smaller",
    };
    let mut v = vec![
        string("mode", mode),
        string("coordinate_transformation_mode", ct),
        string("nearest_mode", nm),
        float("cubic_coeff_a", r.cubic_coeff_a),
        int("exclude_outside", r.exclude_outside as i64),
        float("extrapolation_value", r.extrapolation_value),
        string("keep_aspect_ratio_policy", policy),
    ];
    if r.antialias {
        v.push(int("antialias", 1));
    }
    if !r.axes.is_empty() {
        v.push(ints("axes", r.axes.iter().copied()));
    }
    v
}

fn proto_node(
    node: &Node,
    op_type: &str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs,
        output: outputs,
        name: node.name.clone(),
        op_type: op_type.into(),
        attribute,
        ..Default::default()
    }
}

/// A fused transformer operator, in its own domain and (for `com.microsoft` operators) its
/// own input order.
fn export_transformer_node(node: &Node, out: &mut Vec<NodeProto>) -> Result<()> {
    let mut inputs = node.inputs.clone();
    let attrs = match &node.op {
        Op::RmsNormalization { axis, epsilon, .. } => vec![int("axis", *axis), float("epsilon", *epsilon)],
        Op::SkipNormalization { epsilon, simplified } => {
            if *simplified && inputs.len() > 3 {
                // input, skip, gamma, (no beta), bias → input, skip, gamma, bias.
                let bias = inputs.get(4).cloned().unwrap_or_default();
                inputs.truncate(3);
                inputs.push(bias);
            }
            vec![float("epsilon", *epsilon)]
        }
        Op::BiasGelu { .. } => vec![],
        Op::RotaryEmbedding(r) => {
            let mut v = vec![int("interleaved", r.interleaved as i64)];
            if r.num_heads > 0 {
                v.push(int("num_heads", r.num_heads as i64));
            }
            v.push(int("rotary_embedding_dim", r.rotary_embedding_dim as i64));
            if r.domain == OpDomain::Microsoft {
                // input, cos, sin, position_ids → input, position_ids, cos, sin.
                let pos = inputs.get(3).cloned().unwrap_or_default();
                inputs.truncate(3);
                inputs.insert(1, pos);
            }
            v
        }
        Op::Attention(a) => {
            let mut v = vec![
                int("is_causal", a.is_causal as i64),
                float("softcap", a.softcap),
                int("qk_matmul_output_mode", a.qk_matmul_output_mode as i64),
            ];
            if a.q_num_heads > 0 {
                v.push(int("q_num_heads", a.q_num_heads as i64));
            }
            if a.kv_num_heads > 0 {
                v.push(int("kv_num_heads", a.kv_num_heads as i64));
            }
            v.extend(a.scale.map(|s| float("scale", s)));
            v
        }
        Op::EmbedLayerNormalization { epsilon } => vec![float("epsilon", *epsilon)],
        Op::PackedAttention {
            mha: m,
            qkv_hidden_sizes,
        } => {
            let mut v = vec![
                int("num_heads", m.num_heads as i64),
                float("mask_filter_value", m.mask_filter_value),
                int("unidirectional", m.unidirectional as i64),
            ];
            v.extend(m.scale.map(|s| float("scale", s)));
            v.extend(usizes("qkv_hidden_sizes", qkv_hidden_sizes));
            v
        }
        Op::MultiHeadAttention(m) => {
            let mut v = vec![
                int("num_heads", m.num_heads as i64),
                float("mask_filter_value", m.mask_filter_value),
                int("unidirectional", m.unidirectional as i64),
            ];
            v.extend(m.scale.map(|s| float("scale", s)));
            v
        }
        other => {
            return Err(Error::Unsupported(format!(
                "{} is not a transformer operator",
                other.onnx_name()
            )))
        }
    };
    let mut proto = proto_node(node, node.op.onnx_name(), inputs, node.outputs.clone(), attrs);
    proto.domain = node.op.domain().onnx_domain().into();
    out.push(proto);
    Ok(())
}

fn export_node(graph: &Graph, node: &Node, out: &mut Vec<NodeProto>) -> Result<()> {
    let attrs: Vec<AttributeProto> = match &node.op {
        Op::Conv(c) | Op::QLinearConv(c) | Op::ConvInteger(c) => conv_attrs(c),
        Op::ConvTranspose(t) => {
            let mut v = conv_attrs(&t.conv);
            v.extend(usizes("output_padding", &t.output_padding));
            v.extend(usizes("output_shape", &t.output_shape));
            v
        }
        Op::Gemm(g) => vec![
            float("alpha", g.alpha),
            float("beta", g.beta),
            int("transA", g.trans_a as i64),
            int("transB", g.trans_b as i64),
        ],
        Op::LeakyRelu { alpha } => vec![float("alpha", *alpha)],
        Op::HardSigmoid { alpha, beta } => vec![float("alpha", *alpha), float("beta", *beta)],
        Op::Elu { alpha } | Op::Celu { alpha } => vec![float("alpha", *alpha)],
        Op::Selu { alpha, gamma } => vec![float("alpha", *alpha), float("gamma", *gamma)],
        Op::Softmax {
            axis,
            coerce_2d: true,
        } => return export_legacy_softmax(graph, node, *axis, out),
        Op::Softmax {
            axis,
            coerce_2d: false,
        } => vec![int("axis", *axis)],
        Op::BatchNormalization { epsilon } => vec![float("epsilon", *epsilon)],
        Op::MaxPool(p) => pool_attrs(p, false),
        Op::AveragePool(p) => pool_attrs(p, true),
        Op::Reduce {
            keepdims,
            noop_with_empty_axes,
            ..
        } => {
            vec![
                int("keepdims", *keepdims as i64),
                int("noop_with_empty_axes", *noop_with_empty_axes as i64),
            ]
        }
        Op::LayerNormalization { axis, epsilon } => vec![int("axis", *axis), float("epsilon", *epsilon)],
        Op::RmsNormalization { .. }
        | Op::SkipNormalization { .. }
        | Op::BiasGelu { .. }
        | Op::RotaryEmbedding(_)
        | Op::Attention(_)
        | Op::MultiHeadAttention(_)
        | Op::PackedAttention { .. }
        | Op::EmbedLayerNormalization { .. } => return export_transformer_node(node, out),
        Op::Gelu { tanh_approximation } => {
            vec![string(
                "approximate",
                if *tanh_approximation { "tanh" } else { "none" },
            )]
        }
        Op::Split { axis, num_outputs } => {
            let mut v = vec![int("axis", *axis)];
            if node.input(1).is_none() {
                v.push(int("num_outputs", *num_outputs as i64));
            }
            v
        }
        Op::ConstantOfShape { value } => vec![AttributeProto {
            name: "value".into(),
            r#type: attr_type::TENSOR,
            t: Some(tensor_to_proto("value", &value.clone().reshaped(vec![1])?)),
            ..Default::default()
        }],
        Op::Concat { axis } | Op::Flatten { axis } | Op::Gather { axis } | Op::GatherElements { axis } => {
            vec![int("axis", *axis)]
        }
        Op::GatherND { batch_dims } => vec![int("batch_dims", *batch_dims as i64)],
        Op::ScatterND { reduction } => vec![string(
            "reduction",
            match reduction {
                ScatterReduction::None => "none",
                ScatterReduction::Add => "add",
                ScatterReduction::Mul => "mul",
                ScatterReduction::Max => "max",
                ScatterReduction::Min => "min",
            },
        )],
        Op::Trilu { upper } => vec![int("upper", *upper as i64)],
        Op::CumSum { exclusive, reverse } => vec![
            int("exclusive", *exclusive as i64),
            int("reverse", *reverse as i64),
        ],
        Op::Einsum { equation } => vec![string("equation", equation)],
        Op::Reshape { allowzero } => vec![int("allowzero", *allowzero as i64)],
        Op::Transpose { perm } => perm
            .iter()
            .map(|p| ints("perm", p.iter().map(|&x| x as i64)))
            .collect(),
        Op::Pad { mode } => {
            let m = match mode {
                PadMode::Constant => "constant",
                PadMode::Reflect => "reflect",
                PadMode::Edge => "edge",
                PadMode::Wrap => "wrap",
            };
            vec![string("mode", m)]
        }
        // SpaceToDepth's mode exists from opset 28 on: written only when it is CRD.
        Op::DepthToSpace { blocksize, mode } | Op::SpaceToDepth { blocksize, mode } => {
            let mut v = vec![int("blocksize", *blocksize as i64)];
            match (mode, &node.op) {
                (DepthSpaceMode::Crd, _) => v.push(string("mode", "CRD")),
                (DepthSpaceMode::Dcr, Op::DepthToSpace { .. }) => v.push(string("mode", "DCR")),
                (DepthSpaceMode::Dcr, _) => {}
            }
            v
        }
        Op::Shape { start, end } => {
            let mut v = vec![int("start", *start)];
            v.extend(end.map(|e| int("end", e)));
            v
        }
        Op::Cast { to } => vec![int("to", to.onnx_code() as i64)],
        Op::Resize(r) => resize_attrs(r),
        Op::QuantizeLinear(q) => quant_attrs(q, true),
        Op::DequantizeLinear(q) => quant_attrs(q, false),
        Op::MatMul
        | Op::Unary(_)
        | Op::Binary(_)
        | Op::Clip
        | Op::GlobalAveragePool
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Slice
        | Op::Identity
        | Op::DynamicQuantizeLinear
        | Op::QLinearMatMul
        | Op::MatMulInteger
        | Op::Compare(_)
        | Op::Where
        | Op::Expand
        | Op::Range
        | Op::Size
        | Op::Logical(_)
        | Op::CastLike
        | Op::IsNaN => vec![],
    };
    out.push(proto_node(
        node,
        node.op.onnx_name(),
        node.inputs.clone(),
        node.outputs.clone(),
        attrs,
    ));
    Ok(())
}

/// Opset < 13 Softmax (normalise rows of the input flattened to 2-D at `axis`) written as
/// Shape → Flatten → Softmax(axis=-1) → Reshape.
fn export_legacy_softmax(graph: &Graph, node: &Node, axis: i64, out: &mut Vec<NodeProto>) -> Result<()> {
    let base = &node.outputs[0];
    let names: Vec<String> = ["shape", "flat", "soft"]
        .iter()
        .map(|s| graph.fresh_name(&format!("{base}_{s}")))
        .collect();
    let x = node.inputs[0].clone();
    let sub = |suffix: &str| Node {
        name: format!("{}_{suffix}", node.name),
        ..node.clone()
    };
    out.push(proto_node(
        &sub("shape"),
        "Shape",
        vec![x.clone()],
        vec![names[0].clone()],
        vec![],
    ));
    out.push(proto_node(
        &sub("flatten"),
        "Flatten",
        vec![x],
        vec![names[1].clone()],
        vec![int("axis", axis)],
    ));
    out.push(proto_node(
        &sub("softmax"),
        "Softmax",
        vec![names[1].clone()],
        vec![names[2].clone()],
        vec![int("axis", -1)],
    ));
    out.push(proto_node(
        node,
        "Reshape",
        vec![names[2].clone(), names[0].clone()],
        node.outputs.clone(),
        vec![],
    ));
    Ok(())
}
