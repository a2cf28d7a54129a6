//! Element-wise operators: unary maps, broadcast binary arithmetic, Clip, Cast.

use crate::ir::op::{BinaryOp, CompareOp, LogicalOp, Op, UnaryOp};
use crate::ir::pointwise;
use crate::ir::shapes::broadcast;
use crate::ir::{DType, Tensor, TensorData};
use crate::{Error, Result};
// f32 → bfloat16, rounding to nearest even (NaN stays NaN).
use crate::qscheme::bf16::from_f32 as f32_to_bf16;

/// Element-wise unary operator.
pub fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        let dims = x.dims().to_vec();
        let data = match (op, x.data()) {
            (UnaryOp::Relu, TensorData::I32(v)) => TensorData::I32(v.iter().map(|&a| a.max(0)).collect()),
            (UnaryOp::Relu, TensorData::I64(v)) => TensorData::I64(v.iter().map(|&a| a.max(0)).collect()),
            (UnaryOp::Relu, TensorData::I8(v)) => TensorData::I8(v.iter().map(|&a| a.max(0)).collect()),
            (UnaryOp::Neg, TensorData::I32(v)) => {
                TensorData::I32(v.iter().map(|&a| a.wrapping_neg()).collect())
            }
            (UnaryOp::Neg, TensorData::I64(v)) => {
                TensorData::I64(v.iter().map(|&a| a.wrapping_neg()).collect())
            }
            (UnaryOp::Neg, TensorData::I8(v)) => {
                TensorData::I8(v.iter().map(|&a| a.wrapping_neg()).collect())
            }
            (UnaryOp::Abs, TensorData::I32(v)) => {
                TensorData::I32(v.iter().map(|&a| a.wrapping_abs()).collect())
            }
            (UnaryOp::Abs, TensorData::I64(v)) => {
                TensorData::I64(v.iter().map(|&a| a.wrapping_abs()).collect())
            }
            (UnaryOp::Abs, TensorData::I8(v)) => {
                TensorData::I8(v.iter().map(|&a| a.wrapping_abs()).collect())
            }
            (UnaryOp::Relu | UnaryOp::Abs, TensorData::U8(v)) => TensorData::U8(v.clone()),
            (UnaryOp::Not, TensorData::Bool(v)) => TensorData::Bool(v.iter().map(|&a| !a).collect()),
            _ => {
                return Err(Error::Unsupported(format!(
                    "{} on {} tensors",
                    op.onnx_name(),
                    x.dtype()
                )))
            }
        };
        return Tensor::new(dims, data);
    }
    if op == UnaryOp::Not {
        return Err(Error::DtypeMismatch("Not needs a bool tensor".into()));
    }
    map_pointwise(&Op::Unary(op), x)
}

/// Applies a point-wise operator ([`pointwise::map`]) to an f32 tensor.
fn map_pointwise(op: &Op, x: &Tensor) -> Result<Tensor> {
    let v = x.as_f32()?;
    let mut y = vec![0f32; v.len()];
    pointwise::map(op, v, &mut y)?;
    Tensor::from_f32(x.dims().to_vec(), y)
}

/// Combines two broadcast operands element by element.
pub fn broadcast_zip<T: Copy, U>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    f: impl Fn(T, T) -> U,
) -> Result<(Vec<usize>, Vec<U>)> {
    let out = broadcast(ad, bd)?;
    // An operand with every output element holds them in the output's order (broadcasting
    // only adds axes of 1 to it).
    let total: usize = out.iter().product();
    if a.len() == total && b.len() == total {
        return Ok((out, a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()));
    }
    if b.len() == 1 && a.len() == total {
        let y = b[0];
        return Ok((out, a.iter().map(|&x| f(x, y)).collect()));
    }
    if a.len() == 1 && b.len() == total {
        let x = a[0];
        return Ok((out, b.iter().map(|&y| f(x, y)).collect()));
    }
    let mut res = Vec::with_capacity(total);
    broadcast_walk(a, ad, b, bd, &out, |_, v| res.push(v), f);
    Ok((out, res))
}

