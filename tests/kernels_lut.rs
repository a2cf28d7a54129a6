//! Table lookup: every ISA variant bit-identical to the scalar kernel, and tables built by
//! `build_table` equal to the interpreter's DequantizeLinear → operator → QuantizeLinear on
//! every input byte.

mod kernels_common;

use kernels_common::simd_isas;
use proptest::prelude::*;
use xq::interp::kernels::eval;
use xq::ir::op::{Op, QuantAttrs, UnaryOp};
use xq::ir::{pointwise, Tensor, TensorData};
use xq::kernels::elementwise::Storage;
use xq::kernels::lut::{build_table, Lut};
use xq::kernels::{Isa, OutputRange, QuantParams};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn simd_variants_match_scalar(
        table in prop::collection::vec(any::<i8>(), 256),
        x in prop::collection::vec(any::<i8>(), 0..=1000),
        start in 0usize..64,
    ) {
        let table: [i8; 256] = table.try_into().unwrap();
        let start = start.min(x.len());
        let mut want = vec![0i8; x.len()];
        Lut::new(Isa::Scalar, table).unwrap().run(&x, &mut want).unwrap();
        prop_assert!(x.iter().zip(&want).all(|(&b, &v)| v == table[b as u8 as usize]));
        for lut in simd_isas().into_iter().flat_map(|isa| Lut::each_variant(isa, table).unwrap()) {
            let isa = lut.kernel_name();
            // A guard byte after the output catches writes past the end.
            let mut got = vec![0x55i8; x.len() - start + 1];
            let n = got.len() - 1;
            lut.run(&x[start..], &mut got[..n]).unwrap();
            prop_assert_eq!(&got[..n], &want[start..], "{}", isa);
            prop_assert_eq!(got[n], 0x55, "{} wrote past the end", isa);
            let mut xy = x.clone();
            lut.run_in_place(&mut xy);
            prop_assert_eq!(&xy, &want, "{} in place", isa);
        }
    }
}

/// The interpreter's DequantizeLinear → `op` → QuantizeLinear on all 256 input bytes, as
/// carried int8 bytes (uint8 tensors as `u - 128`).
fn interpreted(op: UnaryOp, x: QuantParams, y: QuantParams, storage: Storage) -> Vec<i8> {
    let off = storage.offset();
    let bytes: Vec<i8> = (0..=255u8).map(|b| b as i8).collect();
    let ints = |v: Vec<i32>, dims: Vec<usize>| {
        match storage {
            Storage::Int8 => Tensor::new(dims, TensorData::I8(v.iter().map(|&q| q as i8).collect())),
            Storage::Uint8 => Tensor::new(dims, TensorData::U8(v.iter().map(|&q| q as u8).collect())),
        }
        .unwrap()
    };
    let input = ints(bytes.iter().map(|&b| b as i32 + off).collect(), vec![256]);
    let (sx, zx) = (
        Tensor::scalar_f32(x.scale),
        ints(vec![x.zero_point + off], vec![]),
    );
    let (sy, zy) = (
        Tensor::scalar_f32(y.scale),
        ints(vec![y.zero_point + off], vec![]),
    );
    let run = |op: &Op, inputs: &[&Tensor]| {
        let inputs: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
        eval(op, &inputs).unwrap().remove(0)
    };
    let real = run(&Op::DequantizeLinear(QuantAttrs::default()), &[&input, &sx, &zx]);
    let out = run(
        &Op::QuantizeLinear(QuantAttrs::default()),
        &[&run(&Op::Unary(op), &[&real]), &sy, &zy],
    );
    match out.data() {
        TensorData::I8(v) => v.clone(),
        TensorData::U8(v) => v.iter().map(|&u| (u as i32 - 128) as i8).collect(),
        other => panic!("unexpected output {other:?}"),
    }
}

#[test]
fn tables_equal_the_interpreted_qdq_operator_on_every_byte() {
    let qparams = [
        (
            QuantParams {
                scale: 0.05,
                zero_point: 0,
            },
            QuantParams {
                scale: 0.02,
                zero_point: -10,
            },
        ),
        (
            QuantParams {
                scale: 0.1,
                zero_point: -128,
            },
            QuantParams {
                scale: 1.0 / 255.0,
                zero_point: -128,
            },
        ),
        (
            QuantParams {
                scale: 0.0231,
                zero_point: 17,
            },
            QuantParams {
                scale: 0.0117,
                zero_point: 3,
            },
        ),
        (
            QuantParams {
                scale: 3.7e-3,
                zero_point: 127,
            },
            QuantParams {
                scale: 0.9,
                zero_point: -77,
            },
        ),
        (
            QuantParams {
                scale: 1e-5,
                zero_point: 1,
            },
            QuantParams {
                scale: 1e-6,
                zero_point: 0,
            },
        ),
    ];
    for op in [UnaryOp::HardSwish, UnaryOp::Sigmoid, UnaryOp::Tanh] {
        for (x, y) in qparams {
            for storage in [Storage::Int8, Storage::Uint8] {
                let table = build_table(x, y, OutputRange::FULL, storage, |a, b| {
                    pointwise::map(&Op::Unary(op), a, b)
                })
                .unwrap();
                let want = interpreted(op, x, y, storage);
                // Byte `b`'s entry is `table[b as u8]`; `interpreted` lists bytes 0..=255 alike.
                assert_eq!(table.to_vec(), want, "{op:?} {x:?} {y:?} {storage:?}");
            }
        }
    }
}
