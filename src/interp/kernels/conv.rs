//! Convolution (im2col + GEMM, 1×1 without copies, depthwise as its own loop) and
//! transposed convolution (GEMM + col2im), for 1 to 3 spatial axes.

use super::linalg::GemmScalar;
use crate::ir::op::{ConvAttrs, ConvTransposeAttrs};
use crate::ir::shapes::{conv_transpose_window, conv_window};
use crate::ir::{checked_numel, Tensor};
use crate::{Error, Result};

/// A convolution with every geometric parameter resolved to 3 spatial axes (leading axes of
/// size 1 pad lower ranks).
#[derive(Clone, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    c_out: usize,
    group: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    strides: [usize; 3],
    dilations: [usize; 3],
    pad_begin: [usize; 3],
    output: [usize; 3],
}

fn pad3(v: &[usize], fill: usize) -> Result<[usize; 3]> {
    if v.len() > 3 {
        return Err(Error::Unsupported(format!(
            "convolution over {} spatial axes (at most 3)",
            v.len()
        )));
    }
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    Ok(out)
}

impl Geometry {
    fn in_vol(&self) -> usize {
        self.input.iter().product()
    }
    fn out_vol(&self) -> usize {
        self.output.iter().product()
    }
    fn k_vol(&self) -> usize {
        self.kernel.iter().product()
    }
}

