//! Graph rewrites that need no evaluation: fixing input shapes, folding BatchNormalization
//! into a preceding Conv, ConvTranspose or Gemm, dropping Identity nodes.

use super::{Dim, Graph, Op, Tensor};
use crate::{Error, Result};
use std::collections::HashMap;

impl Graph {
    /// Fixes the shapes of graph inputs. Each entry names an input and gives its full
    /// shape; known dims must match, symbolic dims are bound (a symbol bound once is bound
    /// to the same size on every input that uses it). Re-infers shapes afterwards.
    pub fn fix_input_shapes(&mut self, shapes: &[(&str, &[usize])]) -> Result<()> {
        let mut symbols: HashMap<String, usize> = HashMap::new();
        for (name, dims) in shapes {
            let input =
                self.inputs.iter().find(|i| i.name == *name).ok_or_else(|| {
                    Error::invalid_argument("name", format!("the model has no input `{name}`"))
                })?;
            super::checked_numel(dims)?;
            if let Some(shape) = &input.shape {
                if shape.len() != dims.len() {
                    return Err(Error::ShapeMismatch(format!(
                        "input `{name}` has rank {}, got a shape of rank {}",
                        shape.len(),
                        dims.len()
                    )));
                }
                for (d, &n) in shape.iter().zip(dims.iter()) {
                    match d {
                        Dim::Known(k) if *k != n => {
                            return Err(Error::ShapeMismatch(format!(
                                "input `{name}` has shape {shape:?}, cannot fix it to {dims:?}"
                            )))
                        }
                        Dim::Symbolic(s) => {
                            if let Some(prev) = symbols.insert(s.clone(), n) {
                                if prev != n {
                                    return Err(Error::ShapeMismatch(format!(
                                        "symbol `{s}` bound to both {prev} and {n}"
                                    )));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        for input in &mut self.inputs {
            if let Some((_, dims)) = shapes.iter().find(|(n, _)| *n == input.name) {
                input.shape = Some(dims.iter().map(|&d| Dim::Known(d)).collect());
            } else if let Some(shape) = &mut input.shape {
                for d in shape.iter_mut() {
                    if let Dim::Symbolic(s) = d {
                        if let Some(&n) = symbols.get(s) {
                            *d = Dim::Known(n);
                        }
                    }
                }
            }
        }
        self.value_info.clear();
        self.infer_shapes()
    }

    /// Folds every BatchNormalization whose input comes from a Conv, ConvTranspose or Gemm
    /// with constant weights (and no other reader) into that node's weights and bias, as
    /// PT2E and ONNX Runtime do before quantization. Returns how many were folded.
    pub fn fold_batchnorm_into_conv(&mut self) -> Result<usize> {
        let mut folded = 0;
        let mut i = 0;
        while i < self.nodes.len() {
            if let Some(conv_idx) = self.foldable_conv_for(i) {
                self.fold_one_batchnorm(conv_idx, i)?;
                folded += 1;
                continue;
            }
            i += 1;
        }
        Ok(folded)
    }

    fn foldable_conv_for(&self, bn_idx: usize) -> Option<usize> {
        let bn = &self.nodes[bn_idx];
        if !matches!(bn.op, Op::BatchNormalization { .. }) || bn.outputs.len() != 1 {
            return None;
        }
        if !bn.inputs[1..].iter().all(|n| self.initializers.contains_key(n)) {
            return None;
        }
        let x = &bn.inputs[0];
        let conv_idx = self.producer(x)?;
        let conv = &self.nodes[conv_idx];
        let f32_const = |t: &str| {
            self.initializers
                .get(t)
                .is_some_and(|t| t.dtype() == super::DType::F32)
        };
        let weights_const = f32_const(conv.input(1)?) && conv.input(2).is_none_or(f32_const);
        let single_use = self.consumers(x).len() == 1 && !self.is_output(x);
        let foldable_op = match &conv.op {
            Op::Conv(_) => true,
            Op::ConvTranspose(a) => self.initializers[conv.input(1)?]
                .dims()
                .first()
                .is_some_and(|&cin| cin.is_multiple_of(a.conv.group.max(1))),
            // A per-column bias only (a C of another shape does not take a per-channel shift).
            Op::Gemm(a) => {
                !a.trans_a
                    && conv.input(2).is_none_or(|c| {
                        let dims = self.initializers[c].dims();
                        dims.len() == 1 || (dims.len() == 2 && dims[0] == 1)
                    })
            }
            _ => false,
        };
        (foldable_op && weights_const && single_use).then_some(conv_idx)
    }

    fn fold_one_batchnorm(&mut self, conv_idx: usize, bn_idx: usize) -> Result<()> {
        let bn = self.nodes[bn_idx].clone();
        let Op::BatchNormalization { epsilon } = bn.op else {
            return Err(Error::Internal("fold target is not BatchNormalization".into()));
        };
        let param = |k: usize| -> Result<Vec<f32>> { self.initializers[&bn.inputs[k]].to_f32_vec() };
        let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
        let conv = &self.nodes[conv_idx];
        let w = &self.initializers[conv.input(1).unwrap_or_default()];
        let wd = w.dims().to_vec();
        // The output channel of every weight element, and the channel count.
        let (out_ch, channel_of): (usize, Box<dyn Fn(usize) -> usize>) = match &conv.op {
            Op::ConvTranspose(a) if wd.len() >= 2 => {
                // [Cin, Cout/group, k...]: element of input channel i and column j feeds
                // output channel (i / cin_per_group) * cout_per_group + j.
                let (cin, cout_g, group) = (wd[0], wd[1], a.conv.group.max(1));
                let per = wd[2..].iter().product::<usize>();
                let cin_g = (cin / group).max(1);
                (
                    cout_g * group,
                    Box::new(move |e| (e / (cout_g * per)) / cin_g * cout_g + (e / per) % cout_g),
                )
            }
            Op::Gemm(a) if wd.len() == 2 => {
                if a.trans_b {
                    let k = wd[1];
                    (wd[0], Box::new(move |e| e / k.max(1)))
                } else {
                    let n = wd[1];
                    (n, Box::new(move |e| e % n.max(1)))
                }
            }
            _ => {
                let out_ch = *wd.first().unwrap_or(&0);
                let per = (w.numel() / out_ch.max(1)).max(1);
                (out_ch, Box::new(move |e| e / per))
            }
        };
        if [gamma.len(), beta.len(), mean.len(), var.len()]
            .iter()
            .any(|&l| l != out_ch)
        {
            return Err(Error::ShapeMismatch(format!(
                "BatchNormalization `{}` has parameters of the wrong length for {out_ch} channels",
                bn.name
            )));
        }
        let scale: Vec<f32> = (0..out_ch)
            .map(|c| gamma[c] / (var[c] + epsilon).sqrt())
            .collect();
        let mut wv = w.as_f32()?.to_vec();
        for (e, v) in wv.iter_mut().enumerate() {
            *v *= scale[channel_of(e)];
        }
        // Gemm adds `beta * C`: the folded bias takes beta in, and beta becomes 1.
        let c_scale = match &conv.op {
            Op::Gemm(a) => a.beta,
            _ => 1.0,
        };
        let mut bias = match conv.input(2) {
            Some(b) => self.initializers[b].to_f32_vec()?,
            None => vec![0.0; out_ch],
        };
        if bias.len() != out_ch {
            return Err(Error::ShapeMismatch(format!(
                "`{}` has {} bias values for {out_ch} channels",
                conv.name,
                bias.len()
            )));
        }
        for c in 0..out_ch {
            bias[c] = (bias[c] * c_scale - mean[c]) * scale[c] + beta[c];
        }
        let w_name = self.fresh_name(&format!("{}_bnfolded_w", conv.name));
        let b_name = self.fresh_name(&format!("{}_bnfolded_b", conv.name));
        self.initializers
            .insert(w_name.clone(), Tensor::from_f32(wd, wv)?);
        self.initializers
            .insert(b_name.clone(), Tensor::from_f32(vec![out_ch], bias)?);
        let conv = &mut self.nodes[conv_idx];
        if let Op::Gemm(a) = &mut conv.op {
            a.beta = 1.0;
        }
        conv.inputs.resize(3, String::new());
        conv.inputs[1] = w_name;
        conv.inputs[2] = b_name;
        conv.outputs[0] = bn.outputs[0].clone();
        self.nodes.remove(bn_idx);
        self.remove_dead();
        Ok(())
    }

    /// Removes Identity nodes, rewiring their readers to the Identity's input (an Identity
    /// that directly feeds a graph output from a graph input is kept).
    pub fn remove_identities(&mut self) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.nodes.len() {
            let n = &self.nodes[i];
            if matches!(n.op, Op::Identity) {
                let (src, dst) = (n.inputs[0].clone(), n.outputs[0].clone());
                let src_is_boundary = self.inputs.iter().any(|x| x.name == src) || self.is_output(&src);
                if !self.is_output(&dst) {
                    self.nodes.remove(i);
                    self.replace_uses(&dst, &src);
                    removed += 1;
                    continue;
                }
                if !src_is_boundary && !self.initializers.contains_key(&src) {
                    if let Some(p) = self.producer(&src) {
                        for o in self.nodes[p].outputs.iter_mut().filter(|o| **o == src) {
                            *o = dst.clone();
                        }
                        self.nodes.remove(i);
                        self.replace_uses(&src, &dst);
                        removed += 1;
                        continue;
                    }
                }
            }
            i += 1;
        }
        removed
    }
}
