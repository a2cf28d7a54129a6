//! The scalar `f32` definitions of the element-wise unary operators: one function per
//! operator, applied to a slice by [`map`]. The interpreter runs them on `f32` tensors, and a
//! lowering that tabulates an int8 operator (dequantize → operator → quantize on each of the
//! 256 input bytes) calls the same [`map`], so both give the same bits.

use super::op::{Op, UnaryOp};
use crate::{Error, Result};

/// Whether `op` is an element-wise unary operator with an `f32` definition here (Relu,
/// Sigmoid, Tanh, HardSwish, HardSigmoid, LeakyRelu, Gelu, Erf, Exp, Sqrt, Log, Neg, Abs,
/// Reciprocal, Floor, Ceil, Round), i.e. one [`map`] accepts.
pub fn is_pointwise(op: &Op) -> bool {
    match op {
        Op::Unary(u) => *u != UnaryOp::Not,
        Op::LeakyRelu { .. } | Op::HardSigmoid { .. } | Op::Gelu { .. } => true,
        _ => false,
    }
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
            UnaryOp::Sigmoid => each(x, y, sigmoid),
            UnaryOp::Tanh => each(x, y, f32::tanh),
            UnaryOp::HardSwish => each(x, y, |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
            UnaryOp::Sqrt => each(x, y, f32::sqrt),
            UnaryOp::Exp => each(x, y, f32::exp),
            UnaryOp::Erf => each(x, y, libm::erff),
            UnaryOp::Neg => each(x, y, |v| -v),
            UnaryOp::Abs => each(x, y, f32::abs),
            UnaryOp::Reciprocal => each(x, y, |v| 1.0 / v),
            UnaryOp::Log => each(x, y, f32::ln),
            UnaryOp::Floor => each(x, y, f32::floor),
            UnaryOp::Ceil => each(x, y, f32::ceil),
            UnaryOp::Round => each(x, y, f32::round_ties_even),
            UnaryOp::Not => Err(not_pointwise(op)),
        },
        Op::LeakyRelu { alpha } => each(x, y, |v| if v >= 0.0 { v } else { alpha * v }),
        Op::HardSigmoid { alpha, beta } => each(x, y, |v| (alpha * v + beta).clamp(0.0, 1.0)),
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
        } => each(x, y, |v| {
            0.5 * v * (1.0 + libm::erff(v / std::f32::consts::SQRT_2))
        }),
        _ => Err(not_pointwise(op)),
    }
}

/// `1 / (1 + e^-x)`, computed through `e^x` for negative `x` so that it never overflows.
fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
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
        map(&Op::Unary(UnaryOp::Sigmoid), &[-100.0, 0.0, 100.0], &mut y[..3]).unwrap();
        assert_eq!(&y[..3], &[(-100f32).exp() / (1.0 + (-100f32).exp()), 0.5, 1.0]);
    }
}
