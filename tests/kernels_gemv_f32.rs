//! The few-row f32 product (`interp::kernels::gemv`): every ISA variant gives the scalar
//! definition's bits on any column range, and the definition is accurate (against an `f64`
//! sum); MatMuls of one to four rows computed through it agree with a wide GEMM's.

use proptest::prelude::*;
use xq::cpu::Isa;
use xq::interp::kernels::gemv::{gemv_with, scalar};

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_isa_gives_the_definitions_bits(
        k in 0usize..300,
        n in 1usize..300,
        start in 0usize..300,
        len in 0usize..300,
        seed in any::<u64>(),
    ) {
        let start = start % n;
        let end = (start + len).min(n);
        let (x, w) = (values(k, seed), values(k * n, seed ^ 0x5555));
        let mut want = vec![0f32; end - start];
        scalar::gemv(&x, &w, n, start..end, &mut want);
        for (j, c) in (start..end).enumerate() {
            let exact: f64 = (0..k).map(|i| f64::from(x[i]) * f64::from(w[i * n + c])).sum();
            let magnitude: f64 = (0..k).map(|i| (f64::from(x[i]) * f64::from(w[i * n + c])).abs()).sum();
            prop_assert!((f64::from(want[j]) - exact).abs() <= 1e-6 * magnitude.max(1.0),
                "column {c}: {} vs exact {exact}", want[j]);
        }
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let mut got = vec![f32::NAN; end - start];
            gemv_with(isa, &x, &w, n, start..end, &mut got);
            let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
            prop_assert!(same, "{isa}: k {k}, n {n}, columns {start}..{end} differ from the definition");
        }
    }
}

#[test]
fn special_values_propagate_as_in_the_definition() {
    let (k, n) = (3, 70);
    let mut w = values(k * n, 7);
    w[5] = f32::INFINITY;
    w[n + 6] = f32::NAN;
    w[2 * n + 69] = -0.0;
    let x = [0.5, -0.0, 2.0];
    let mut want = vec![0f32; n];
    scalar::gemv(&x, &w, n, 0..n, &mut want);
    assert!(want[5].is_infinite() && want[6].is_nan());
    for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        let mut got = vec![0f32; n];
        gemv_with(isa, &x, &w, n, 0..n, &mut got);
        for c in 0..n {
            let same = got[c].to_bits() == want[c].to_bits() || (got[c].is_nan() && want[c].is_nan());
            assert!(same, "{isa}: column {c}: {} vs {}", got[c], want[c]);
        }
    }
}

#[test]
fn few_row_matmuls_agree_with_a_wide_gemm() {
    use xq::ir::Tensor;
    let (k, n) = (96, 130);
    let w = Tensor::from_f32(vec![k, n], values(k * n, 3)).unwrap();
    for rows in 1..=6 {
        let a = Tensor::from_f32(vec![rows, k], values(rows * k, rows as u64)).unwrap();
        let y = xq::interp::kernels::eval(&xq::ir::Op::MatMul, &[Some(&a), Some(&w)]).unwrap();
        let got = y[0].as_f32().unwrap();
        let (av, wv) = (a.as_f32().unwrap(), w.as_f32().unwrap());
        for r in 0..rows {
            for c in 0..n {
                let exact: f64 = (0..k)
                    .map(|i| f64::from(av[r * k + i]) * f64::from(wv[i * n + c]))
                    .sum();
                assert!(
                    (f64::from(got[r * n + c]) - exact).abs() <= 1e-4,
                    "{rows} rows: ({r}, {c})"
                );
            }
        }
    }
}
