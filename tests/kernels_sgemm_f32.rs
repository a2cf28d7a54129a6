//! The packed-B f32 GEMM (`interp::kernels::sgemm`): on every ISA, each output is the few-row
//! product's definition (`gemv::scalar::gemv`, one fused multiply-add chain per column) to
//! the bit, for any shape (edge tiles in rows and columns, strided A and C), leaving C's
//! other elements alone, and a bias adds as a separate sum would; the matrix is packed from
//! any strided view; a product with the top rows of a packed B alone gives the definition's
//! bits over those rows.

use proptest::prelude::*;
use xq::cpu::Isa;
use xq::interp::kernels::gemv::scalar;
use xq::interp::kernels::sgemm::{sgemm, sgemm_bias, sgemm_bias_cols, sgemm_view, with_packed, PackedB};

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

/// Rows of `a` (stride `lda`) times the row-major `k × n` `b` by the definition, into rows of
/// `ldc` whose padding keeps [`FILL`].
fn definition(a: &[f32], lda: usize, m: usize, k: usize, b: &[f32], n: usize, ldc: usize) -> Vec<f32> {
    let mut c = vec![FILL; m * ldc];
    for r in 0..m {
        scalar::gemv(&a[r * lda..r * lda + k], b, n, 0..n, &mut c[r * ldc..r * ldc + n]);
    }
    c
}

/// What C holds before a product (its row padding must keep it).
const FILL: f32 = 7.5;

fn same_bits(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len()
        && x.iter()
            .zip(y)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_isa_gives_the_definitions_bits(
        m in 1usize..70,
        k in 0usize..70,
        n in 1usize..70,
        a_pad in 0usize..3,
        c_pad in 0usize..3,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (lda, ldc) = (k + a_pad, n + c_pad);
        let a = values(m * lda, seed);
        let b = values(k * n, seed ^ 0x5555);
        let bias = with_bias.then(|| values(n, seed ^ 0xaaaa));
        let mut want = definition(&a, lda, m, k, &b, n, ldc);
        if let Some(bias) = &bias {
            for r in 0..m {
                want[r * ldc..r * ldc + n].iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        }
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let packed = PackedB::new(isa, &b, k, n).unwrap();
            prop_assert_eq!((packed.k(), packed.n()), (k, n));
            let mut got = vec![FILL; m * ldc];
            sgemm_bias(&a, lda, m, &packed, bias.as_deref(), &mut got, ldc);
            prop_assert!(same_bits(&got, &want), "{}: m {}, k {}, n {}, lda {}, ldc {}, bias {}", isa, m, k, n, lda, ldc, with_bias);
        }
    }

    #[test]
    fn any_split_of_the_rows_gives_the_same_bits(
        m in 2usize..40,
        k in 1usize..50,
        n in 1usize..70,
        cut in 1usize..40,
        seed in any::<u64>(),
    ) {
        let cut = cut % m;
        let (a, b) = (values(m * k, seed), values(k * n, seed ^ 1));
        let packed = PackedB::new(Isa::best_supported(), &b, k, n).unwrap();
        let mut whole = vec![0f32; m * n];
        sgemm(&a, k, m, &packed, &mut whole, n);
        let mut parts = vec![0f32; m * n];
        let (top, bottom) = parts.split_at_mut(cut * n);
        sgemm(&a, k, cut, &packed, top, n);
        sgemm(&a[cut * k..], k, m - cut, &packed, bottom, n);
        prop_assert!(same_bits(&whole, &parts));
    }

    /// Column ranges on panel boundaries (how decoding splits a few rows over threads), on
    /// every ISA and with a bias: the bits of the whole product, other columns untouched.
    #[test]
    fn any_split_of_the_panels_gives_the_same_bits(
        m in 1usize..6,
        k in 0usize..50,
        n in 1usize..140,
        cut in 0usize..8,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (a, b) = (values(m * k, seed), values(k * n, seed ^ 3));
        let bias = with_bias.then(|| values(n, seed ^ 7));
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let packed = PackedB::new(isa, &b, k, n).unwrap();
            let mut whole = vec![FILL; m * n];
            sgemm_bias(&a, k, m, &packed, bias.as_deref(), &mut whole, n);
            let at = (cut * packed.panel_width()).min(n);
            let mut parts = vec![FILL; m * n];
            // SAFETY: `parts` holds m rows of n; the two calls write disjoint columns.
            unsafe {
                sgemm_bias_cols(&a, k, m, &packed, at..n, bias.as_deref(), parts.as_mut_ptr(), n);
                let mut left = vec![FILL; m * n];
                sgemm_bias_cols(&a, k, m, &packed, 0..at, bias.as_deref(), left.as_mut_ptr(), n);
                for r in 0..m {
                    prop_assert!(same_bits(&left[r * n + at..(r + 1) * n], &vec![FILL; n - at]), "{}: columns past the range written", isa);
                    parts[r * n..r * n + at].copy_from_slice(&left[r * n..r * n + at]);
                }
            }
            prop_assert!(same_bits(&whole, &parts), "{}: m {}, k {}, n {}, cut at {}", isa, m, k, n, at);
        }
    }

    /// Deep products (a transformer MLP's reduction): the definition's bits, with and without
    /// a bias, on every ISA.
    #[test]
    fn deep_products_give_the_definitions_bits(
        m in 1usize..14,
        k in 250usize..800,
        n in 1usize..40,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let a = values(m * k, seed);
        let b = values(k * n, seed ^ 0x77);
        let bias = with_bias.then(|| values(n, seed ^ 0x99));
        let mut want = definition(&a, k, m, k, &b, n, n);
        if let Some(bias) = &bias {
            for r in 0..m {
                want[r * n..(r + 1) * n].iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        }
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let packed = PackedB::new(isa, &b, k, n).unwrap();
            let mut got = vec![FILL; m * n];
            sgemm_bias(&a, k, m, &packed, bias.as_deref(), &mut got, n);
            prop_assert!(same_bits(&got, &want), "{}: m {}, k {}, n {}, bias {}", isa, m, k, n, with_bias);
        }
    }

    /// The first `depth` rows of a packed B (attention over the keys a causal mask leaves
    /// visible), into rows of `ldc` as short as the columns written: the definition over
    /// those rows, on every ISA.
    #[test]
    fn the_top_rows_of_b_give_the_definitions_bits(
        m in 1usize..40,
        k in 1usize..60,
        depth in 0usize..60,
        n in 1usize..70,
        cut in 0usize..5,
        seed in any::<u64>(),
    ) {
        let depth = depth.min(k);
        let (a, b) = (values(m * depth, seed), values(k * n, seed ^ 9));
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let packed = PackedB::new(isa, &b, k, n).unwrap();
            let end = (cut * packed.panel_width()).clamp(1, n);
            let want = definition(&a, depth, m, depth, &b[..depth * n], n, n);
            let mut got = vec![FILL; m * end];
            // SAFETY: `got` holds m rows of `end`, every element written.
            unsafe { sgemm_view(&a, depth, m, &packed, depth, 0..end, None, got.as_mut_ptr(), end) };
            for r in 0..m {
                prop_assert!(same_bits(&got[r * end..(r + 1) * end], &want[r * n..r * n + end]), "{}: m {}, depth {} of {}, n {}, columns {}", isa, m, depth, k, n, end);
            }
        }
    }
}

