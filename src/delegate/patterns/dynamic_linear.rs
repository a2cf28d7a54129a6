//! Dynamic quantization (see [`DynamicCandidate`]): a DynamicQuantizeLinear feeding a linear
//! node with a constant int8 weight, lowered to the per-row dynamic int8 GEMM.

use super::weights::transpose;
use super::{refuse, DynamicCandidate, Matcher, Reason, Refusal};
use crate::ir::op::{BinaryOp, UnaryOp};
use crate::ir::{DType, Dim, Op};
use crate::qscheme::{validate_scale, ChannelScales, QWeights};

impl Matcher<'_> {
    /// Matches a dynamic-quantization pattern (either form, see [`DynamicCandidate`])
    /// starting at the DynamicQuantizeLinear at `index`.
    pub fn match_dynamic(&self, index: usize) -> Result<DynamicCandidate, Refusal> {
        let d = &self.graph.nodes[index];
        let reader = d.outputs.first().and_then(|q| self.only_reader(q));
        match reader.map(|r| &self.graph.nodes[r].op) {
            Some(Op::DequantizeLinear(_)) => self.match_dynamic_qdq(index),
            _ => self.match_dynamic_integer(index),
        }
    }

    /// The quantized input, scale and zero point made by DynamicQuantizeLinear `index`.
    fn dynamic_outputs(&self, index: usize) -> Result<(&str, &str, &str), Refusal> {
        match self.graph.nodes[index].outputs.as_slice() {
            [a, b, c] => Ok((a.as_str(), b.as_str(), c.as_str())),
            _ => Err(not_dynamic("DynamicQuantizeLinear outputs")),
        }
    }

    /// libxq's form: `DynamicQuantizeLinear → DequantizeLinear → MatMul / Gemm` with an int8
    /// constant weight behind a DequantizeLinear.
    fn match_dynamic_qdq(&self, index: usize) -> Result<DynamicCandidate, Refusal> {
        let not = not_dynamic;
        let (xq, xs, xz) = self.dynamic_outputs(index)?;
        let dq_i = self
            .only_reader(xq)
            .ok_or_else(|| not("quantized input has other readers"))?;
        let dq = &self.graph.nodes[dq_i];
        let reads_all = dq.input(0) == Some(xq) && dq.input(1) == Some(xs) && dq.input(2) == Some(xz);
        if !reads_all || self.only_reader(xs) != Some(dq_i) || self.only_reader(xz) != Some(dq_i) {
            return Err(not(
                "scale and zero point are not read by the DequantizeLinear alone",
            ));
        }
        let x_dq = dq.outputs[0].as_str();
        let op_i = self
            .only_reader(x_dq)
            .ok_or_else(|| not("dequantized input has other readers"))?;
        let op = &self.graph.nodes[op_i];
        if op.input(0) != Some(x_dq) {
            return Err(not("the dequantized input is not the linear input"));
        }
        let (trans_b, gemm_bias) = match &op.op {
            Op::Gemm(g) if g.alpha == 1.0 && g.beta == 1.0 && !g.trans_a => (g.trans_b, true),
            Op::Gemm(_) => return Err(not("Gemm with alpha/beta != 1 or transA")),
            Op::MatMul => (false, false),
            _ => return Err(not("not read by MatMul or Gemm")),
        };
        let (QWeights { values: w, scales }, wd) =
            self.q_weight(&op.inputs[1], if trans_b { 0 } else { 1 })?;
        let [d0, d1] = *wd.as_slice() else {
            return Err(not("weight is not 2-D"));
        };
        let (n, k) = if trans_b { (d0, d1) } else { (d1, d0) };
        let weights = if trans_b { w } else { transpose(&w, k, n) };
        let mut nodes = vec![index, dq_i, op_i];
        let (output, bias) = if gemm_bias {
            let bias = match op.input(2) {
                None => Vec::new(),
                Some(b) => self
                    .const_f32(b)
                    .filter(|b| b.len() == n)
                    .ok_or_else(|| not("Gemm bias is not a constant of one value per output"))?,
            };
            (op.outputs[0].clone(), bias)
        } else {
            self.trailing_bias(&op.outputs[0], n, &mut nodes)
        };
        let (output, relu) = self.trailing_relu(output, &mut nodes);
        let x = self.graph.nodes[index].input(0).unwrap_or_default();
        if !self.rows_of(x, k, gemm_bias) {
            return refuse(
                Reason::Shape,
                "dynamic pattern: input rows differ from the weight",
            );
        }
        Ok(DynamicCandidate {
            nodes,
            anchor: op_i,
            step: crate::program::StepSpec::DynamicLinear {
                node: op.name.clone(),
                input: x.to_string(),
                output,
                n,
                k,
                weights: QWeights::new(weights, scales),
                bias,
                relu,
            },
        })
    }

    /// Whether `x` can be the input of a dynamic linear layer of depth `k`: rows of `k`
    /// values (2-D ones for a Gemm, `two_d`). A MatMul input whose shape shape inference
    /// could not tell (a graph with symbolic dims) is taken: the step checks its last axis
    /// when it runs and refuses a wrong one with an error. A Gemm's rank must be known.
    fn rows_of(&self, x: &str, k: usize, two_d: bool) -> bool {
        match self.graph.tensor_info(x).and_then(|i| i.shape) {
            Some(d) => d.last() == Some(&Dim::Known(k)) && (!two_d || d.len() == 2),
            None => !two_d,
        }
    }

    /// A constant `Add` of `n` values as the only reader of `output` (a bias): extends
    /// `nodes` with it and returns its output and values; otherwise `output` and no bias.
    fn trailing_bias(&self, output: &str, n: usize, nodes: &mut Vec<usize>) -> (String, Vec<f32>) {
        if let Some(add_i) = self.only_reader(output) {
            let add = &self.graph.nodes[add_i];
            if matches!(add.op, Op::Binary(BinaryOp::Add)) {
                let other = if add.input(0) == Some(output) {
                    add.input(1)
                } else {
                    add.input(0)
                };
                if let Some(b) = other.and_then(|b| self.const_f32(b)).filter(|b| b.len() == n) {
                    nodes.push(add_i);
                    return (add.outputs[0].clone(), b);
                }
            }
        }
        (output.to_string(), Vec::new())
    }

    /// A `Relu` as the only reader of `output`: extends `nodes` with it and returns its
    /// output and `true`; otherwise `output` and `false`.
    fn trailing_relu(&self, output: String, nodes: &mut Vec<usize>) -> (String, bool) {
        match self.only_reader(&output) {
            Some(r) if matches!(self.graph.nodes[r].op, Op::Unary(UnaryOp::Relu)) => {
                nodes.push(r);
                (self.graph.nodes[r].outputs[0].clone(), true)
            }
            _ => (output, false),
        }
    }

    /// ONNX Runtime's form: `DynamicQuantizeLinear → MatMulInteger → Cast → Mul`.
    fn match_dynamic_integer(&self, index: usize) -> Result<DynamicCandidate, Refusal> {
        let not = not_dynamic;
        let (xq, xs, xz) = self.dynamic_outputs(index)?;
        let mm_i = self
            .only_reader(xq)
            .ok_or_else(|| not("quantized input has other readers"))?;
        let mm = &self.graph.nodes[mm_i];
        if !matches!(mm.op, Op::MatMulInteger) || mm.input(0) != Some(xq) || mm.input(2) != Some(xz) {
            return Err(not("not read by MatMulInteger"));
        }
        if self.consumers(xz) != [mm_i] {
            return Err(not("zero point has other readers"));
        }
        if let Some(wz) = mm.input(3) {
            let zero = self
                .constant(wz)
                .map(|z| z.to_i64_vec().map(|v| v.iter().all(|&x| x == 0)));
            if !matches!(zero, Some(Ok(true))) {
                return Err(not("weight zero point is not 0"));
            }
        }
        let w = mm
            .input(1)
            .and_then(|w| self.constant(w))
            .ok_or_else(|| Refusal {
                reason: Reason::NonConstantWeight,
                detail: "MatMulInteger weight is not a constant".into(),
            })?;
        let wv = w.as_i8().map_err(|_| Refusal {
            reason: Reason::Dtype,
            detail: "MatMulInteger weight is not int8".into(),
        })?;
        let [k, n] = *w.dims() else {
            return Err(not("weight is not 2-D"));
        };
        let cast_i = self
            .only_reader(&mm.outputs[0])
            .ok_or_else(|| not("product has other readers"))?;
        let cast = &self.graph.nodes[cast_i];
        if !matches!(cast.op, Op::Cast { to: DType::F32 }) {
            return Err(not("product is not cast to f32"));
        }
        let mul_i = self
            .only_reader(&cast.outputs[0])
            .ok_or_else(|| not("cast has other readers"))?;
        let mul = &self.graph.nodes[mul_i];
        if !matches!(mul.op, Op::Binary(BinaryOp::Mul)) {
            return Err(not("cast is not scaled by Mul"));
        }
        let scale_t = if mul.input(0) == Some(cast.outputs[0].as_str()) {
            mul.input(1)
        } else {
            mul.input(0)
        };
        let smul_i = scale_t
            .and_then(|t| self.producer.get(t).copied())
            .ok_or_else(|| not("scale is not x_scale · w_scale"))?;
        let smul = &self.graph.nodes[smul_i];
        if !matches!(smul.op, Op::Binary(BinaryOp::Mul)) || self.consumers(xs) != [smul_i] {
            return Err(not("scale is not x_scale · w_scale"));
        }
        let ws = if smul.input(0) == Some(xs) {
            smul.input(1)
        } else {
            smul.input(0)
        };
        let scales = ws
            .and_then(|w| self.const_f32(w))
            .ok_or_else(|| not("weight scale is not a constant"))?;
        if ChannelScales::new(&scales, n).is_none() || scales.iter().any(|&s| validate_scale(s, "").is_err())
        {
            return Err(not("weight scales"));
        }
        if self.only_reader(&smul.outputs[0]) != Some(mul_i) {
            return Err(not("scale has other readers"));
        }
        let mut nodes = vec![index, smul_i, mm_i, cast_i, mul_i];
        let (output, bias) = self.trailing_bias(&mul.outputs[0], n, &mut nodes);
        let (output, relu) = self.trailing_relu(output, &mut nodes);
        let x = self.graph.nodes[index].input(0).unwrap_or_default();
        if !self.rows_of(x, k, false) {
            return refuse(
                Reason::Shape,
                "dynamic pattern: input rows differ from the weight",
            );
        }
        let weights = transpose(wv, k, n);
        Ok(DynamicCandidate {
            nodes,
            anchor: mm_i,
            step: crate::program::StepSpec::DynamicLinear {
                node: mm.name.clone(),
                input: x.to_string(),
                output,
                n,
                k,
                weights: QWeights::new(weights, scales),
                bias,
                relu,
            },
        })
    }
}

/// The refusal of a dynamic-quantization pattern, saying why.
fn not_dynamic(why: &str) -> Refusal {
    Refusal {
        reason: Reason::Attribute,
        detail: format!("dynamic pattern: {why}"),
    }
}
