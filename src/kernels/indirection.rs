//! Convolution geometry (NHWC) and the indirection table shared by convolution and
//! depthwise convolution: for every output pixel and kernel tap, the offset of the input
//! pixel it reads, or [`PADDING`] when the tap falls into the padding (which then reads a
//! row filled with the input zero point). The table depends only on shapes, so it is built
//! once per input shape and reused by every run.
//!
//! A transposed convolution ([`Indirection::transposed`]) uses the same table: output pixel
//! `o` reads, at tap `k`, the input pixel `i` with `i * stride + k * dilation = o + pad`, and
//! the zero-point row when no such integer `i` lies in the input (taps that fall between
//! strided input pixels read padding). The convolution GEMM then computes it unchanged. The
//! trade-off against one sub-convolution per output phase (XNNPACK's way, no wasted
//! multiply-adds): with stride `s` about `1 - 1 / (s_h * s_w)` of the taps read zero points
//! (three quarters at stride 2), in exchange for no new kernel, one GEMM per group and the
//! conv kernels' bit-identical ISA rows as they are.

use crate::{Error, Result};

/// Table entry of a tap that reads padding.
pub const PADDING: u32 = u32::MAX;

/// Largest input image (H·W·C elements) the indirection table can address.
const MAX_IMAGE_ELEMENTS: usize = (u32::MAX - 1) as usize;

/// Shapes and hyper-parameters of a 2-D convolution or pooling window over NHWC input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Elements per input pixel (the channel stride of the NHWC input).
    pub in_c: usize,
    /// Kernel height.
    pub k_h: usize,
    /// Kernel width.
    pub k_w: usize,
    /// Stride (height, width).
    pub stride: (usize, usize),
    /// Dilation (height, width).
    pub dilation: (usize, usize),
    /// Padding (top, left, bottom, right).
    pub padding: (usize, usize, usize, usize),
}