#[test]
fn a_transposed_view_packs_as_its_copy() {
    let (k, n, m) = (37, 45, 13);
    let bt = values(n * k, 3); // n × k, row-major: B = btᵀ
    let b: Vec<f32> = (0..k * n).map(|i| bt[(i % n) * k + i / n]).collect();
    let a = values(m * k, 4);
    let want = definition(&a, k, m, k, &b, n, n);
    let got = with_packed(&bt, (1, k), k, n, |p| {
        let mut c = vec![FILL; m * n];
        sgemm(&a, k, m, p, &mut c, n);
        c
    })
    .unwrap();
    assert!(same_bits(&got, &want));
}

#[test]
fn special_values_propagate_as_in_the_definition() {
    let (m, k, n) = (14, 3, 70);
    let mut b = values(k * n, 7);
    b[5] = f32::INFINITY;
    b[n + 6] = f32::NAN;
    b[2 * n + 69] = -0.0;
    let mut a = values(m * k, 8);
    a[1] = -0.0;
    a[4 * k] = f32::NAN;
    let want = definition(&a, k, m, k, &b, n, n);
    for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        let packed = PackedB::new(isa, &b, k, n).unwrap();
        let mut got = vec![FILL; m * n];
        sgemm(&a, k, m, &packed, &mut got, n);
        assert!(same_bits(&got, &want), "{isa}");
    }
}

#[test]
fn views_that_do_not_fit_are_refused() {
    let b = values(20, 1);
    assert!(PackedB::new(Isa::Scalar, &b, 4, 6).is_err());
    assert!(with_packed(&b, (1, 5), 5, 5, |_| ()).is_none());
    assert!(PackedB::default()
        .pack(Isa::Scalar, &b, (usize::MAX, 1), 2, 2)
        .is_err());
    assert!(PackedB::new(Isa::Scalar, &[], 0, 7).is_ok() && PackedB::new(Isa::Scalar, &[], 7, 0).is_ok());
    let packed = PackedB::new(Isa::Scalar, &b, 4, 5).unwrap();
    let result = std::panic::catch_unwind(|| {
        let mut c = vec![0f32; 9];
        sgemm(&values(8, 2), 4, 2, &packed, &mut c, 5);
    });
    assert!(result.is_err(), "a C of 9 values cannot hold 2 rows of 5");
}
