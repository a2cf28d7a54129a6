//! Einsum on f32 operands, following the [`einsum::Plan`] of the equation. Two operands
//! whose labels are each batch, row, column or contracted (every batched matrix product
//! transformers write, e.g. `bhqd,bhkd->bhqk`) run as transposes around one batched MatMul;
//! any other equation runs the reference path: every output element is the sum, over the
//! summed labels, of the product of the operand elements the labels address (accumulated in
//! f32, in label order).

use super::{layout, linalg};
use crate::ir::einsum;
use crate::ir::{checked_numel, Tensor};
use crate::{Error, Result};

/// A two-operand plan as a batched matrix product: A's axes permuted to (batch, m, k), B's to
/// (batch, k, n); the product's (batch, m, n) axes permuted to the output's order.
struct MatMulForm {
    perm_a: Vec<usize>,
    perm_b: Vec<usize>,
    /// The (batch, m, k) and (batch, k, n) sizes after the permutations.
    shape_a: [usize; 3],
    shape_b: [usize; 3],
    /// The product's axes' sizes, (batch..., m..., n...) with one axis per label.
    product_dims: Vec<usize>,
    /// The output's axes as positions in `product_dims`.
    perm_out: Vec<usize>,
}

/// The batched-matmul form of `plan`, if it has one: two operands, no label repeated within
/// one, no broadcast axis, and every label in both operands and the output (batch), in A and
/// the output (m), in B and the output (n), or in both operands only (k).
fn matmul_form(plan: &einsum::Plan, shapes: &[&[usize]]) -> Option<MatMulForm> {
    let [a, b] = plan.axes.as_slice() else {
        return None;
    };
    for (axes, shape) in plan.axes.iter().zip(shapes) {
        let distinct = axes.iter().enumerate().all(|(i, l)| !axes[..i].contains(l));
        let unbroadcast = axes.iter().zip(shape.iter()).all(|(&l, &d)| plan.sizes[l] == d);
        if !distinct || !unbroadcast {
            return None;
        }
    }
    let out = &plan.output;
    let (mut batch, mut m, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for &l in out {
        match (a.contains(&l), b.contains(&l)) {
            (true, true) => batch.push(l),
            (true, false) => m.push(l),
            (false, true) => n.push(l),
            (false, false) => return None,
        }
    }
    let k: Vec<usize> = a.iter().copied().filter(|l| !out.contains(l)).collect();
    if b.iter().any(|l| !out.contains(l) && !k.contains(l)) || k.iter().any(|l| !b.contains(l)) {
        return None;
    }
    let pos = |axes: &[usize], l: usize| axes.iter().position(|&x| x == l);
    let perm = |axes: &[usize], groups: [&[usize]; 3]| -> Option<Vec<usize>> {
        groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|&l| pos(axes, l))
            .collect()
    };
    let size = |ls: &[usize]| ls.iter().map(|&l| plan.sizes[l]).product::<usize>();
    let product: Vec<usize> = batch.iter().chain(&m).chain(&n).copied().collect();
    Some(MatMulForm {
        perm_a: perm(a, [&batch, &m, &k])?,
        perm_b: perm(b, [&batch, &k, &n])?,
        shape_a: [size(&batch), size(&m), size(&k)],
        shape_b: [size(&batch), size(&k), size(&n)],
        product_dims: product.iter().map(|&l| plan.sizes[l]).collect(),
        perm_out: out.iter().map(|&l| pos(&product, l)).collect::<Option<_>>()?,
    })
}

/// Runs a batched-matmul form: transpose, one batched MatMul, transpose.
fn run_matmul_form(f: &MatMulForm, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let a = layout::transpose(a, Some(&f.perm_a))?.reshaped(f.shape_a.to_vec())?;
    let b = layout::transpose(b, Some(&f.perm_b))?.reshaped(f.shape_b.to_vec())?;
    let y = linalg::matmul(&a, &b)?.reshaped(f.product_dims.clone())?;
    layout::transpose(&y, Some(&f.perm_out))
}

/// Advances the odometer `vals` over the labels `order` (last fastest), moving every
/// operand's offset in `offs` with it; false (and every label of `order` back at 0) after the
/// last combination.
fn step(plan: &einsum::Plan, order: &[usize], vals: &mut [usize], offs: &mut [usize]) -> bool {
    for &l in order.iter().rev() {
        vals[l] += 1;
        if vals[l] < plan.sizes[l] {
            for (o, st) in offs.iter_mut().zip(&plan.strides) {
                *o += st[l];
            }
            return true;
        }
        // Back from size - 1 to 0: every offset was moved by (size - 1) strides.
        for (o, st) in offs.iter_mut().zip(&plan.strides) {
            *o -= st[l] * (vals[l] - 1);
        }
        vals[l] = 0;
    }
    false
}

/// Evaluates `equation` on f32 operands.
pub fn einsum(equation: &str, operands: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = operands.iter().map(|t| t.dims()).collect();
    let plan = einsum::plan(equation, &shapes)?;
    if let (Some(f), [a, b]) = (matmul_form(&plan, &shapes), operands) {
        return run_matmul_form(&f, a, b);
    }
    reference(equation, &plan, operands)
}

/// The reference path: any plan, one output element at a time.
fn reference(equation: &str, plan: &einsum::Plan, operands: &[&Tensor]) -> Result<Tensor> {
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
    let mut vals = vec![0usize; plan.sizes.len()];
    let mut base = vec![0usize; operands.len()];
    for y in out.iter_mut() {
        let mut offs = base.clone();
        let mut acc = 0f32;
        loop {
            acc += data.iter().zip(&offs).map(|(d, &o)| d[o]).product::<f32>();
            if !step(plan, &plan.summed, &mut vals, &mut offs) {
                break;
            }
        }
        *y = acc;
        step(plan, &plan.output, &mut vals, &mut base);
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

    #[test]
    fn matmul_forms_agree_with_the_reference_path() {
        let mut seed = 1u32;
        let mut rand = |dims: &[usize]| {
            let n = dims.iter().product();
            let v = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect();
            t(dims.to_vec(), v)
        };
        for (eq, da, db, fast) in [
            ("bhqd,bhkd->bhqk", &[2, 3, 4, 5][..], &[2, 3, 6, 5][..], true),
            ("bhqk,bhkd->bhqd", &[2, 3, 4, 6], &[2, 3, 6, 5], true),
            ("bsh,hd->bsd", &[2, 7, 8], &[8, 3], true),
            ("ij,jk->ki", &[3, 4], &[4, 2], true),
            ("i,j->ij", &[4], &[3], true),
            ("i,i", &[5], &[5], true),
            ("bij,bjk->bik", &[0, 2, 3], &[0, 3, 4], true),
            ("...ij,...jk->...ik", &[2, 1, 3, 4], &[2, 5, 4, 2], false),
            ("ij,jk->i", &[3, 4], &[4, 2], false),
        ] {
            let (a, b) = (rand(da), rand(db));
            let plan = einsum::plan(eq, &[da, db]).unwrap();
            assert_eq!(matmul_form(&plan, &[da, db]).is_some(), fast, "{eq}");
            let want = reference(eq, &plan, &[&a, &b]).unwrap();
            let got = einsum(eq, &[&a, &b]).unwrap();
            assert_eq!(got.dims(), want.dims(), "{eq}");
            for (x, y) in got.as_f32().unwrap().iter().zip(want.as_f32().unwrap()) {
                assert!((x - y).abs() <= 1e-5, "{eq}: {x} vs {y}");
            }
        }
    }
}
