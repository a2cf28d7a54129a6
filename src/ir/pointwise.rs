//! The scalar `f32` definitions of the element-wise unary operators: one function per
//! operator, applied to a slice by [`map`]. The interpreter runs them on `f32` tensors, and a
//! lowering that tabulates an int8 operator (dequantize → operator → quantize on each of the
//! 256 input bytes) calls the same [`map`], so both give the same bits. Erf and GELU are
//! [`crate::fmath`]'s vectorized definitions (the same bits on every ISA).

use super::op::{BinaryOp, Op, UnaryOp};
use crate::fmath::{self, Function};
use crate::{Error, Result};

/// Whether `op` is an element-wise unary operator with an `f32` definition here (Relu,
/// Sigmoid, Tanh, HardSwish, HardSigmoid, LeakyRelu, Elu, Celu, Selu, Softplus, Softsign,
/// Mish, Gelu, Erf, Exp, Sqrt, Log, Neg, Abs, Reciprocal, Floor, Ceil, Round, Cos, Sin), i.e. one
/// [`map`] accepts.
pub fn is_pointwise(op: &Op) -> bool {
    match op {
        Op::Unary(u) => *u != UnaryOp::Not,
        Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Elu { .. }
        | Op::Celu { .. }
        | Op::Selu { .. }
        | Op::Gelu { .. } => true,
        _ => false,
    }
}

/// Whether `op` may be part of a subgraph that computes one `f32` value from one `f32` value
/// per element: a point-wise operator ([`is_pointwise`]), Clip, or an arithmetic binary
/// operator (Add, Sub, Mul, Div, Pow, Max, Min, PRelu). Its other operands must be one-element
/// constants for that, which the caller checks.
pub fn is_elementwise_arithmetic(op: &Op) -> bool {
    is_pointwise(op)
        || matches!(
            op,
            Op::Clip
                | Op::Binary(
                    BinaryOp::Add
                        | BinaryOp::Sub
                        | BinaryOp::Mul
                        | BinaryOp::Div
                        | BinaryOp::Pow
                        | BinaryOp::Max
                        | BinaryOp::Min
                        | BinaryOp::PRelu
                )
        )
}

/// `y[i] = op(x[i])` for an operator [`is_pointwise`] accepts. The operator is chosen once,
/// outside the loop (one loop per operator). Fails when `op` is not point-wise or the slices
/// differ in length.
pub fn map(op: &Op, x: &[f32], y: &mut [f32]) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::Internal(format!(
            "point-wise {}: {} inputs but {} outputs",
            op.onnx_name(),
            x.len(),
            y.len()
        )));
    }
    match *op {
        Op::Unary(u) => match u {
            UnaryOp::Relu => each(x, y, |v| v.max(0.0)),
            UnaryOp::Sigmoid => {
                fmath::map(Function::Sigmoid, x, y);
                Ok(())
            }
            UnaryOp::Silu => {
                fmath::map(Function::Silu, x, y);
                Ok(())
            }
            UnaryOp::Tanh => each(x, y, f32::tanh),
            UnaryOp::HardSwish => each(x, y, |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
            UnaryOp::Sqrt => each(x, y, f32::sqrt),
            UnaryOp::Exp => each(x, y, f32::exp),
            UnaryOp::Erf => {
                fmath::map(Function::Erf, x, y);
                Ok(())
            }
            UnaryOp::Neg => each(x, y, |v| -v),
            UnaryOp::Abs => each(x, y, f32::abs),
            UnaryOp::Reciprocal => each(x, y, |v| 1.0 / v),
            UnaryOp::Log => each(x, y, f32::ln),
            UnaryOp::Floor => each(x, y, f32::floor),
            UnaryOp::Ceil => each(x, y, f32::ceil),
            UnaryOp::Round => each(x, y, f32::round_ties_even),
            UnaryOp::Softplus => each(x, y, softplus),
            UnaryOp::Softsign => each(x, y, |v| v / (1.0 + v.abs())),
            UnaryOp::Mish => each(x, y, |v| v * softplus(v).tanh()),
            UnaryOp::Cos => each(x, y, f32::cos),
            UnaryOp::Sin => each(x, y, f32::sin),
            UnaryOp::Not => Err(not_pointwise(op)),
        },
        Op::LeakyRelu { alpha } => each(x, y, |v| if v >= 0.0 { v } else { alpha * v }),
        Op::HardSigmoid { alpha, beta } => each(x, y, |v| (alpha * v + beta).clamp(0.0, 1.0)),
        Op::Elu { alpha } => each(x, y, |v| if v >= 0.0 { v } else { alpha * v.exp_m1() }),
        Op::Celu { alpha } => each(x, y, |v| v.max(0.0) + (alpha * (v / alpha).exp_m1()).min(0.0)),
        Op::Selu { alpha, gamma } => each(x, y, |v| gamma * if v > 0.0 { v } else { alpha * v.exp_m1() }),
        Op::Gelu {
            tanh_approximation: true,
        } => {
            let c = (2.0f32 / std::f32::consts::PI).sqrt();
            each(x, y, |v| {
                0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
            })
        }
        Op::Gelu {
            tanh_approximation: false,
        } => {
            fmath::map(Function::Gelu, x, y);
            Ok(())
        }
        _ => Err(not_pointwise(op)),
    }
}

