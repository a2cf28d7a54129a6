//! Max, average and global average pooling over 1 to 3 spatial axes.

use crate::ir::op::PoolAttrs;
use crate::ir::shapes::{pool_window, Window};
use crate::ir::{checked_numel, DType, Tensor};
use crate::{Error, Result};

/// Calls `f(base, cells, padded)` for every output position in order, where `base + cell`
/// for each of `cells` is the input offset of a window cell inside the input and `padded`
/// counts the cells inside the padded input.
fn for_each_window(
    dims: &[usize],
    win: &Window,
    mut f: impl FnMut(usize, &[usize], usize),
) -> Result<Vec<usize>> {
    let r = dims.len() - 2;
    if r > 3 {
        return Err(Error::Unsupported(format!(
            "pooling over {r} spatial axes (at most 3)"
        )));
    }
    let mut out_dims = dims[..2].to_vec();
    out_dims.extend(&win.output);
    checked_numel(&out_dims)?;
    let sp = |v: &[usize], fill: usize| {
        let mut o = [fill; 3];
        o[3 - r..].copy_from_slice(v);
        o
    };
    let (inp, out, k) = (sp(&dims[2..], 1), sp(&win.output, 1), sp(&win.kernel, 1));
    let (st, dl, pb, pe) = (
        sp(&win.strides, 1),
        sp(&win.dilations, 1),
        sp(&win.pad_begin, 0),
        sp(&win.pad_end, 0),
    );
    let in_vol: usize = inp.iter().product();
    let out_vol: usize = out.iter().product();
    let mut cells = Vec::with_capacity(k.iter().product());
    // Per output position (shared by all channels), the window's valid offsets.
    let mut windows: Vec<(Vec<usize>, usize)> = Vec::with_capacity(out_vol);
    for o0 in 0..out[0] {
        for o1 in 0..out[1] {
            for o2 in 0..out[2] {
                cells.clear();
                let mut padded = 0;
                for k0 in 0..k[0] {
                    for k1 in 0..k[1] {
                        for k2 in 0..k[2] {
                            let pos = [(o0, k0), (o1, k1), (o2, k2)]
                                .iter()
                                .enumerate()
                                .map(|(a, &(o, kk))| (o * st[a] + kk * dl[a]) as isize - pb[a] as isize)
                                .collect::<Vec<_>>();
                            let in_padded = (0..3).all(|a| pos[a] < (inp[a] + pe[a]) as isize);
                            let inside = (0..3).all(|a| pos[a] >= 0 && pos[a] < inp[a] as isize);
                            if in_padded {
                                padded += 1;
                            }
                            if inside {
                                cells.push(
                                    (pos[0] as usize * inp[1] + pos[1] as usize) * inp[2] + pos[2] as usize,
                                );
                            }
                        }
                    }
                }
                windows.push((cells.clone(), padded));
            }
        }
    }
    for ch in 0..dims[0] * dims[1] {
        for (cells, padded) in &windows {
            f(ch * in_vol, cells, *padded);
        }
    }
    Ok(out_dims)
}

/// MaxPool (f32, i8 and u8 inputs).
pub fn max_pool(p: &PoolAttrs, x: &Tensor) -> Result<Tensor> {
    let win = pool_window(p, x.dims())?;
    let xv = x.to_f32_vec()?;
    let mut out = Vec::new();
    let dims = for_each_window(x.dims(), &win, |base, cells, _| {
        out.push(
            cells
                .iter()
                .map(|&c| xv[base + c])
                .fold(f32::NEG_INFINITY, f32::max),
        );
    })?;
    let t = Tensor::from_f32(dims, out)?;
    match x.dtype() {
        DType::F32 => Ok(t),
        d => super::elementwise::cast(&t, d),
    }
}

/// AveragePool (f32).
pub fn average_pool(p: &PoolAttrs, x: &Tensor) -> Result<Tensor> {
    let win = pool_window(p, x.dims())?;
    let xv = x.as_f32()?;
    let mut out = Vec::new();
    let include = p.count_include_pad;
    let dims = for_each_window(x.dims(), &win, |base, cells, padded| {
        let sum: f32 = cells.iter().map(|&c| xv[base + c]).sum();
        let n = if include { padded } else { cells.len() };
        out.push(if n == 0 { 0.0 } else { sum / n as f32 });
    })?;
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
    dims.extend(std::iter::repeat(1).take(d.len() - 2));
    Tensor::from_f32(dims, out)
}
