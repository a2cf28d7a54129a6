//! The gather maps of Transpose, Slice and Pad (every mode) equal what the interpreter computes
//! when it runs the operator on element numbers (1-based; 0 is the padding).

use proptest::prelude::*;
use xq::delegate::gather_map;
use xq::ir::op::PadMode;
use xq::ir::{Op, Tensor};
use xq::program::GATHER_FILL;

/// The map the interpreter gives: `op` run on the element numbers of a `dims` tensor.
fn interpreted(op: &Op, dims: &[usize], rest: &[Option<Tensor>]) -> xq::Result<(Vec<usize>, Vec<u32>)> {
    let numel: usize = dims.iter().product();
    let numbers = Tensor::from_f32(dims.to_vec(), (1..=numel).map(|i| i as f32).collect())?;
    let mut args: Vec<Option<&Tensor>> = vec![Some(&numbers)];
    args.extend(rest.iter().map(Option::as_ref));
    let y = xq::interp::kernels::eval(op, &args)?.remove(0);
    let map = y
        .as_f32()?
        .iter()
        .map(|&v| if v >= 1.0 { v as u32 - 1 } else { GATHER_FILL })
        .collect();
    Ok((y.dims().to_vec(), map))
}

fn ints(v: &[i64]) -> Option<Tensor> {
    Some(Tensor::vec_i64(v.to_vec()))
}

fn dims_strategy() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..5, 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn transpose_maps_match_the_interpreter(dims in dims_strategy(), seed in any::<u64>(), reverse in any::<bool>()) {
        let mut perm: Vec<usize> = (0..dims.len()).collect();
        // A permutation drawn from the seed (Fisher-Yates).
        let mut s = seed;
        for i in (1..perm.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let perm = (!reverse).then_some(perm);
        let op = Op::Transpose { perm: perm.clone() };
        let want = interpreted(&op, &dims, &[]).unwrap();
        prop_assert_eq!(gather_map::transpose(&dims, perm.as_deref()).unwrap(), want);
    }

    #[test]
    fn slice_maps_match_the_interpreter(
        dims in dims_strategy(),
        bounds in proptest::collection::vec((-7i64..7, -7i64..7, prop_oneof![Just(1i64), Just(2), Just(-1), Just(-2), Just(3)]), 1..5),
        with_axes in any::<bool>(),
    ) {
        let n = bounds.len().min(dims.len());
        let starts: Vec<i64> = bounds[..n].iter().map(|b| b.0).collect();
        let ends: Vec<i64> = bounds[..n].iter().map(|b| b.1).collect();
        let steps: Vec<i64> = bounds[..n].iter().map(|b| b.2).collect();
        // Axes counted from the end (negative) when asked, else the default leading axes.
        let axes: Option<Vec<i64>> = with_axes.then(|| (0..n as i64).map(|a| -1 - a).collect());
        let rest = vec![ints(&starts), ints(&ends), axes.as_deref().and_then(ints), ints(&steps)];
        let want = interpreted(&Op::Slice, &dims, &rest);
        let got = gather_map::slice(&dims, &starts, &ends, axes.as_deref(), Some(&steps));
        match (got, want) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (got, want) => prop_assert_eq!(got.is_err(), want.is_err(), "{:?} / {:?}", got, want),
        }
    }

    #[test]
    fn pad_maps_match_the_interpreter(
        dims in dims_strategy(),
        amounts in proptest::collection::vec((-2i64..3, -2i64..7), 4),
        with_axes in any::<bool>(),
        mode in prop_oneof![Just(PadMode::Constant), Just(PadMode::Reflect), Just(PadMode::Edge), Just(PadMode::Wrap)],
    ) {
        let rank = dims.len();
        let (n, axes): (usize, Option<Vec<i64>>) = if with_axes && rank > 1 {
            (1, Some(vec![-1]))
        } else {
            (rank, None)
        };
        let pads: Vec<i64> = amounts[..n]
            .iter()
            .map(|a| a.0)
            .chain(amounts[..n].iter().map(|a| a.1))
            .collect();
        let rest = vec![ints(&pads), Some(Tensor::scalar_f32(0.0)), axes.as_deref().and_then(ints)];
        let op = Op::Pad { mode };
        let want = interpreted(&op, &dims, &rest);
        let got = gather_map::pad(&dims, &pads, axes.as_deref(), mode);
        match (got, want) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (got, want) => prop_assert_eq!(got.is_err(), want.is_err(), "{:?} / {:?}", got, want),
        }
    }
}