/// [`broadcast_zip`] into `dst`, whose length must be the element count of `out`, the
/// broadcast shape of `ad` and `bd` (the caller checked it); the same values in the same
/// order, and no allocation for ranks up to eight.
pub fn broadcast_zip_into<T: Copy, U>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    out: &[usize],
    dst: &mut [U],
    f: impl Fn(T, T) -> U,
) -> Result<()> {
    if dst.len() != out.iter().product::<usize>() {
        return Err(Error::Internal(format!(
            "{} output elements for shape {out:?}",
            dst.len()
        )));
    }
    // As in [`broadcast_zip`]: an operand with every output element is in the output's order.
    let total = dst.len();
    if a.len() == total && b.len() == total {
        dst.iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(d, (&x, &y))| *d = f(x, y));
    } else if b.len() == 1 && a.len() == total {
        let y = b[0];
        dst.iter_mut().zip(a).for_each(|(d, &x)| *d = f(x, y));
    } else if a.len() == 1 && b.len() == total {
        let x = a[0];
        dst.iter_mut().zip(b).for_each(|(d, &y)| *d = f(x, y));
    } else {
        broadcast_walk(a, ad, b, bd, out, |k, v| dst[k] = v, f);
    }
    Ok(())
}

/// Whether `out` is the broadcast shape of `ad` and `bd` (checked without allocating).
pub fn is_broadcast_of(ad: &[usize], bd: &[usize], out: &[usize]) -> bool {
    let rank = ad.len().max(bd.len());
    if out.len() != rank {
        return false;
    }
    (0..rank).all(|i| {
        let dim = |d: &[usize]| (i + d.len()).checked_sub(rank).map_or(1, |j| d[j]);
        let (x, y) = (dim(ad), dim(bd));
        let z = if x == 1 {
            y
        } else if y == 1 || x == y {
            x
        } else {
            return false;
        };
        out[i] == z
    })
}

/// Ranks whose odometer state lives on the stack.
const STACK_RANK: usize = 8;

/// Calls `put(k, f(a[..], b[..]))` for every element `k` of the broadcast shape `out` (of
/// rank at least one), in row-major order.
fn broadcast_walk<T: Copy, U>(
    a: &[T],
    ad: &[usize],
    b: &[T],
    bd: &[usize],
    out: &[usize],
    mut put: impl FnMut(usize, U),
    f: impl Fn(T, T) -> U,
) {
    let rank = out.len();
    let total: usize = out.iter().product();
    if total == 0 || rank == 0 {
        if rank == 0 && total == 1 {
            put(0, f(a[0], b[0]));
        }
        return;
    }
    let mut stack = [0usize; 3 * STACK_RANK];
    let mut heap = Vec::new();
    let scratch: &mut [usize] = if rank <= STACK_RANK {
        &mut stack[..3 * rank]
    } else {
        heap.resize(3 * rank, 0);
        &mut heap
    };
    let (sa, rest) = scratch.split_at_mut(rank);
    let (sb, idx) = rest.split_at_mut(rank);
    for (s, d) in [(&mut *sa, ad), (&mut *sb, bd)] {
        let mut acc = 1;
        for i in (0..d.len()).rev() {
            let o = i + rank - d.len();
            s[o] = if d[i] == 1 { 0 } else { acc };
            acc *= d[i];
        }
    }
    let last = out[rank - 1];
    let (la, lb) = (sa[rank - 1], sb[rank - 1]);
    let (mut oa, mut ob, mut k) = (0usize, 0usize, 0usize);
    loop {
        // The innermost run, specialized for its common stride pairs (contiguous with
        // contiguous, contiguous with one repeated value) so they are slice walks.
        match (la, lb) {
            (1, 1) => {
                for (&x, &y) in a[oa..oa + last].iter().zip(&b[ob..ob + last]) {
                    put(k, f(x, y));
                    k += 1;
                }
            }
            (1, 0) => {
                let y = b[ob];
                for &x in &a[oa..oa + last] {
                    put(k, f(x, y));
                    k += 1;
                }
            }
            (0, 1) => {
                let x = a[oa];
                for &y in &b[ob..ob + last] {
                    put(k, f(x, y));
                    k += 1;
                }
            }
            _ => {
                for j in 0..last {
                    put(k, f(a[oa + j * la], b[ob + j * lb]));
                    k += 1;
                }
            }
        }
        // Advance the odometer over all axes but the last.
        let mut axis = rank - 1;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            oa += sa[axis];
            ob += sb[axis];
            if idx[axis] < out[axis] {
                break;
            }
            oa -= sa[axis] * idx[axis];
            ob -= sb[axis] * idx[axis];
            idx[axis] = 0;
        }
    }
}

