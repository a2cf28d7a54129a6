//! Einsum on f32 operands, following the [`einsum::Plan`] of the equation: every output
//! element is the sum, over the summed labels, of the product of the operand elements the
//! labels address (accumulated in f32, in label order).

use crate::ir::einsum;
use crate::ir::{checked_numel, Tensor};
use crate::{Error, Result};

/// Advances the odometer `vals` over the labels `order` (last fastest); false after the last
/// combination.
fn step(vals: &mut [usize], order: &[usize], sizes: &[usize]) -> bool {
    for &l in order.iter().rev() {
        vals[l] += 1;
        if vals[l] < sizes[l] {
            return true;
        }
        vals[l] = 0;
    }
    false
}

/// The element offset of every operand at the label values `vals`, restricted to `labels`.
fn offsets(plan: &einsum::Plan, vals: &[usize], labels: &[usize]) -> Vec<usize> {
    plan.strides
        .iter()
        .map(|st| labels.iter().map(|&l| st[l] * vals[l]).sum())
        .collect()
}

/// Evaluates `equation` on f32 operands.
pub fn einsum(equation: &str, operands: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = operands.iter().map(|t| t.dims()).collect();
    let plan = einsum::plan(equation, &shapes)?;
    let data: Vec<&[f32]> = operands.iter().map(|t| t.as_f32()).collect::<Result<_>>()?;
    let out_shape = plan.output_shape();
    let n_out = checked_numel(&out_shape)?;
    let summed_sizes: Vec<usize> = plan.summed.iter().map(|&l| plan.sizes[l]).collect();
    let n_sum = checked_numel(&summed_sizes)?;
    if n_out.checked_mul(n_sum).is_none() {
        return Err(Error::ResourceLimit(format!(
            "Einsum `{equation}`: {n_out} outputs × {n_sum} products"
        )));
    }
    let mut out = vec![0f32; n_out];
    if n_out == 0 || n_sum == 0 {
        return Tensor::from_f32(out_shape, out);
    }
    // Operand offsets of every combination of the summed labels, computed once.
    let mut vals = vec![0usize; plan.sizes.len()];
    let mut inner = Vec::with_capacity(n_sum);
    loop {
        inner.push(offsets(&plan, &vals, &plan.summed));
        if !step(&mut vals, &plan.summed, &plan.sizes) {
            break;
        }
    }
    vals.iter_mut().for_each(|v| *v = 0);
    for y in out.iter_mut() {
        let base = offsets(&plan, &vals, &plan.output);
        let mut acc = 0f32;
        for offs in &inner {
            let mut p = 1f32;
            for ((d, b), o) in data.iter().zip(&base).zip(offs) {
                p *= d[b + o];
            }
            acc += p;
        }
        *y = acc;
        step(&mut vals, &plan.output, &plan.sizes);
    }
    Tensor::from_f32(out_shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::from_f32(dims, v).unwrap()
    }

    #[test]
    fn matmul_transpose_trace_and_diagonal() {
        let a = t(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = t(vec![3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let y = einsum("ij,jk->ik", &[&a, &b]).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[4.0, 5.0, 10.0, 11.0]);
        let y = einsum("ij->ji", &[&a]).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let sq = t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(einsum("ii", &[&sq]).unwrap().as_f32().unwrap(), &[5.0]);
        assert_eq!(einsum("ii->i", &[&sq]).unwrap().as_f32().unwrap(), &[1.0, 4.0]);
        let y = einsum("...j,j", &[&a, &t(vec![3], vec![1.0, 1.0, 1.0])]).unwrap();
        assert_eq!(y.as_f32().unwrap(), &[6.0, 15.0]);
    }
}
