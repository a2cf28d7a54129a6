//! The dims a chain of view operators (Unsqueeze, Expand, Reshape) gives a tensor, computed
//! from the chain's source without its data. A fusion that reads through such a chain
//! (the grouped-query attention's repeated keys and values, see [`super::attention_fusion`])
//! never materializes the chain's tensors; a Shape node that read the chain's end answers
//! from the source instead ([`ViewShape`]).

use crate::ir::infer::{infer_op, Fact};
use crate::ir::{DType, Op, Tensor};
use crate::{Error, Result};

/// One view operator of a chain: the operator and its inputs after the first (the shape or
/// axes slots), whose values it reads.
#[derive(Clone, Debug)]
pub(super) struct ViewLink {
    /// The operator (Unsqueeze, Expand or Reshape).
    pub op: Op,
    /// Its inputs after the viewed one.
    pub args: Vec<Option<usize>>,
}

/// The dims after each link of `links`, starting from a tensor of `source` dims; `get` gives
/// the tensor of a slot. An error when a link's inputs are missing or do not apply.
pub(super) fn view_dims<'t>(
    source: &[usize],
    links: &[ViewLink],
    get: impl Fn(usize) -> Option<&'t Tensor>,
) -> Result<Vec<Vec<usize>>> {
    let mut dims: Vec<Vec<usize>> = Vec::with_capacity(links.len());
    for link in links {
        let input = dims.last().map_or(source, Vec::as_slice);
        let mut facts = vec![Some(Fact {
            dtype: DType::F32,
            shape: Some(input),
            value: None,
        })];
        for &a in &link.args {
            facts.push(match a {
                None => None,
                Some(s) => {
                    let t = get(s).ok_or_else(|| {
                        Error::Internal(format!("{} argument is missing", link.op.onnx_name()))
                    })?;
                    Some(Fact {
                        dtype: t.dtype(),
                        shape: Some(t.dims()),
                        value: Some(t),
                    })
                }
            });
        }
        let out = infer_op(&link.op, &facts)?;
        let next = out
            .into_iter()
            .next()
            .and_then(|(_, s)| s)
            .ok_or_else(|| Error::Internal(format!("{} gave no shape", link.op.onnx_name())))?;
        dims.push(next);
    }
    Ok(dims)
}

/// A Shape node (`start`, `end`) whose input is the end of a view chain a fusion absorbed:
/// the chain's dims from `source`'s.
#[derive(Debug)]
pub(super) struct ViewShape {
    /// The Shape node's name.
    pub name: String,
    /// The chain's source slot.
    pub source: usize,
    /// The chain, in order.
    pub links: Vec<ViewLink>,
    /// The Shape node's first axis.
    pub start: i64,
    /// The Shape node's end axis (None = rank).
    pub end: Option<i64>,
    /// The Shape node's output slot.
    pub output: usize,
}

impl ViewShape {
    /// Every slot the step reads.
    pub(super) fn reads(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.source).chain(self.links.iter().flat_map(|l| l.args.iter().flatten().copied()))
    }

    /// The Shape node's output for a source tensor of `source` dims.
    pub(super) fn eval<'t>(
        &self,
        source: &[usize],
        get: impl Fn(usize) -> Option<&'t Tensor>,
    ) -> Result<Tensor> {
        let all = view_dims(source, &self.links, get)
            .map_err(|e| crate::ir::infer::with_node(e, &self.name, "Shape"))?;
        let dims = all.last().map_or(source, Vec::as_slice);
        let (s, e) = crate::ir::shapes::shape_range(dims.len(), self.start, self.end);
        Ok(Tensor::vec_i64(dims[s..e].iter().map(|&d| d as i64).collect()))
    }
}
