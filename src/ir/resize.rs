//! Resize's coordinate mapping: for each output index along one axis, which input indices
//! it reads and with which weights ([`axis_taps`]). The interpreter and the int8 lowering
//! both use it, so they read the same input elements with the same `f32` weights.

use crate::ir::op::{CoordinateTransform as C, NearestMode, ResizeAttrs, ResizeMode};

/// How one output coordinate reads the input along an axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tap {
    /// Outside the cropped input: the extrapolation value.
    Outside,
    /// One input index.
    Nearest(usize),
    /// Two input indices and the weight of the second.
    Linear(usize, usize, f32),
    /// Four input indices and their weights.
    Cubic([usize; 4], [f32; 4]),
}

/// Keys' cubic convolution weights for the taps at offsets -1, 0, 1, 2 from floor(x).
fn cubic_weights(r: f32, a: f32) -> [f32; 4] {
    let far = |t: f32| ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
    let near = |t: f32| ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
    [far(r + 1.0), near(r), near(1.0 - r), far(2.0 - r)]
}

fn source_coord(
    attrs: &ResizeAttrs,
    o: usize,
    in_len: usize,
    out_len: usize,
    scale: f32,
    roi: (f32, f32),
) -> f32 {
    // The spec's length_resized is the real-valued `in_len * scale`, except where noted.
    let (x, il, ol) = (o as f32, in_len as f32, in_len as f32 * scale);
    match attrs.coordinate_transform {
        C::HalfPixel => (x + 0.5) / scale - 0.5,
        C::HalfPixelSymmetric => {
            let adjustment = out_len as f32 / ol;
            let center = il / 2.0;
            let offset = center * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        C::PytorchHalfPixel => {
            if ol > 1.0 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        C::AlignCorners => {
            if ol == 1.0 {
                0.0
            } else {
                x * (il - 1.0) / (ol - 1.0)
            }
        }
        C::Asymmetric => x / scale,
        C::TfCropAndResize => {
            let (start, end) = roi;
            if ol > 1.0 {
                start * (il - 1.0) + x * (end - start) * (il - 1.0) / (ol - 1.0)
            } else {
                0.5 * (start + end) * (il - 1.0)
            }
        }
    }
}

/// The taps of each of the `out_len` output indices along an axis of `in_len` inputs, resized
/// by `scale` (the effective scale of [`crate::ir::infer::resize_output_shape`]) with the
/// crop `roi` (start, end; used by `tf_crop_and_resize` only).
pub fn axis_taps(
    attrs: &ResizeAttrs,
    in_len: usize,
    out_len: usize,
    scale: f32,
    roi: (f32, f32),
) -> Vec<Tap> {
    let last = in_len as f32 - 1.0;
    let clamp = |i: f32| i.clamp(0.0, last.max(0.0)) as usize;
    (0..out_len)
        .map(|o| {
            let x = source_coord(attrs, o, in_len, out_len, scale, roi);
            if attrs.coordinate_transform == C::TfCropAndResize && !(0.0..=last).contains(&x) {
                return Tap::Outside;
            }
            match attrs.mode {
                ResizeMode::Nearest => {
                    let fl = x.floor();
                    let r = match attrs.nearest_mode {
                        NearestMode::RoundPreferFloor => {
                            if x - fl == 0.5 {
                                fl
                            } else {
                                x.round()
                            }
                        }
                        NearestMode::RoundPreferCeil => {
                            if x - fl == 0.5 {
                                fl + 1.0
                            } else {
                                x.round()
                            }
                        }
                        NearestMode::Floor => fl,
                        NearestMode::Ceil => x.ceil(),
                    };
                    Tap::Nearest(clamp(r))
                }
                ResizeMode::Cubic => {
                    let fl = x.floor();
                    let mut w = cubic_weights(x - fl, attrs.cubic_coeff_a);
                    let pos = [fl - 1.0, fl, fl + 1.0, fl + 2.0];
                    if attrs.exclude_outside {
                        for (wk, &p) in w.iter_mut().zip(&pos) {
                            if p < 0.0 || p > last {
                                *wk = 0.0;
                            }
                        }
                        let sum: f32 = w.iter().sum();
                        if sum != 0.0 {
                            w.iter_mut().for_each(|v| *v /= sum);
                        }
                    }
                    Tap::Cubic(pos.map(clamp), w)
                }
                ResizeMode::Linear => {
                    let fl = x.floor();
                    Tap::Linear(clamp(fl), clamp(fl + 1.0), x - fl)
                }
            }
        })
        .collect()
}

/// Whether Resize resamples an axis of `in_len` elements into `out_len` with effective
/// `scale`; an axis it does not resample is copied unchanged.
pub fn axis_changes(attrs: &ResizeAttrs, in_len: usize, out_len: usize, scale: f32) -> bool {
    out_len != in_len || scale != 1.0 || attrs.coordinate_transform == C::TfCropAndResize
}