macro_rules! int_binary {
    ($op:expr, $a:expr, $b:expr, $ad:expr, $bd:expr, $variant:ident) => {{
        let op = $op;
        let (dims, v) = match op {
            BinaryOp::Add => broadcast_zip($a, $ad, $b, $bd, |x, y| x.wrapping_add(y))?,
            BinaryOp::Sub => broadcast_zip($a, $ad, $b, $bd, |x, y| x.wrapping_sub(y))?,
            BinaryOp::Mul => broadcast_zip($a, $ad, $b, $bd, |x, y| x.wrapping_mul(y))?,
            BinaryOp::Div => {
                if $b.iter().any(|&y| y == 0) {
                    return Err(Error::InvalidArgument {
                        name: "B",
                        reason: "integer division by zero".into(),
                    });
                }
                broadcast_zip($a, $ad, $b, $bd, |x, y| x.wrapping_div(y))?
            }
            BinaryOp::Max => broadcast_zip($a, $ad, $b, $bd, |x, y| std::cmp::max(x, y))?,
            BinaryOp::Min => broadcast_zip($a, $ad, $b, $bd, |x, y| std::cmp::min(x, y))?,
            BinaryOp::PRelu => broadcast_zip($a, $ad, $b, $bd, |x, y| {
                if x < Default::default() {
                    x.wrapping_mul(y)
                } else {
                    x
                }
            })?,
            BinaryOp::Pow => return Err(Error::Internal("integer Pow reached the wrapping path".into())),
        };
        Tensor::new(dims, TensorData::$variant(v))
    }};
}

/// Broadcast binary arithmetic.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    if op == BinaryOp::Pow {
        return pow(a, b);
    }
    match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            let (dims, v) = match op {
                BinaryOp::Add => broadcast_zip(x, ad, y, bd, |p, q| p + q)?,
                BinaryOp::Sub => broadcast_zip(x, ad, y, bd, |p, q| p - q)?,
                BinaryOp::Mul => broadcast_zip(x, ad, y, bd, |p, q| p * q)?,
                BinaryOp::Div => broadcast_zip(x, ad, y, bd, |p, q| p / q)?,
                // numpy.maximum / minimum semantics: NaN wins.
                BinaryOp::Max => broadcast_zip(x, ad, y, bd, |p, q| if p.is_nan() || p > q { p } else { q })?,
                BinaryOp::Min => broadcast_zip(x, ad, y, bd, |p, q| if p.is_nan() || p < q { p } else { q })?,
                BinaryOp::PRelu => broadcast_zip(x, ad, y, bd, prelu)?,
                BinaryOp::Pow => return Err(Error::Internal("f32 Pow reached the direct path".into())),
            };
            Tensor::from_f32(dims, v)
        }
        (TensorData::I64(x), TensorData::I64(y)) => int_binary!(op, x, y, ad, bd, I64),
        (TensorData::I32(x), TensorData::I32(y)) => int_binary!(op, x, y, ad, bd, I32),
        (TensorData::I8(x), TensorData::I8(y)) => int_binary!(op, x, y, ad, bd, I8),
        (TensorData::U8(x), TensorData::U8(y)) => int_binary!(op, x, y, ad, bd, U8),
        _ => Err(Error::DtypeMismatch(format!(
            "{} of {} and {} tensors",
            op.onnx_name(),
            a.dtype(),
            b.dtype()
        ))),
    }
}