impl ConvGeometry {
    /// Checks every size and that the output is non-empty.
    pub fn validate(&self) -> Result<()> {
        self.validate_sizes()?;
        for (dim, k, d, before, after) in [
            (
                "height",
                self.k_h,
                self.dilation.0,
                self.padding.0,
                self.padding.2,
            ),
            ("width", self.k_w, self.dilation.1, self.padding.1, self.padding.3),
        ] {
            let extent = (k - 1).checked_mul(d).and_then(|e| e.checked_add(1));
            let input = if dim == "height" { self.in_h } else { self.in_w };
            let padded = input.checked_add(before).and_then(|p| p.checked_add(after));
            match (extent, padded) {
                (Some(e), Some(p)) if e <= p => {}
                _ => {
                    return Err(Error::ShapeMismatch(format!(
                        "dilated kernel {dim} exceeds the padded input {dim}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Checks that every size is positive and the input image is addressable.
    fn validate_sizes(&self) -> Result<()> {
        let fields = [
            ("batch", self.batch),
            ("in_h", self.in_h),
            ("in_w", self.in_w),
            ("in_c", self.in_c),
            ("k_h", self.k_h),
            ("k_w", self.k_w),
            ("stride", self.stride.0.min(self.stride.1)),
            ("dilation", self.dilation.0.min(self.dilation.1)),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(Error::invalid_argument(
                    "geometry",
                    format!("{name} must be positive"),
                ));
            }
        }
        self.in_h
            .checked_mul(self.in_w)
            .and_then(|p| p.checked_mul(self.in_c))
            .filter(|&e| e <= MAX_IMAGE_ELEMENTS)
            .ok_or_else(|| Error::ResourceLimit("input image exceeds 2^32 elements".into()))?;
        // Taps index a table bounded like every packed buffer (and `taps()` must not wrap).
        self.k_h
            .checked_mul(self.k_w)
            .filter(|&t| t <= super::buffer::MAX_PACKED_BYTES / 4)
            .ok_or_else(|| Error::ResourceLimit("kernel window too large".into()))?;
        Ok(())
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + self.padding.0 + self.padding.2 - ((self.k_h - 1) * self.dilation.0 + 1)) / self.stride.0
            + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + self.padding.1 + self.padding.3 - ((self.k_w - 1) * self.dilation.1 + 1)) / self.stride.1
            + 1
    }

    /// Kernel taps (`k_h * k_w`).
    pub fn taps(&self) -> usize {
        self.k_h * self.k_w
    }

    /// Elements of one input image.
    pub fn image_len(&self) -> usize {
        self.in_h * self.in_w * self.in_c
    }
}

/// The indirection table of one geometry: `out_h × out_w × taps` input-pixel offsets
/// (relative to the image start), tap order `(ky, kx)` row-major.
#[derive(Clone, Debug)]
pub struct Indirection {
    geometry: ConvGeometry,
    /// Output height and width (the geometry's, or given for a transposed convolution).
    out: (usize, usize),
    /// Whether the table is of a transposed convolution.
    transposed: bool,
    offsets: Vec<u32>,
}

/// Entries of an `out_h × out_w` table of `taps` offsets, bounded.
fn table_len(out_h: usize, out_w: usize, taps: usize) -> Result<usize> {
    out_h
        .checked_mul(out_w)
        .and_then(|p| p.checked_mul(taps))
        .filter(|&l| l <= super::buffer::MAX_PACKED_BYTES / 4)
        .ok_or_else(|| Error::ResourceLimit("indirection table too large".into()))
}

impl Indirection {
    /// Builds the table for a validated geometry.
    pub fn new(geometry: &ConvGeometry) -> Result<Self> {
        let g = *geometry;
        g.validate()?;
        let (oh, ow, taps) = (g.out_h(), g.out_w(), g.taps());
        let len = table_len(oh, ow, taps)?;
        // Element offsets of every input column (ox, kx) and row (oy, ky) are computed once, as
        // PADDING when outside the input; an entry is a row plus a column, PADDING if either
        // is. Offsets stay below the image size, which `validate` keeps under PADDING.
        let position = |o: usize, k: usize, stride: usize, dilation: usize, pad: usize, limit: usize| {
            (o * stride + k * dilation)
                .checked_sub(pad)
                .filter(|&i| i < limit)
        };
        let xs: Vec<u32> = (0..ow)
            .flat_map(|ox| {
                (0..g.k_w).map(move |kx| {
                    position(ox, kx, g.stride.1, g.dilation.1, g.padding.1, g.in_w)
                        .map_or(PADDING, |x| (x * g.in_c) as u32)
                })
            })
            .collect();
        let mut offsets = vec![PADDING; len];
        for (oy, plane) in offsets.chunks_exact_mut(ow * taps).enumerate() {
            for ky in 0..g.k_h {
                let Some(y) = position(oy, ky, g.stride.0, g.dilation.0, g.padding.0, g.in_h) else {
                    continue;
                };
                let row = (y * g.in_w * g.in_c) as u32;
                for (pixel, cols) in plane.chunks_exact_mut(taps).zip(xs.chunks_exact(g.k_w)) {
                    for (entry, &x) in pixel[ky * g.k_w..][..g.k_w].iter_mut().zip(cols) {
                        *entry = if x == PADDING { PADDING } else { row + x };
                    }
                }
            }
        }
        Ok(Indirection {
            geometry: g,
            out: (oh, ow),
            transposed: false,
            offsets,
        })
    }

    /// Builds the table of a transposed convolution of `geometry` (its `padding.0` and
    /// `padding.1` are the ONNX begin pads; the end pads are unused) producing an
    /// `out_h × out_w` output: tap `(ky, kx)` of output pixel `(oy, ox)` reads input pixel
    /// `((oy + pad_top - ky·dil_h) / stride_h, (ox + pad_left - kx·dil_w) / stride_w)` when
    /// both divisions are exact and inside the input, else padding.
    pub fn transposed(geometry: &ConvGeometry, out_h: usize, out_w: usize) -> Result<Self> {
        let g = *geometry;
        g.validate_sizes()?;
        if out_h == 0 || out_w == 0 {
            return Err(Error::invalid_argument(
                "geometry",
                "empty transposed-convolution output",
            ));
        }
        let taps = g.taps();
        let len = table_len(out_h, out_w, taps)?;
        // The input index an output index reads at kernel index k, if any.
        let source = |o: usize, k: usize, stride: usize, dilation: usize, pad: usize, limit: usize| {
            let t = o.checked_add(pad)?.checked_sub(k.checked_mul(dilation)?)?;
            (t % stride == 0 && t / stride < limit).then_some(t / stride)
        };
        let xs: Vec<u32> = (0..out_w)
            .flat_map(|ox| {
                (0..g.k_w).map(move |kx| {
                    source(ox, kx, g.stride.1, g.dilation.1, g.padding.1, g.in_w)
                        .map_or(PADDING, |x| (x * g.in_c) as u32)
                })
            })
            .collect();
        let mut offsets = vec![PADDING; len];
        for (oy, plane) in offsets.chunks_exact_mut(out_w * taps).enumerate() {
            for ky in 0..g.k_h {
                let Some(y) = source(oy, ky, g.stride.0, g.dilation.0, g.padding.0, g.in_h) else {
                    continue;
                };
                let row = (y * g.in_w * g.in_c) as u32;
                for (pixel, cols) in plane.chunks_exact_mut(taps).zip(xs.chunks_exact(g.k_w)) {
                    for (entry, &x) in pixel[ky * g.k_w..][..g.k_w].iter_mut().zip(cols) {
                        *entry = if x == PADDING { PADDING } else { row + x };
                    }
                }
            }
        }
        Ok(Indirection {
            geometry: g,
            out: (out_h, out_w),
            transposed: true,
            offsets,
        })
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        self.out.0
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        self.out.1
    }

    /// Whether this is the table of a transposed convolution (its geometry's stride and
    /// padding then describe the input side, not the window steps).
    pub fn is_transposed(&self) -> bool {
        self.transposed
    }

    /// The geometry this table was built for.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// The `taps` offsets of output pixel `pixel` (`oy * out_w + ox`).
    pub fn pixel(&self, pixel: usize) -> &[u32] {
        let t = self.geometry.taps();
        &self.offsets[pixel * t..][..t]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(pad: usize, stride: usize, dil: usize) -> ConvGeometry {
        ConvGeometry {
            batch: 1,
            in_h: 4,
            in_w: 5,
            in_c: 3,
            k_h: 3,
            k_w: 3,
            stride: (stride, stride),
            dilation: (dil, dil),
            padding: (pad, pad, pad, pad),
        }
    }

    #[test]
    fn output_sizes_and_padding_offsets() {
        let g = geo(1, 1, 1);
        assert_eq!((g.out_h(), g.out_w()), (4, 5));
        let ind = Indirection::new(&g).unwrap();
        let p0 = ind.pixel(0);
        assert_eq!(&p0[..4], &[PADDING, PADDING, PADDING, PADDING]);
        assert_eq!(p0[4], 0);
        assert_eq!(p0[5], 3);
        assert_eq!(p0[7], 15);
        let g2 = geo(1, 2, 2);
        assert_eq!((g2.out_h(), g2.out_w()), (1, 2));
        let ind2 = Indirection::new(&g2).unwrap();
        assert_eq!(ind2.pixel(0)[0], PADDING);
        assert_eq!(ind2.pixel(0)[8], (3 * 5 + 3) * 3);
        assert_eq!(ind2.pixel(1)[4], (5 + 3) * 3);
    }

    #[test]
    fn rejects_bad_geometry() {
        assert!(
            geo(0, 1, 3).validate().is_err(),
            "dilated kernel larger than input"
        );
        assert!(ConvGeometry {
            stride: (0, 1),
            ..geo(0, 1, 1)
        }
        .validate()
        .is_err());
        let huge_pad = ConvGeometry {
            padding: (usize::MAX, 0, 0, 0),
            ..geo(0, 1, 1)
        };
        assert!(huge_pad.validate().is_err());
        assert!(Indirection::new(&ConvGeometry {
            padding: (1 << 40, 0, 0, 0),
            ..geo(0, 1, 1)
        })
        .is_err());
    }

    /// The table entry of every (oy, ox, ky, kx) from the definition.
    fn table_by_element(g: &ConvGeometry) -> Vec<u32> {
        let mut out = Vec::new();
        for oy in 0..g.out_h() {
            for ox in 0..g.out_w() {
                for ky in 0..g.k_h {
                    for kx in 0..g.k_w {
                        let iy = (oy * g.stride.0 + ky * g.dilation.0).checked_sub(g.padding.0);
                        let ix = (ox * g.stride.1 + kx * g.dilation.1).checked_sub(g.padding.1);
                        out.push(match (iy, ix) {
                            (Some(y), Some(x)) if y < g.in_h && x < g.in_w => {
                                ((y * g.in_w + x) * g.in_c) as u32
                            }
                            _ => PADDING,
                        });
                    }
                }
            }
        }
        out
    }

    /// The transposed-convolution entry of every (oy, ox, ky, kx) from the definition: the
    /// input pixel whose scattered tap lands on the output pixel.
    fn transposed_by_element(g: &ConvGeometry, out_h: usize, out_w: usize) -> Vec<u32> {
        let mut out = vec![PADDING; out_h * out_w * g.taps()];
        for iy in 0..g.in_h {
            for ix in 0..g.in_w {
                for ky in 0..g.k_h {
                    for kx in 0..g.k_w {
                        let oy = (iy * g.stride.0 + ky * g.dilation.0).checked_sub(g.padding.0);
                        let ox = (ix * g.stride.1 + kx * g.dilation.1).checked_sub(g.padding.1);
                        if let (Some(oy), Some(ox)) = (oy, ox) {
                            if oy < out_h && ox < out_w {
                                out[(oy * out_w + ox) * g.taps() + ky * g.k_w + kx] =
                                    ((iy * g.in_w + ix) * g.in_c) as u32;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn transposed_table_rejects_empty_and_huge_outputs() {
        let g = geo(0, 2, 1);
        assert!(Indirection::transposed(&g, 0, 3).is_err());
        assert!(Indirection::transposed(&g, 1 << 30, 1 << 30).is_err());
        // A kernel whose tap count wraps is refused before any table is sized from it.
        let wide = ConvGeometry {
            k_h: 1 << 33,
            k_w: 1 << 33,
            padding: (1 << 34, 1 << 34, 1 << 34, 1 << 34),
            ..g
        };
        assert!(Indirection::transposed(&wide, 4, 4).is_err());
        assert!(Indirection::new(&wide).is_err());
        let t = Indirection::transposed(&g, 9, 11).unwrap();
        assert!(t.is_transposed() && (t.out_h(), t.out_w()) == (9, 11));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn transposed_table_matches_the_scatter_definition(
            in_h in 1usize..8, in_w in 1usize..8, in_c in 1usize..4, k_h in 1usize..5, k_w in 1usize..5,
            stride in (1usize..4, 1usize..4), dilation in (1usize..3, 1usize..3),
            pad in (0usize..3, 0usize..3), extra in (0usize..4, 0usize..4),
        ) {
            let g = ConvGeometry {
                batch: 1, in_h, in_w, in_c, k_h, k_w, stride, dilation,
                padding: (pad.0, pad.1, 0, 0),
            };
            let out_h = ((in_h - 1) * stride.0 + (k_h - 1) * dilation.0 + 1 + extra.0).saturating_sub(pad.0).max(1);
            let out_w = ((in_w - 1) * stride.1 + (k_w - 1) * dilation.1 + 1 + extra.1).saturating_sub(pad.1).max(1);
            let ind = Indirection::transposed(&g, out_h, out_w).unwrap();
            proptest::prop_assert_eq!(&ind.offsets, &transposed_by_element(&g, out_h, out_w));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn table_matches_the_definition(
            in_h in 1usize..12, in_w in 1usize..12, in_c in 1usize..5, k_h in 1usize..5, k_w in 1usize..5,
            stride in (1usize..4, 1usize..4), dilation in (1usize..3, 1usize..3),
            padding in (0usize..3, 0usize..3, 0usize..3, 0usize..3),
        ) {
            let g = ConvGeometry { batch: 1, in_h, in_w, in_c, k_h, k_w, stride, dilation, padding };
            if g.validate().is_ok() {
                let ind = Indirection::new(&g).unwrap();
                proptest::prop_assert_eq!(&ind.offsets, &table_by_element(&g));
            }
        }
    }
}
