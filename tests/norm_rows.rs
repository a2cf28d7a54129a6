//! `norm_rows`: every ISA variant of the layer and RMS row normalisations gives the scalar
//! definition's bits (out of place and in place, every tail length; so does the row sum behind
//! ReduceMean / ReduceSum), and the definition is accurate against an `f64` evaluation.

use proptest::prelude::*;
use xq::cpu::Isa;
use xq::interp::kernels::norm_rows::{
    layer_norm_row_in_place, layer_norm_row_with, rms_norm_row_in_place, rms_norm_row_with, row_sum, RowStats,
};

fn supported() -> Vec<Isa> {
    let all: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_supported()).collect();
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
        eprintln!("norm_rows: {isa} skipped (the CPU lacks it)");
    }
    all
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Runs both normalisations on every ISA, out of place and in place, and checks every
/// result against the scalar one bit for bit.
fn check_isas_agree(x: &[f32], scale: &[f32], bias: &[f32], eps: f32) -> Result<(), TestCaseError> {
    let n = x.len();
    let mut want = vec![0f32; n];
    let want_stats = layer_norm_row_with(Isa::Scalar, x, scale, Some(bias), eps, &mut want).unwrap();
    let mut want_nb = vec![0f32; n];
    let want_nb_stats = layer_norm_row_with(Isa::Scalar, x, scale, None, eps, &mut want_nb).unwrap();
    let mut want_rms = vec![0f32; n];
    let want_inv = rms_norm_row_with(Isa::Scalar, x, scale, eps, &mut want_rms).unwrap();
    for isa in supported() {
        let mut y = vec![0f32; n];
        let s = layer_norm_row_with(isa, x, scale, Some(bias), eps, &mut y).unwrap();
        let mut v = x.to_vec();
        let s2 = layer_norm_row_in_place(isa, &mut v, scale, Some(bias), eps).unwrap();
        let mut nb = vec![0f32; n];
        let s3 = layer_norm_row_with(isa, x, scale, None, eps, &mut nb).unwrap();
        prop_assert!(
            same(row_sum(isa, x), row_sum(Isa::Scalar, x)),
            "{isa}: row sum of n = {n}"
        );
        let mut r = vec![0f32; n];
        let inv = rms_norm_row_with(isa, x, scale, eps, &mut r).unwrap();
        let mut rv = x.to_vec();
        let inv2 = rms_norm_row_in_place(isa, &mut rv, scale, eps).unwrap();
        let stat_same = |a: RowStats, b: RowStats| same(a.mean, b.mean) && same(a.inv_std, b.inv_std);
        prop_assert!(
            stat_same(s, want_stats) && stat_same(s2, want_stats),
            "{isa}: layer stats of n = {n}"
        );
        prop_assert!(stat_same(s3, want_nb_stats), "{isa}: stats without bias, n = {n}");
        prop_assert!(
            same(inv, want_inv) && same(inv2, want_inv),
            "{isa}: rms inv of n = {n}"
        );
        for i in 0..n {
            prop_assert!(
                same(y[i], want[i]) && same(v[i], want[i]),
                "{isa}: layer y[{i}] of n = {n}"
            );
            prop_assert!(
                same(nb[i], want_nb[i]),
                "{isa}: layer (no bias) y[{i}] of n = {n}"
            );
            prop_assert!(
                same(r[i], want_rms[i]) && same(rv[i], want_rms[i]),
                "{isa}: rms y[{i}] of n = {n}"
            );
        }
    }
    Ok(())
}

/// Rows with operands of `n` elements.
fn rows() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, Vec<f32>, f32)> {
    (0usize..100, -3.0f32..3.0).prop_flat_map(|(n, offset)| {
        (
            prop::collection::vec(-10.0f32..10.0, n)
                .prop_map(move |v| v.into_iter().map(|e| e + offset).collect()),
            prop::collection::vec(-2.0f32..2.0, n),
            prop::collection::vec(-1.0f32..1.0, n),
            prop::sample::select(vec![1e-5f32, 1e-6, 1e-12, 0.0, 0.5]),
        )
    })
}