/// The f32 arithmetic of [`binary`] (every operator but Pow) into `dst`, laid out as the
/// broadcast shape `out` of the operands (see [`broadcast_zip_into`]): the same values.
pub fn binary_f32_into(
    op: BinaryOp,
    (x, ad): (&[f32], &[usize]),
    (y, bd): (&[f32], &[usize]),
    out: &[usize],
    dst: &mut [f32],
) -> Result<()> {
    match op {
        BinaryOp::Add => broadcast_zip_into(x, ad, y, bd, out, dst, |p, q| p + q),
        BinaryOp::Sub => broadcast_zip_into(x, ad, y, bd, out, dst, |p, q| p - q),
        BinaryOp::Mul => broadcast_zip_into(x, ad, y, bd, out, dst, |p, q| p * q),
        BinaryOp::Div => broadcast_zip_into(x, ad, y, bd, out, dst, |p, q| p / q),
        BinaryOp::Max => broadcast_zip_into(
            x,
            ad,
            y,
            bd,
            out,
            dst,
            |p, q| if p.is_nan() || p > q { p } else { q },
        ),
        BinaryOp::Min => broadcast_zip_into(
            x,
            ad,
            y,
            bd,
            out,
            dst,
            |p, q| if p.is_nan() || p < q { p } else { q },
        ),
        BinaryOp::PRelu => broadcast_zip_into(x, ad, y, bd, out, dst, prelu),
        BinaryOp::Pow => Err(Error::Internal("f32 Pow reached the direct path".into())),
    }
}

/// ONNX PRelu of one element: `x` where `x >= 0` or NaN, `slope * x` where `x < 0`.
fn prelu(x: f32, slope: f32) -> f32 {
    if x < 0.0 {
        slope * x
    } else {
        x
    }
}

/// `x^y` in f32 (numpy's float32 power): `x · x` for the exponent 2 (the square written out
/// by exporters of RMS norms, as ONNX Runtime computes it), `powf` otherwise.
fn pow_f32(x: f32, y: f32) -> f32 {
    if y == 2.0 {
        x * x
    } else {
        x.powf(y)
    }
}

fn pow(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dtype() == DType::F32 && b.dtype() == DType::F32 {
        let (dims, v) = broadcast_zip(a.as_f32()?, a.dims(), b.as_f32()?, b.dims(), pow_f32)?;
        return Tensor::new(dims, TensorData::F32(v));
    }
    let to_f64 = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            _ => return Err(Error::Unsupported(format!("Pow on {} tensors", t.dtype()))),
        })
    };
    let (x, y) = (to_f64(a)?, to_f64(b)?);
    let (dims, v) = broadcast_zip(&x, a.dims(), &y, b.dims(), f64::powf)?;
    let data = match a.dtype() {
        DType::F32 => TensorData::F32(v.iter().map(|&z| z as f32).collect()),
        DType::I64 => TensorData::I64(v.iter().map(|&z| z as i64).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&z| z as i32).collect()),
        d => return Err(Error::Unsupported(format!("Pow on {d} tensors"))),
    };
    Tensor::new(dims, data)
}

/// Clamps to optional scalar bounds.
pub fn clip(x: &Tensor, min: Option<&Tensor>, max: Option<&Tensor>) -> Result<Tensor> {
    let (lo, hi) = clip_bounds(min, max)?;
    let dims = x.dims().to_vec();
    let data = match x.data() {
        TensorData::F32(v) => {
            let mut y = vec![0f32; v.len()];
            clip_f32_into(v, lo, hi, &mut y);
            TensorData::F32(y)
        }
        other => {
            let (lo, hi) = (lo.unwrap_or(f64::MIN), hi.unwrap_or(f64::MAX));
            macro_rules! clamp_int {
                ($v:expr, $variant:ident, $t:ty) => {
                    TensorData::$variant(
                        $v.iter()
                            .map(|&a| {
                                // Comparisons, not clamp: with min > max every value becomes max (numpy).
                                let f = if (a as f64) < lo { lo } else { a as f64 };
                                (if f > hi { hi } else { f }) as $t
                            })
                            .collect(),
                    )
                };
            }
            match other {
                TensorData::I64(v) => clamp_int!(v, I64, i64),
                TensorData::I32(v) => clamp_int!(v, I32, i32),
                TensorData::I8(v) => clamp_int!(v, I8, i8),
                TensorData::U8(v) => clamp_int!(v, U8, u8),
                _ => return Err(Error::Unsupported(format!("Clip of {} tensors", x.dtype()))),
            }
        }
    };
    Tensor::new(dims, data)
}

