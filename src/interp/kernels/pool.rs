//! Max, average and global average pooling over 1 to 3 spatial axes.

use crate::ir::op::PoolAttrs;
use crate::ir::shapes::{pool_window, Window};
use crate::ir::{checked_numel, DType, Tensor};
use crate::{Error, Result};

/// Per output index along one axis: the input indices its window reads inside the input,
/// and how many window cells lie inside the padded input.
type AxisTaps = Vec<(Vec<usize>, usize)>;

fn axis_taps(
    input: usize,
    output: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pb: usize,
    pe: usize,
) -> AxisTaps {
    (0..output)
        .map(|o| {
            let mut inside = Vec::with_capacity(k);
            let mut padded = 0;
            for kk in 0..k {
                let pos = (o * stride + kk * dil) as isize - pb as isize;
                if pos < (input + pe) as isize {
                    padded += 1;
                }
                if pos >= 0 && pos < input as isize {
                    inside.push(pos as usize);
                }
            }
            (inside, padded)
        })
        .collect()
}

/// Reduces every pooling window of the f32 data `x` (N, C, spatial...) with `combine`
/// starting from `init`, then `finish(acc, cells_inside, cells_in_padded_input)`. Memory is
/// proportional to the output, never to output × window.
fn pool_reduce(
    dims: &[usize],
    win: &Window,
    x: &[f32],
    init: f32,
    combine: impl Fn(f32, f32) -> f32,
    finish: impl Fn(f32, usize, usize) -> f32,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let r = dims.len() - 2;
    if r > 3 {
        return Err(Error::Unsupported(format!(
            "pooling over {r} spatial axes (at most 3)"
        )));
    }
    let mut out_dims = dims[..2].to_vec();
    out_dims.extend(&win.output);
    let total = checked_numel(&out_dims)?;
    let sp = |v: &[usize], fill: usize| {
        let mut o = [fill; 3];
        o[3 - r..].copy_from_slice(v);
        o
    };
    let (inp, out, k) = (sp(&dims[2..], 1), sp(&win.output, 1), sp(&win.kernel, 1));
    let (st, dl) = (sp(&win.strides, 1), sp(&win.dilations, 1));
    let (pb, pe) = (sp(&win.pad_begin, 0), sp(&win.pad_end, 0));
    let taps: Vec<AxisTaps> = (0..3)
        .map(|a| axis_taps(inp[a], out[a], k[a], st[a], dl[a], pb[a], pe[a]))
        .collect();
    let in_vol: usize = inp.iter().product();
    let mut result = Vec::with_capacity(total);
    for ch in 0..dims[0] * dims[1] {
        let xc = &x[ch * in_vol..(ch + 1) * in_vol];
        for (t0, p0) in &taps[0] {
            for (t1, p1) in &taps[1] {
                for (t2, p2) in &taps[2] {
                    let mut acc = init;
                    for &i0 in t0 {
                        for &i1 in t1 {
                            let row = &xc[(i0 * inp[1] + i1) * inp[2]..][..inp[2]];
                            for &i2 in t2 {
                                acc = combine(acc, row[i2]);
                            }
                        }
                    }
                    result.push(finish(acc, t0.len() * t1.len() * t2.len(), p0 * p1 * p2));
                }
            }
        }
    }
    Ok((out_dims, result))
}

/// MaxPool (f32, i8 and u8 inputs).
pub fn max_pool(p: &PoolAttrs, x: &Tensor) -> Result<Tensor> {
    let win = pool_window(p, x.dims())?;
    let xv = x.to_f32_vec()?;
    let (dims, out) = pool_reduce(x.dims(), &win, &xv, f32::NEG_INFINITY, f32::max, |m, _, _| m)?;
    let t = Tensor::from_f32(dims, out)?;
    match x.dtype() {
        DType::F32 => Ok(t),
        d => super::elementwise::cast(&t, d),
    }
}

/// AveragePool (f32).
pub fn average_pool(p: &PoolAttrs, x: &Tensor) -> Result<Tensor> {
    let win = pool_window(p, x.dims())?;
    let include = p.count_include_pad;
    let (dims, out) = pool_reduce(
        x.dims(),
        &win,
        x.as_f32()?,
        0.0,
        |a, v| a + v,
        |sum, inside, padded| {
            let n = if include { padded } else { inside };
            if n == 0 {
                0.0
            } else {
                sum / n as f32
            }
        },
    )?;
    Tensor::from_f32(dims, out)
}

/// GlobalAveragePool: mean over all spatial axes.
pub fn global_average_pool(x: &Tensor) -> Result<Tensor> {
    let d = x.dims();
    if d.len() < 3 {
        return Err(Error::ShapeMismatch(format!(
            "GlobalAveragePool input {d:?} must have rank >= 3"
        )));
    }
    let vol: usize = d[2..].iter().product();
    let xv = x.as_f32()?;
    let out: Vec<f32> = if vol == 0 {
        vec![f32::NAN; d[0] * d[1]]
    } else {
        xv.chunks(vol)
            .map(|c| c.iter().sum::<f32>() / vol as f32)
            .collect()
    };
    let mut dims = d[..2].to_vec();
    dims.extend(std::iter::repeat_n(1, d.len() - 2));
    Tensor::from_f32(dims, out)
}
