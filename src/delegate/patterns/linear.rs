//! `DQ(x), DQ(const w) [, bias] → Gemm / MatMul [→ Relu / Clip] → Q` as one fully connected
//! step.

use super::weights::transpose;
use super::{refuse, Candidate, Matcher, Reason, Refusal};
use crate::ir::op::BinaryOp;
use crate::ir::{Node, Op};
use crate::program::{FullyConnectedSpec, KernelSpec};
use crate::qscheme::QWeights;

impl<'g> Matcher<'g> {
    /// Gemm, or MatMul with a constant weight; PyTorch's dynamo export of `linear` on an input
    /// of rank > 2, `MatMul(x, Transpose(DQ(W))) → Add(const bias)`, is taken whole.
    pub(super) fn fully_connected(&self, index: usize, node: &Node) -> Result<Candidate, Refusal> {
        let mut covered = Vec::new();
        let mut weight = node.inputs[1].as_str();
        let trans_b = match &node.op {
            Op::Gemm(g) => {
                if g.alpha != 1.0 || g.beta != 1.0 || g.trans_a {
                    return refuse(Reason::Attribute, "Gemm with alpha/beta != 1 or transA");
                }
                g.trans_b
            }
            _ => {
                if node.input(2).is_some() {
                    return refuse(Reason::Attribute, "unexpected third input");
                }
                match self.transposed_weight(weight, index) {
                    Some((t_i, w)) => {
                        covered.push(t_i);
                        weight = w;
                        true
                    }
                    None => false,
                }
            }
        };
        let x = self.q_input(&node.inputs[0])?;
        if x.dims.len() < 2 || (matches!(node.op, Op::Gemm(_)) && x.dims.len() != 2) {
            return refuse(Reason::Shape, "input rank");
        }
        let (QWeights { values: w, scales }, wd) = self.q_weight(weight, if trans_b { 0 } else { 1 })?;
        if wd.len() != 2 {
            return refuse(Reason::Shape, "weight is not 2-D");
        }
        let (n, k) = if trans_b { (wd[0], wd[1]) } else { (wd[1], wd[0]) };
        if x.dims[x.dims.len() - 1] != k {
            return refuse(Reason::Shape, "reduction lengths differ");
        }
        let (bias_input, mut out) = match (&node.op, self.constant_bias_add(&node.outputs[0], n)) {
            (Op::MatMul, Some((add_i, bias))) => {
                let mut out = self.q_output_from(&self.graph.nodes[add_i].outputs[0])?;
                out.nodes.insert(0, add_i);
                (Some(bias), out)
            }
            _ => (node.input(2), self.q_output(node)?),
        };
        out.nodes.extend(covered);
        let weights = if trans_b { w } else { transpose(&w, k, n) };
        let bias = self.q_bias(bias_input, x.q.scale, &scales, n)?;
        let kernel = KernelSpec::FullyConnected(FullyConnectedSpec {
            input: 0,
            output: 0,
            n,
            k,
            weights: QWeights::new(weights, scales),
            bias,
            range: out.range,
        });
        Ok(self.candidate(index, vec![&x], out, kernel))
    }

    /// `w` = `Transpose(perm = [1, 0])(u)` of a 2-D tensor `u` made by a DequantizeLinear,
    /// read only by node `reader`: the Transpose's index and `u`.
    fn transposed_weight(&self, w: &str, reader: usize) -> Option<(usize, &'g str)> {
        let t_i = *self.producer.get(w)?;
        let t = &self.graph.nodes[t_i];
        let Op::Transpose { perm } = &t.op else {
            return None;
        };
        let u = t.input(0)?;
        let two_d = self.dims(u).ok()?.len() == 2;
        let swaps = perm.as_deref().is_none_or(|p| p == [1, 0]);
        let dequantized = matches!(self.producer(u)?.op, Op::DequantizeLinear(_));
        (two_d && swaps && dequantized && self.only_reader(w) == Some(reader)).then_some((t_i, u))
    }

    /// The only reader of `output` when it is an `Add` of a constant with `n` values (a
    /// bias): its index and the constant's name.
    fn constant_bias_add(&self, output: &str, n: usize) -> Option<(usize, &'g str)> {
        let add_i = self.only_reader(output)?;
        let add = &self.graph.nodes[add_i];
        if !matches!(add.op, Op::Binary(BinaryOp::Add)) {
            return None;
        }
        let other = if add.input(0) == Some(output) {
            add.input(1)?
        } else {
            add.input(0)?
        };
        let c = self.constant(other)?;
        (c.dims().iter().product::<usize>() == n && c.dims().len() == 1).then_some((add_i, other))
    }
}