/// The optional scalar bounds of Clip.
pub fn clip_bounds(min: Option<&Tensor>, max: Option<&Tensor>) -> Result<(Option<f64>, Option<f64>)> {
    let scalar = |t: Option<&Tensor>| -> Result<Option<f64>> {
        match t {
            None => Ok(None),
            Some(t) if t.numel() == 1 => Ok(Some(match t.data() {
                TensorData::F32(v) => v[0] as f64,
                _ => t.to_i64_vec()?[0] as f64,
            })),
            Some(t) => Err(Error::ShapeMismatch(format!(
                "Clip bound of shape {:?} is not a scalar",
                t.dims()
            ))),
        }
    };
    Ok((scalar(min)?, scalar(max)?))
}

/// The f32 Clip of [`clip`] into `y` (same length as `v`).
pub fn clip_f32_into(v: &[f32], lo: Option<f64>, hi: Option<f64>, y: &mut [f32]) {
    let lo = lo.map_or(f32::NEG_INFINITY, |l| l as f32);
    let hi = hi.map_or(f32::INFINITY, |h| h as f32);
    // Comparisons (not min/max) so NaN passes through, as in numpy.clip.
    for (d, &a) in y.iter_mut().zip(v) {
        let a = if a < lo { lo } else { a };
        *d = if a > hi { hi } else { a };
    }
}

trait AsF64: Copy {
    fn f64(self) -> f64;
}
macro_rules! as_f64 {
    ($($t:ty),*) => { $(impl AsF64 for $t { fn f64(self) -> f64 { self as f64 } })* };
}
as_f64!(f32, i8, u8, i32, i64);
impl AsF64 for bool {
    fn f64(self) -> f64 {
        self as u8 as f64
    }
}

fn cast_from<T: AsF64>(v: &[T], to: DType, src_float: bool) -> Result<TensorData> {
    Ok(match to {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x.f64() as f32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x.f64() as i64 as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x.f64() as i64 as u8).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x.f64() as i64 as i32).collect()),
        DType::I64 => TensorData::I64(v.iter().map(|&x| x.f64() as i64).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x.f64() != 0.0).collect()),
        other => {
            let _ = src_float;
            return Err(Error::Unsupported(format!("Cast to {other}")));
        }
    })
}

/// [`cast_from`]'s values written into `dst` (of the target type; the same length).
fn cast_slice_into<T: AsF64>(v: &[T], dst: &mut Tensor) -> Result<()> {
    match dst.dtype() {
        DType::F32 => dst
            .as_f32_mut()?
            .iter_mut()
            .zip(v)
            .for_each(|(d, &x)| *d = x.f64() as f32),
        DType::I8 => dst
            .as_i8_mut()?
            .iter_mut()
            .zip(v)
            .for_each(|(d, &x)| *d = x.f64() as i64 as i8),
        DType::U8 => dst
            .as_u8_mut()?
            .iter_mut()
            .zip(v)
            .for_each(|(d, &x)| *d = x.f64() as i64 as u8),
        DType::I32 => dst
            .as_i32_mut()?
            .iter_mut()
            .zip(v)
            .for_each(|(d, &x)| *d = x.f64() as i64 as i32),
        DType::I64 => dst
            .as_i64_mut()?
            .iter_mut()
            .zip(v)
            .for_each(|(d, &x)| *d = x.f64() as i64),
        DType::Bool => dst
            .as_bool_mut()?
            .iter_mut()
            .zip(v)
            .for_each(|(d, &x)| *d = x.f64() != 0.0),
        other => return Err(Error::Internal(format!("Cast into {other}"))),
    }
    Ok(())
}