/// Unrolls the input patches of output pixels `p0..p0 + n` of one group into a
/// [c_in_g * k_vol, n] matrix (row stride `n`).
fn im2col<T: GemmScalar>(g: &Geometry, x: &[T], col: &mut [T], p0: usize, n: usize) {
    let cin_g = g.c_in / g.group;
    let [id_n, ih_n, iw_n] = g.input;
    let [_, oh_n, ow_n] = g.output;
    let sw = g.strides[2] as isize;
    let mut row = 0;
    for c in 0..cin_g {
        let xc = &x[c * g.in_vol()..(c + 1) * g.in_vol()];
        for kd in 0..g.kernel[0] {
            for kh in 0..g.kernel[1] {
                for kw in 0..g.kernel[2] {
                    let dst_row = &mut col[row * n..(row + 1) * n];
                    row += 1;
                    let off = (kw * g.dilations[2]) as isize - g.pad_begin[2] as isize;
                    // Walk the pixel range one output row segment at a time.
                    let mut p = p0;
                    while p < p0 + n {
                        let (od, rest) = (p / (oh_n * ow_n), p % (oh_n * ow_n));
                        let (oh, ow0) = (rest / ow_n, rest % ow_n);
                        let len = (ow_n - ow0).min(p0 + n - p);
                        let dst = &mut dst_row[p - p0..p - p0 + len];
                        p += len;
                        let id = (od * g.strides[0] + kd * g.dilations[0]) as isize - g.pad_begin[0] as isize;
                        let ih = (oh * g.strides[1] + kh * g.dilations[1]) as isize - g.pad_begin[1] as isize;
                        if id < 0 || id >= id_n as isize || ih < 0 || ih >= ih_n as isize {
                            dst.fill(T::default());
                            continue;
                        }
                        let src = &xc[(id as usize * ih_n + ih as usize) * iw_n..][..iw_n];
                        for (j, d) in dst.iter_mut().enumerate() {
                            let iw = (ow0 + j) as isize * sw + off;
                            *d = if iw >= 0 && iw < iw_n as isize {
                                src[iw as usize]
                            } else {
                                T::default()
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Depthwise convolution (one input and one output channel per group, 1-D/2-D).
///
/// Each input channel is copied once into a zero-padded buffer whose columns are split into
/// `stride` phases, so every kernel tap reads a contiguous run for a whole output row (no
/// bounds checks, vectorisable for any stride).
fn depthwise<T: GemmScalar>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if *super::linalg::HAS_AVX2_FMA {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        unsafe { depthwise_avx2(g, x, w, bias, out) };
        return;
    }
    depthwise_body(g, x, w, bias, out);
}

/// [`depthwise_body`] compiled for AVX2 so its row loops use 256-bit vectors.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_avx2<T: GemmScalar>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    depthwise_body(g, x, w, bias, out);
}

/// The depthwise kernel. Each input channel is copied once into a zero-padded buffer split
/// into `stride_h × stride_w` phase planes of pitch `pws`; output rows are computed with the
/// same pitch (the columns past `ow_n` are scratch), so every kernel tap is one contiguous
/// multiply-add over the whole channel.
#[inline(always)]
fn depthwise_body<T: GemmScalar>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let [_, ih_n, iw_n] = g.input;
    let [_, oh_n, ow_n] = g.output;
    let [_, kh_n, kw_n] = g.kernel;
    let [_, sh, sw] = g.strides;
    let [_, dh, dw] = g.dilations;
    let [_, pt, pl] = g.pad_begin;
    // Extent of the padded input actually read, and the phase-plane geometry.
    let ph = (oh_n - 1) * sh + (kh_n - 1) * dh + 1;
    let pw = (ow_n - 1) * sw + (kw_n - 1) * dw + 1;
    let pws = pw.div_ceil(sw);
    let phs = ph.div_ceil(sh) + 1;
    let plane = phs * pws;
    let mut buf = vec![T::default(); sh * sw * plane];
    let mut wide = vec![T::default(); oh_n * pws];
    for ch in 0..g.batch * g.c_in {
        let c = ch % g.c_in;
        let xc = &x[ch * ih_n * iw_n..(ch + 1) * ih_n * iw_n];
        buf.iter_mut().for_each(|v| *v = T::default());
        let n_cols = pw.min(pl + iw_n).saturating_sub(pl);
        for r in pt..ph.min(pt + ih_n) {
            let src = &xc[(r - pt) * iw_n..(r - pt) * iw_n + n_cols];
            let row_base = (r % sh) * sw * plane + (r / sh) * pws;
            if sw == 1 {
                buf[row_base + pl..row_base + pl + n_cols].copy_from_slice(src);
            } else {
                // Padded column pl + i goes to phase (pl + i) % sw, slot (pl + i) / sw: first
                // the columns before the next phase-0 column, then whole groups of sw.
                let lead = ((sw - pl % sw) % sw).min(src.len());
                for (i, &v) in src[..lead].iter().enumerate() {
                    buf[row_base + ((pl + i) % sw) * plane + (pl + i) / sw] = v;
                }
                let slot0 = (pl + lead) / sw;
                for p in 0..sw {
                    let plane_row = &mut buf[row_base + p * plane + slot0..row_base + p * plane + pws];
                    for (d, &v) in plane_row.iter_mut().zip(src[lead..].iter().skip(p).step_by(sw)) {
                        *d = v;
                    }
                }
            }
        }
        let b = bias.map_or(T::default(), |b| b[c]);
        wide.iter_mut().for_each(|v| *v = b);
        let wc = &w[c * kh_n * kw_n..(c + 1) * kh_n * kw_n];
        // Chunks of the output small enough to stay in L1 while every tap is applied.
        const CHUNK: usize = 1024;
        for (ci, chunk) in wide.chunks_mut(CHUNK).enumerate() {
            let len = chunk.len();
            for kh in 0..kh_n {
                for kw in 0..kw_n {
                    let wv = wc[kh * kw_n + kw];
                    let (r, col) = (kh * dh, kw * dw);
                    let start = ((r % sh) * sw + col % sw) * plane + (r / sh) * pws + col / sw + ci * CHUNK;
                    for (d, &s) in chunk.iter_mut().zip(&buf[start..start + len]) {
                        *d = *d + wv * s;
                    }
                }
            }
        }
        let oc = &mut out[ch * oh_n * ow_n..(ch + 1) * oh_n * ow_n];
        for (dst, src) in oc.chunks_exact_mut(ow_n).zip(wide.chunks_exact(pws)) {
            dst.copy_from_slice(&src[..ow_n]);
        }
    }
}

fn add_bias<T: GemmScalar>(out: &mut [T], bias: &[T], channels: usize, vol: usize) {
    for (i, chunk) in out.chunks_mut(vol).enumerate() {
        let b = bias[i % channels];
        chunk.iter_mut().for_each(|v| *v = *v + b);
    }
}

/// Convolution on raw buffers; returns the output shape and values.
pub fn conv_raw<T: GemmScalar>(
    attrs: &ConvAttrs,
    xd: &[usize],
    x: &[T],
    wd: &[usize],
    w: &[T],
    bias: Option<&[T]>,
) -> Result<(Vec<usize>, Vec<T>)> {
    let win = conv_window(attrs, xd, wd)?;
    let g = Geometry {
        batch: xd[0],
        c_in: xd[1],
        c_out: wd[0],
        group: attrs.group.max(1),
        input: pad3(&xd[2..], 1)?,
        kernel: pad3(&win.kernel, 1)?,
        strides: pad3(&win.strides, 1)?,
        dilations: pad3(&win.dilations, 1)?,
        pad_begin: pad3(&win.pad_begin, 0)?,
        output: pad3(&win.output, 1)?,
    };
    let mut out_dims = vec![g.batch, g.c_out];
    out_dims.extend(&win.output);
    let total = checked_numel(&out_dims)?;
    if let Some(b) = bias {
        if b.len() != g.c_out {
            return Err(Error::ShapeMismatch(format!(
                "Conv bias has {} values for {} channels",
                b.len(),
                g.c_out
            )));
        }
    }
    let (cin_g, cout_g) = (g.c_in / g.group, g.c_out / g.group);
    let (in_vol, out_vol, k_vol) = (g.in_vol(), g.out_vol(), g.k_vol());
    if total == 0 {
        return Ok((out_dims, Vec::new()));
    }
    let mut out;
    if cin_g == 1 && cout_g == 1 && g.kernel[0] == 1 && g.output[0] == 1 {
        out = vec![T::default(); total];
        depthwise(&g, x, w, bias, &mut out);
    } else {
        // The GEMM accumulates onto the bias (beta = 1), so the output starts as the bias.
        out = Vec::with_capacity(total);
        for _ in 0..g.batch {
            for c in 0..g.c_out {
                let b = bias.map_or(T::default(), |b| b[c]);
                out.extend(std::iter::repeat_n(b, out_vol));
            }
        }
        let pointwise = g.kernel == [1, 1, 1]
            && g.strides == [1, 1, 1]
            && g.pad_begin == [0, 0, 0]
            && g.input == g.output;
        let k = cin_g * k_vol;
        // im2col works on blocks of output pixels small enough (about 512 KiB of patches) to
        // stay in cache while the GEMM consumes them.
        let block = if pointwise {
            out_vol
        } else {
            (131_072 / k.max(1)).max(64).min(out_vol)
        };
        let mut col = if pointwise {
            Vec::new()
        } else {
            vec![T::default(); checked_numel(&[k, block])?]
        };
        for n in 0..g.batch {
            for grp in 0..g.group {
                let xg = &x[(n * g.c_in + grp * cin_g) * in_vol..][..cin_g * in_vol];
                let wg = &w[grp * cout_g * k..(grp + 1) * cout_g * k];
                let og = &mut out[(n * g.c_out + grp * cout_g) * out_vol..][..cout_g * out_vol];
                let mut p0 = 0;
                while p0 < out_vol {
                    let len = block.min(out_vol - p0);
                    let b: &[T] = if pointwise {
                        xg
                    } else {
                        im2col(&g, xg, &mut col, p0, len);
                        &col[..k * len]
                    };
                    let b_rows = if pointwise { out_vol } else { len };
                    T::gemm(
                        cout_g,
                        k,
                        len,
                        T::ONE,
                        wg,
                        (k as isize, 1),
                        b,
                        (b_rows as isize, 1),
                        T::ONE,
                        &mut og[p0..],
                        (out_vol as isize, 1),
                    );
                    p0 += len;
                }
            }
        }
    }
    Ok((out_dims, out))
}

/// f32 convolution.
pub fn conv(attrs: &ConvAttrs, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let bias = b.map(|b| b.as_f32()).transpose()?;
    let (dims, v) = conv_raw(attrs, x.dims(), x.as_f32()?, w.dims(), w.as_f32()?, bias)?;
    Tensor::from_f32(dims, v)
}

/// f32 transposed convolution.
pub fn conv_transpose(
    attrs: &ConvTransposeAttrs,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    let (xd, wd) = (x.dims(), w.dims());
    let win = conv_transpose_window(attrs, xd, wd)?;
    let group = attrs.conv.group.max(1);
    if xd[1] % group != 0 {
        return Err(Error::ShapeMismatch(format!(
            "ConvTranspose channels {} not divisible by group {group}",
            xd[1]
        )));
    }
    let (batch, c_in, cout_g) = (xd[0], xd[1], wd[1]);
    let c_out = cout_g * group;
    let cin_g = c_in / group;
    let input = pad3(&xd[2..], 1)?;
    let kernel = pad3(&win.kernel, 1)?;
    let strides = pad3(&win.strides, 1)?;
    let dil = pad3(&win.dilations, 1)?;
    let pad = pad3(&win.pad_begin, 0)?;
    let output = pad3(&win.output, 1)?;
    let mut out_dims = vec![batch, c_out];
    out_dims.extend(&win.output);
    let total = checked_numel(&out_dims)?;
    let (in_vol, out_vol): (usize, usize) = (input.iter().product(), output.iter().product());
    let k_vol: usize = kernel.iter().product();
    let rows = cout_g * k_vol;
    let mut col = vec![0f32; checked_numel(&[rows, in_vol])?];
    let mut out = vec![0f32; total];
    let (xv, wv) = (x.as_f32()?, w.as_f32()?);
    for n in 0..batch {
        for grp in 0..group {
            let xg = &xv[(n * c_in + grp * cin_g) * in_vol..][..cin_g * in_vol];
            let wg = &wv[grp * cin_g * rows..(grp + 1) * cin_g * rows];
            f32::gemm(
                rows,
                cin_g,
                in_vol,
                1.0,
                wg,
                (1, rows as isize),
                xg,
                (in_vol as isize, 1),
                0.0,
                &mut col,
                (in_vol as isize, 1),
            );
            let og = &mut out[(n * c_out + grp * cout_g) * out_vol..][..cout_g * out_vol];
            for co in 0..cout_g {
                for kd in 0..kernel[0] {
                    for kh in 0..kernel[1] {
                        for kw in 0..kernel[2] {
                            let r = ((co * kernel[0] + kd) * kernel[1] + kh) * kernel[2] + kw;
                            let src = &col[r * in_vol..(r + 1) * in_vol];
                            for id in 0..input[0] {
                                let od = (id * strides[0] + kd * dil[0]) as isize - pad[0] as isize;
                                if od < 0 || od >= output[0] as isize {
                                    continue;
                                }
                                for ih in 0..input[1] {
                                    let oh = (ih * strides[1] + kh * dil[1]) as isize - pad[1] as isize;
                                    if oh < 0 || oh >= output[1] as isize {
                                        continue;
                                    }
                                    for iw in 0..input[2] {
                                        let ow = (iw * strides[2] + kw * dil[2]) as isize - pad[2] as isize;
                                        if ow < 0 || ow >= output[2] as isize {
                                            continue;
                                        }
                                        let o = ((co * output[0] + od as usize) * output[1] + oh as usize)
                                            * output[2]
                                            + ow as usize;
                                        og[o] += src[(id * input[1] + ih) * input[2] + iw];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = b {
        let b = b.as_f32()?;
        if b.len() != c_out {
            return Err(Error::ShapeMismatch(format!(
                "ConvTranspose bias has {} values for {c_out} channels",
                b.len()
            )));
        }
        add_bias(&mut out, b, c_out, out_vol);
    }
    Tensor::from_f32(out_dims, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::op::AutoPad;

    /// Direct 2-D convolution: the definition, for comparison with every fast path.
    fn reference(a: &ConvAttrs, xd: &[usize], x: &[f32], wd: &[usize], w: &[f32], b: &[f32]) -> Vec<f32> {
        let win = conv_window(a, xd, wd).unwrap();
        let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
        let (m, cg, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
        let (oh, ow) = (win.output[0], win.output[1]);
        let mg = m / a.group;
        let mut out = vec![0f32; n * m * oh * ow];
        for ni in 0..n {
            for mi in 0..m {
                let g = mi / mg;
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut s = b[mi];
                        for ci in 0..cg {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (y * win.strides[0] + ky * win.dilations[0]) as isize
                                        - win.pad_begin[0] as isize;
                                    let ix = (xo * win.strides[1] + kx * win.dilations[1]) as isize
                                        - win.pad_begin[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                        continue;
                                    }
                                    let cin = g * cg + ci;
                                    s += x[((ni * c + cin) * h + iy as usize) * wi + ix as usize]
                                        * w[((mi * cg + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        out[((ni * m + mi) * oh + y) * ow + xo] = s;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 97) as f32 / 48.0 - 1.0
            })
            .collect()
    }

    /// (x dims, w dims, group, strides, pads, dilations, auto_pad)
    type Case = (
        Vec<usize>,
        Vec<usize>,
        usize,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        AutoPad,
    );

    #[test]
    fn every_path_matches_the_definition() {
        let cases: Vec<Case> = vec![
            (
                vec![2, 3, 9, 8],
                vec![4, 3, 3, 3],
                1,
                vec![2, 2],
                vec![1, 1, 1, 1],
                vec![1, 1],
                AutoPad::NotSet,
            ),
            (
                vec![1, 4, 7, 7],
                vec![6, 4, 3, 2],
                1,
                vec![1, 2],
                vec![0, 1, 2, 0],
                vec![2, 1],
                AutoPad::NotSet,
            ),
            (
                vec![2, 5, 6, 6],
                vec![5, 1, 3, 3],
                5,
                vec![1, 1],
                vec![1, 1, 1, 1],
                vec![1, 1],
                AutoPad::NotSet,
            ),
            (
                vec![1, 6, 9, 9],
                vec![6, 1, 3, 3],
                6,
                vec![2, 2],
                vec![],
                vec![1, 1],
                AutoPad::SameUpper,
            ),
            (
                vec![1, 4, 5, 5],
                vec![8, 1, 3, 3],
                4,
                vec![1, 1],
                vec![1, 1, 1, 1],
                vec![1, 1],
                AutoPad::NotSet,
            ),
            (
                vec![1, 6, 5, 4],
                vec![4, 3, 1, 1],
                2,
                vec![1, 1],
                vec![],
                vec![1, 1],
                AutoPad::NotSet,
            ),
            (
                vec![2, 8, 4, 4],
                vec![3, 8, 1, 1],
                1,
                vec![1, 1],
                vec![],
                vec![1, 1],
                AutoPad::NotSet,
            ),
            // K = 576 patches per pixel: im2col runs in several pixel blocks.
            (
                vec![1, 64, 21, 19],
                vec![4, 64, 3, 3],
                1,
                vec![1, 1],
                vec![1, 1, 1, 1],
                vec![1, 1],
                AutoPad::NotSet,
            ),
        ];
        for (xd, wd, group, strides, pads, dilations, auto_pad) in cases {
            let a = ConvAttrs {
                group,
                strides,
                pads,
                dilations,
                auto_pad,
                ..Default::default()
            };
            let x = values(xd.iter().product(), 1);
            let w = values(wd.iter().product(), 2);
            let b = values(wd[0], 3);
            let (_, got) = conv_raw(&a, &xd, &x, &wd, &w, Some(&b)).unwrap();
            let want = reference(&a, &xd, &x, &wd, &w, &b);
            assert_eq!(got.len(), want.len(), "{xd:?} {wd:?}");
            for (g, r) in got.iter().zip(&want) {
                assert!((g - r).abs() < 1e-4, "{xd:?} {wd:?} group {group}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn one_dimensional_conv_is_two_dimensional_with_height_one() {
        let a1 = ConvAttrs {
            group: 1,
            strides: vec![2],
            pads: vec![1, 0],
            ..Default::default()
        };
        let a2 = ConvAttrs {
            group: 1,
            strides: vec![1, 2],
            pads: vec![0, 1, 0, 0],
            ..Default::default()
        };
        let x = values(2 * 3 * 10, 4);
        let w = values(4 * 3 * 3, 5);
        let (d1, y1) = conv_raw(&a1, &[2, 3, 10], &x, &[4, 3, 3], &w, None).unwrap();
        let (d2, y2) = conv_raw(&a2, &[2, 3, 1, 10], &x, &[4, 3, 1, 3], &w, None).unwrap();
        assert_eq!(d1, vec![2, 4, 5]);
        assert_eq!(d2, vec![2, 4, 1, 5]);
        assert_eq!(y1, y2);
    }
}
