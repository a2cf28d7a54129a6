//! ONNX sliding-window attributes (kernel, strides, dilations, pads) as a kernel [`Window`].

use super::{refuse, Matcher, Reason, Refusal};
use crate::ir::op::AutoPad;
use crate::program::Window;

impl Matcher<'_> {
    /// A 2-D window from ONNX attributes (explicit or VALID padding only).
    pub(super) fn window(
        kernel: &[usize],
        strides: &[usize],
        dil: &[usize],
        pads: &[usize],
        auto: AutoPad,
    ) -> Result<Window, Refusal> {
        if kernel.len() != 2 {
            return refuse(Reason::Shape, "only 2-D windows");
        }
        if !matches!(auto, AutoPad::NotSet | AutoPad::Valid) {
            return refuse(Reason::Attribute, "auto_pad SAME_*");
        }
        let two = |v: &[usize]| if v.len() == 2 { (v[0], v[1]) } else { (1, 1) };
        let pads = if pads.len() == 4 && auto == AutoPad::NotSet {
            (pads[0], pads[1], pads[2], pads[3])
        } else {
            (0, 0, 0, 0)
        };
        Ok(Window {
            kernel: (kernel[0], kernel[1]),
            stride: two(strides),
            dilation: two(dil),
            pads,
        })
    }
}

/// A max-pool window with `ceil_mode` as the same window with extra bottom / right padding
/// that makes floor division yield the `output` size (the shape inference applies the ceil
/// rule, including dropping a last window that would start in the end padding). Padding never
/// wins a max, so the extra taps change no value.
pub(super) fn ceil_mode_as_end_padding(
    window: Window,
    input: (usize, usize),
    output: (usize, usize),
) -> Result<Window, Refusal> {
    let axis = |len: usize, out: usize, k: usize, s: usize, d: usize, before: usize, after: usize| {
        if k == 0 || s == 0 || out == 0 {
            return None;
        }
        let extent = (k - 1).checked_mul(d)? + 1;
        let needed = (out - 1).checked_mul(s)?.checked_add(extent)?;
        let padded = len.checked_add(before)?.checked_add(after)?;
        let after = after + needed.saturating_sub(padded);
        ((len + before + after).checked_sub(extent)? / s + 1 == out).then_some(after)
    };
    let (top, left, bottom, right) = window.pads;
    let (k, s, d) = (window.kernel, window.stride, window.dilation);
    let bottom = axis(input.0, output.0, k.0, s.0, d.0, top, bottom);
    let right = axis(input.1, output.1, k.1, s.1, d.1, left, right);
    match (bottom, right) {
        (Some(bottom), Some(right)) => Ok(Window {
            pads: (top, left, bottom, right),
            ..window
        }),
        _ => refuse(
            Reason::Shape,
            "ceil_mode window does not give the inferred output size",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{ceil_mode_as_end_padding, Window};

    fn window(kernel: usize, stride: usize, pads: (usize, usize, usize, usize)) -> Window {
        Window {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            dilation: (1, 1),
            pads,
        }
    }

    #[test]
    fn ceil_mode_becomes_end_padding_that_floor_division_reproduces() {
        // 16 → ceil((16 - 3) / 2) + 1 = 8 windows: the last one needs one more row / column.
        let w = ceil_mode_as_end_padding(window(3, 2, (0, 0, 0, 0)), (16, 15), (8, 7)).unwrap();
        assert_eq!(w.pads, (0, 0, 1, 0));
        // 13 with pads 1, 1: ceil((15 - 3) / 2) + 1 = 7 = floor: unchanged.
        let w = ceil_mode_as_end_padding(window(3, 2, (1, 1, 1, 1)), (13, 13), (7, 7)).unwrap();
        assert_eq!(w.pads, (1, 1, 1, 1));
        // An output size no padding of the end gives is refused, as are degenerate windows.
        assert!(ceil_mode_as_end_padding(window(3, 2, (0, 0, 0, 0)), (16, 16), (6, 8)).is_err());
        assert!(ceil_mode_as_end_padding(window(3, 0, (0, 0, 0, 0)), (16, 16), (8, 8)).is_err());
        assert!(ceil_mode_as_end_padding(window(0, 2, (0, 0, 0, 0)), (16, 16), (8, 8)).is_err());
    }
}