/// [`cast`] of `x` into the tensor kept in `out` (no allocation when it has the target type
/// and `x`'s shape). Returns false, having done nothing, for the half-precision and packed
/// types, which take [`cast`].
pub fn cast_into(x: &Tensor, to: DType, out: &mut Option<Tensor>) -> Result<bool> {
    let plain = |t: DType| {
        matches!(
            t,
            DType::F32 | DType::I8 | DType::U8 | DType::I32 | DType::I64 | DType::Bool
        )
    };
    if !plain(to) || !plain(x.dtype()) {
        return Ok(false);
    }
    let d = x.dims();
    let dst = Tensor::reuse_slot(out, to, |o| o == d, || Ok(d.to_vec()))?;
    match x.data() {
        TensorData::F32(v) => cast_slice_into(v, dst)?,
        TensorData::I8(v) => cast_slice_into(v, dst)?,
        TensorData::U8(v) => cast_slice_into(v, dst)?,
        TensorData::I32(v) => cast_slice_into(v, dst)?,
        // i64 → i64/i32 must not round-trip through f64 (precision above 2^53).
        TensorData::I64(v) => match to {
            DType::I64 => dst.as_i64_mut()?.copy_from_slice(v),
            DType::I32 => dst
                .as_i32_mut()?
                .iter_mut()
                .zip(v)
                .for_each(|(d, &x)| *d = x as i32),
            _ => cast_slice_into(v, dst)?,
        },
        TensorData::Bool(v) => cast_slice_into(v, dst)?,
        TensorData::Packed { .. } => return Ok(false),
    }
    Ok(true)
}

/// [`logical`] of `a` and `b` into the tensor kept in `out` (no allocation when it has the
/// broadcast shape).
pub fn logical_into(op: LogicalOp, a: &Tensor, b: &Tensor, out: &mut Option<Tensor>) -> Result<bool> {
    if a.dtype() != DType::Bool || b.dtype() != DType::Bool {
        return Ok(false);
    }
    let (ad, bd) = (a.dims(), b.dims());
    let rank = ad.len().max(bd.len());
    let mut dims = [0usize; 8];
    if rank > dims.len() {
        return Ok(false);
    }
    let t = Tensor::reuse_slot(
        out,
        DType::Bool,
        |d| is_broadcast_of(ad, bd, d),
        || crate::ir::shapes::broadcast(ad, bd),
    )?;
    dims[..rank].copy_from_slice(t.dims());
    let dims = &dims[..rank];
    let dst = t.as_bool_mut()?;
    let (x, y) = (a.as_bool()?, b.as_bool()?);
    match op {
        LogicalOp::And => broadcast_zip_into(x, ad, y, bd, dims, dst, |p, q| p && q)?,
        LogicalOp::Or => broadcast_zip_into(x, ad, y, bd, dims, dst, |p, q| p || q)?,
        LogicalOp::Xor => broadcast_zip_into(x, ad, y, bd, dims, dst, |p, q| p != q)?,
    }
    Ok(true)
}

/// f32 → IEEE half, rounding to nearest even (overflow → inf, NaN stays NaN).
fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xFF) as i32;
    let man = bits & 0x7F_FFFF;
    if exp == 0xFF {
        return sign | 0x7C00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 112;
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let rounded = (m + (1 << (shift - 1)) - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1FFF;
    let up = rem > 0x1000 || (rem == 0x1000 && half & 1 == 1);
    sign | (half + up as u32) as u16
}

/// Element type conversion (float → integer truncates toward zero; → f16/bf16 rounds to
/// nearest even).
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    if matches!(to, DType::F16 | DType::Bf16) {
        let convert = if to == DType::F16 { f32_to_f16 } else { f32_to_bf16 };
        let bytes = x
            .to_f32_vec()?
            .into_iter()
            .flat_map(|v| convert(v).to_le_bytes())
            .collect();
        return Tensor::new(x.dims().to_vec(), TensorData::Packed { dtype: to, bytes });
    }
    let dims = x.dims().to_vec();
    let data = match x.data() {
        TensorData::F32(v) => cast_from(v, to, true)?,
        TensorData::I8(v) => cast_from(v, to, false)?,
        TensorData::U8(v) => cast_from(v, to, false)?,
        TensorData::I32(v) => cast_from(v, to, false)?,
        // i64 → i64/i32 must not round-trip through f64 (precision above 2^53).
        TensorData::I64(v) => match to {
            DType::I64 => TensorData::I64(v.clone()),
            DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
            _ => cast_from(v, to, false)?,
        },
        TensorData::Bool(v) => cast_from(v, to, false)?,
        TensorData::Packed { .. } => match to {
            DType::F32 => TensorData::F32(x.to_f32_vec()?),
            other => return Err(Error::Unsupported(format!("Cast from {} to {other}", x.dtype()))),
        },
    };
    Tensor::new(dims, data)
}

