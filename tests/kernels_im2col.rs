//! The im2col gather against a direct definition: every output pixel's row holds its window's
//! taps in `(ky, kx, channel)` order, the input zero point for padding taps and the row tail.
//! Tile ranges run out of order, so a write past a tile's rows would be caught.

use proptest::prelude::*;
use xq::kernels::im2col;
use xq::kernels::indirection::ConvGeometry;
use xq::kernels::output::SharedOutput;

const FILL: i8 = -7;

/// The rows by the definition.
fn reference(g: &ConvGeometry, k_padded: usize, x: &[i8]) -> Vec<i8> {
    let (oh, ow, c) = (g.out_h(), g.out_w(), g.in_c);
    let mut out = Vec::with_capacity(g.batch * oh * ow * k_padded);
    for image in 0..g.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                let start = out.len();
                for ky in 0..g.k_h {
                    for kx in 0..g.k_w {
                        let iy = (oy * g.stride.0 + ky * g.dilation.0).checked_sub(g.padding.0);
                        let ix = (ox * g.stride.1 + kx * g.dilation.1).checked_sub(g.padding.1);
                        for ch in 0..c {
                            out.push(match (iy, ix) {
                                (Some(iy), Some(ix)) if iy < g.in_h && ix < g.in_w => {
                                    x[((image * g.in_h + iy) * g.in_w + ix) * c + ch]
                                }
                                _ => FILL,
                            });
                        }
                    }
                }
                out.resize(start + k_padded, FILL);
            }
        }
    }
    out
}

fn geometry() -> impl Strategy<Value = (ConvGeometry, usize)> {
    (
        (1usize..3, 1usize..12, 1usize..40, 1usize..9),
        (1usize..6, 1usize..6, 1usize..4, 1usize..4, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3, 0usize..4),
    )
        .prop_map(
            |((batch, in_h, in_w, in_c), (k_h, k_w, sh, sw, dh, dw), (pt, pl, pb, pr, extra))| {
                let g = ConvGeometry {
                    batch,
                    in_h,
                    in_w,
                    in_c,
                    k_h,
                    k_w,
                    stride: (sh, sw),
                    dilation: (dh, dw),
                    padding: (pt, pl, pb, pr),
                };
                let k_real = k_h * k_w * in_c;
                (g, k_real + extra.min(3))
            },
        )
        .prop_filter("window fits the padded input", |(g, _)| {
            g.in_h + g.padding.0 + g.padding.2 > (g.k_h - 1) * g.dilation.0
                && g.in_w + g.padding.1 + g.padding.3 > (g.k_w - 1) * g.dilation.1
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn im2col_rows_match_the_definition((g, k_padded) in geometry(), seed in any::<u64>(), cut in 0.0f64..1.0) {
        let mut state = seed | 1;
        let x: Vec<i8> = (0..g.batch * g.image_len())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as i8
            })
            .collect();
        let want = reference(&g, k_padded, &x);
        let tiles = im2col::tile_count(&g);
        let cut = (tiles as f64 * cut) as usize;
        let mut got = vec![0x55i8; want.len()];
        {
            let out = SharedOutput::new(&mut got);
            // SAFETY: the two calls run one after the other on disjoint tile ranges (the later
            // tiles first, so a write past the first range's rows would be caught).
            unsafe {
                im2col::run_shared(&g, k_padded, FILL, &x, &out, cut..tiles).unwrap();
                im2col::run_shared(&g, k_padded, FILL, &x, &out, 0..cut).unwrap();
            }
        }
        prop_assert_eq!(got, want, "{:?} k_padded {}", g, k_padded);
    }
}