/// `ln(1 + e^x)`, as `x + ln(1 + e^-x)` for positive `x` so that it never overflows.
fn softplus(v: f32) -> f32 {
    if v > 0.0 {
        v + (-v).exp().ln_1p()
    } else {
        v.exp().ln_1p()
    }
}

/// The loop of one operator (`x` and `y` have the same length).
#[inline(always)]
fn each(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) -> Result<()> {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f(v);
    }
    Ok(())
}

fn not_pointwise(op: &Op) -> Error {
    Error::Internal(format!("{} is not a point-wise f32 operator", op.onnx_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_the_f32_unary_operators() {
        assert!(is_pointwise(&Op::Unary(UnaryOp::HardSwish)));
        assert!(is_pointwise(&Op::Gelu {
            tanh_approximation: false
        }));
        assert!(is_pointwise(&Op::LeakyRelu { alpha: 0.1 }));
        assert!(is_pointwise(&Op::Selu {
            alpha: 1.0,
            gamma: 1.0
        }));
        assert!(is_pointwise(&Op::Unary(UnaryOp::Softplus)));
        assert!(!is_pointwise(&Op::Unary(UnaryOp::Not)));
        assert!(!is_pointwise(&Op::Clip));
        let mut y = [0.0; 2];
        assert!(map(&Op::Unary(UnaryOp::Not), &[0.0; 2], &mut y).is_err());
        assert!(map(&Op::MatMul, &[0.0; 2], &mut y).is_err());
        assert!(map(&Op::Unary(UnaryOp::Relu), &[0.0; 3], &mut y).is_err());
    }

    #[test]
    fn computes_the_definitions() {
        let x = [-3.0f32, -1.5, 0.0, 1.5, 3.0];
        let mut y = [0.0; 5];
        map(&Op::Unary(UnaryOp::HardSwish), &x, &mut y).unwrap();
        assert_eq!(y, [-0.0, -0.375, 0.0, 1.125, 3.0]);
        map(
            &Op::HardSigmoid {
                alpha: 0.5,
                beta: 0.5,
            },
            &x,
            &mut y,
        )
        .unwrap();
        assert_eq!(y, [0.0, 0.0, 0.5, 1.0, 1.0]);
        map(&Op::LeakyRelu { alpha: 0.5 }, &x, &mut y).unwrap();
        assert_eq!(y, [-1.5, -0.75, 0.0, 1.5, 3.0]);
        map(&Op::Elu { alpha: 2.0 }, &x, &mut y).unwrap();
        assert_eq!(
            y,
            [2.0 * (-3f32).exp_m1(), 2.0 * (-1.5f32).exp_m1(), 0.0, 1.5, 3.0]
        );
        map(&Op::Celu { alpha: 2.0 }, &x, &mut y).unwrap();
        assert_eq!(
            y,
            [2.0 * (-1.5f32).exp_m1(), 2.0 * (-0.75f32).exp_m1(), 0.0, 1.5, 3.0]
        );
        map(
            &Op::Selu {
                alpha: 2.0,
                gamma: 0.5,
            },
            &x,
            &mut y,
        )
        .unwrap();
        assert_eq!(y, [(-3f32).exp_m1(), (-1.5f32).exp_m1(), 0.0, 0.75, 1.5]);
        map(&Op::Unary(UnaryOp::Softsign), &x, &mut y).unwrap();
        assert_eq!(y, [-0.75, -0.6, 0.0, 0.6, 0.75]);
        let big = [-200.0f32, 0.0, 200.0];
        map(&Op::Unary(UnaryOp::Softplus), &big, &mut y[..3]).unwrap();
        assert_eq!((y[0], y[2]), (0.0, 200.0));
        assert!((y[1] - std::f32::consts::LN_2).abs() < 1e-7);
        map(&Op::Unary(UnaryOp::Mish), &big, &mut y[..3]).unwrap();
        assert_eq!(&y[..3], &[-0.0, 0.0, 200.0]);
        // e^-100 is below the smallest normal f32: flushed to 0, as `fmath::exp` does.
        map(&Op::Unary(UnaryOp::Sigmoid), &[-100.0, 0.0, 100.0], &mut y[..3]).unwrap();
        assert_eq!(&y[..3], &[0.0, 0.5, 1.0]);
        let mid = [-7.5f32, -1.25, 0.3, 2.0, 9.0];
        map(&Op::Unary(UnaryOp::Sigmoid), &mid, &mut y).unwrap();
        for (&v, &got) in mid.iter().zip(&y) {
            let want = 1.0 / (1.0 + (-f64::from(v)).exp());
            assert!(
                (f64::from(got) - want).abs() <= 4.0 * f64::from(f32::EPSILON) * want,
                "sigmoid({v}) = {got}"
            );
        }
        let special = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY];
        map(&Op::Unary(UnaryOp::Sigmoid), &special, &mut y[..3]).unwrap();
        assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 1.0);
    }
}