/// Element-wise comparison of two broadcast operands of the same type.
pub fn compare(op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    fn cmp<T: PartialOrd + Copy>(
        op: CompareOp,
        a: &[T],
        ad: &[usize],
        b: &[T],
        bd: &[usize],
    ) -> Result<(Vec<usize>, Vec<bool>)> {
        match op {
            CompareOp::Equal => broadcast_zip(a, ad, b, bd, |x, y| x == y),
            CompareOp::Less => broadcast_zip(a, ad, b, bd, |x, y| x < y),
            CompareOp::Greater => broadcast_zip(a, ad, b, bd, |x, y| x > y),
            CompareOp::LessOrEqual => broadcast_zip(a, ad, b, bd, |x, y| x <= y),
            CompareOp::GreaterOrEqual => broadcast_zip(a, ad, b, bd, |x, y| x >= y),
        }
    }
    let (ad, bd) = (a.dims(), b.dims());
    let (dims, v) = match (a.data(), b.data()) {
        (TensorData::F32(x), TensorData::F32(y)) => cmp(op, x, ad, y, bd)?,
        (TensorData::I64(x), TensorData::I64(y)) => cmp(op, x, ad, y, bd)?,
        (TensorData::I32(x), TensorData::I32(y)) => cmp(op, x, ad, y, bd)?,
        (TensorData::I8(x), TensorData::I8(y)) => cmp(op, x, ad, y, bd)?,
        (TensorData::U8(x), TensorData::U8(y)) => cmp(op, x, ad, y, bd)?,
        (TensorData::Bool(x), TensorData::Bool(y)) => cmp(op, x, ad, y, bd)?,
        _ => {
            return Err(Error::DtypeMismatch(format!(
                "{} of {} and {} tensors",
                op.onnx_name(),
                a.dtype(),
                b.dtype()
            )))
        }
    };
    Tensor::from_bool(dims, v)
}

/// LeakyRelu: `x` where non-negative, `alpha * x` elsewhere (f32).
pub fn leaky_relu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    map_pointwise(&Op::LeakyRelu { alpha }, x)
}

/// HardSigmoid: `clamp(alpha * x + beta, 0, 1)` (f32).
pub fn hard_sigmoid(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    map_pointwise(&Op::HardSigmoid { alpha, beta }, x)
}

/// An f32 activation with attributes that [`pointwise::map`] defines (Elu, Celu, Selu).
pub fn activation(op: &Op, x: &Tensor) -> Result<Tensor> {
    map_pointwise(op, x)
}

/// GELU, exact (erf) or with the tanh approximation.
pub fn gelu(x: &Tensor, tanh_approximation: bool) -> Result<Tensor> {
    map_pointwise(&Op::Gelu { tanh_approximation }, x)
}