proptest! {
    #[test]
    fn every_isa_gives_the_definition_bits((x, scale, bias, eps) in rows()) {
        check_isas_agree(&x, &scale, &bias, eps)?;
    }
}

#[test]
fn every_tail_length_and_special_values_agree() {
    for n in 0..70 {
        let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.37).collect();
        let scale: Vec<f32> = (0..n).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
        let bias: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
        check_isas_agree(&x, &scale, &bias, 1e-5).unwrap();
        let mut special = x.clone();
        if n > 3 {
            special[1] = f32::NAN;
            special[2] = f32::INFINITY;
        }
        check_isas_agree(&special, &scale, &bias, 1e-5).unwrap();
        check_isas_agree(&vec![0.0; n], &scale, &bias, 0.0).unwrap();
        check_isas_agree(&vec![-0.0; n], &scale, &bias, 1e-5).unwrap();
    }
}

/// Layer and RMS normalisation evaluated in `f64`.
fn reference(x: &[f32], scale: &[f32], bias: &[f32], eps: f32) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps as f64).sqrt();
    let layer = (0..x.len())
        .map(|i| (x[i] as f64 - mean) * inv * scale[i] as f64 + bias[i] as f64)
        .collect();
    let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
    let rinv = 1.0 / (ms + eps as f64).sqrt();
    let rms = (0..x.len())
        .map(|i| x[i] as f64 * rinv * scale[i] as f64)
        .collect();
    (layer, rms)
}

proptest! {
    #[test]
    fn the_definition_is_within_1e_5_of_f64(
        (x, scale, bias, _) in rows().prop_filter("non-empty rows", |r| r.0.len() > 1),
        len in prop::sample::select(vec![0usize, 384, 512, 1000, 4096]),
    ) {
        // Longer rows: the generated row repeated with a drift.
        let mut x = x;
        let mut scale = scale;
        let mut bias = bias;
        let base = x.len();
        for i in base..len {
            x.push(x[i % base] * 0.9 + (i % 7) as f32 * 0.1);
            scale.push(scale[i % base]);
            bias.push(bias[i % base]);
        }
        let (layer, rms) = reference(&x, &scale, &bias, 1e-5);
        let mut y = vec![0f32; x.len()];
        layer_norm_row_with(Isa::Scalar, &x, &scale, Some(&bias), 1e-5, &mut y).unwrap();
        let mut r = vec![0f32; x.len()];
        rms_norm_row_with(Isa::Scalar, &x, &scale, 1e-5, &mut r).unwrap();
        for i in 0..x.len() {
            // Relative to the output's scale (the scale and bias of the element, at least 1).
            let tol = 1e-5 * (layer[i].abs().max(1.0));
            prop_assert!((y[i] as f64 - layer[i]).abs() <= tol, "layer y[{i}] = {} vs {}", y[i], layer[i]);
            let tol = 1e-5 * (rms[i].abs().max(1.0));
            prop_assert!((r[i] as f64 - rms[i]).abs() <= tol, "rms y[{i}] = {} vs {}", r[i], rms[i]);
        }
    }
}

#[test]
fn operands_of_another_length_are_errors() {
    let x = [1.0f32, 2.0, 3.0];
    let mut y = [0f32; 3];
    assert!(layer_norm_row_with(Isa::Scalar, &x, &[1.0; 2], None, 1e-5, &mut y).is_err());
    assert!(layer_norm_row_with(Isa::Scalar, &x, &[1.0; 3], Some(&[0.0; 4]), 1e-5, &mut y).is_err());
    assert!(rms_norm_row_with(Isa::Scalar, &x, &[1.0; 3], 1e-5, &mut [0f32; 2]).is_err());
}