/// Range(start, limit, delta) for f32, i32 and i64 scalars.
pub fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor> {
    let scalar = |t: &Tensor| -> Result<f64> {
        let v = t.to_f32_vec()?;
        if v.len() != 1 {
            return Err(Error::ShapeMismatch("Range operands must be scalars".into()));
        }
        Ok(match t.data() {
            TensorData::I64(x) => x[0] as f64,
            _ => v[0] as f64,
        })
    };
    let n = crate::ir::infer::range_len(scalar(start)?, scalar(limit)?, scalar(delta)?)?;
    match (start.data(), delta.data()) {
        (TensorData::F32(s), TensorData::F32(d)) => {
            Tensor::from_f32(vec![n], (0..n).map(|i| s[0] + i as f32 * d[0]).collect())
        }
        (TensorData::I64(s), TensorData::I64(d)) => {
            Tensor::from_i64(vec![n], (0..n as i64).map(|i| s[0] + i * d[0]).collect())
        }
        (TensorData::I32(s), TensorData::I32(d)) => {
            Tensor::from_i32(vec![n], (0..n as i32).map(|i| s[0] + i * d[0]).collect())
        }
        _ => Err(Error::DtypeMismatch(format!(
            "Range of {} and {}",
            start.dtype(),
            delta.dtype()
        ))),
    }
}

/// Element-wise logical operator on broadcast bool tensors.
pub fn logical(op: LogicalOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (x, y) = (a.as_bool()?, b.as_bool()?);
    let (dims, v) = match op {
        LogicalOp::And => broadcast_zip(x, a.dims(), y, b.dims(), |p, q| p && q)?,
        LogicalOp::Or => broadcast_zip(x, a.dims(), y, b.dims(), |p, q| p || q)?,
        LogicalOp::Xor => broadcast_zip(x, a.dims(), y, b.dims(), |p, q| p != q)?,
    };
    Tensor::from_bool(dims, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fast path of [`broadcast_zip`] and [`broadcast_zip_into`] gives numpy's
    /// broadcast, element by element from the multi-index.
    #[test]
    fn broadcasts_equal_the_index_definition() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[1, 1, 6, 5], &[1]),
            (&[6, 5], &[1, 1, 1, 1]),
            (&[1, 1, 1], &[2, 3, 4]),
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[3, 1, 1], &[2, 3, 4, 5]),
            (&[2, 3, 4, 5], &[5]),
            (&[2, 1, 4, 1], &[3, 1, 5]),
            (&[4, 5], &[1, 2, 4, 5]),
            (&[3, 1], &[1, 4]),
            (&[], &[2, 2]),
        ];
        for &(ad, bd) in cases {
            let na: usize = ad.iter().product();
            let nb: usize = bd.iter().product();
            let a: Vec<f32> = (0..na).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..nb).map(|i| 1000.0 * (i + 1) as f32).collect();
            let out = broadcast(ad, bd).unwrap();
            let total: usize = out.iter().product();
            let at = |d: &[usize], idx: &[usize]| {
                let lead = out.len() - d.len();
                d.iter()
                    .enumerate()
                    .fold(0, |acc, (i, &n)| acc * n + if n == 1 { 0 } else { idx[lead + i] })
            };
            let want: Vec<f32> = (0..total)
                .map(|mut k| {
                    let mut idx = vec![0; out.len()];
                    for axis in (0..out.len()).rev() {
                        idx[axis] = k % out[axis];
                        k /= out[axis];
                    }
                    a[at(ad, &idx)] + b[at(bd, &idx)]
                })
                .collect();
            let (dims, got) = broadcast_zip(&a, ad, &b, bd, |x, y| x + y).unwrap();
            assert_eq!((dims, &got), (out.clone(), &want), "{ad:?} + {bd:?}");
            let mut dst = vec![0f32; total];
            broadcast_zip_into(&a, ad, &b, bd, &out, &mut dst, |x, y| x + y).unwrap();
            assert_eq!(dst, want, "{ad:?} + {bd:?} into");
        }
    }

    #[test]
    fn half_precision_rounding() {
        assert_eq!(f32_to_f16(1.0), 0x3C00);
        assert_eq!(f32_to_f16(-2.0), 0xC000);
        assert_eq!(f32_to_f16(65504.0), 0x7BFF);
        assert_eq!(f32_to_f16(1e6), 0x7C00);
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(2f32.powi(-26)), 0x0000);
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3C00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02);
        assert_eq!(f32_to_bf16(1.0), 0x3F80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert!(f32_to_bf16(f32::NAN) & 0x7FC0 == 0x7FC0);
    }
}
