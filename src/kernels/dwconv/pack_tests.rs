//! The depthwise packed layout against its element-by-element definition.

use super::*;
use crate::kernels::{OutputRange, QuantParams};
use proptest::prelude::*;

/// The packed bytes of `w` for `packing`, one element at a time (the [`Layout`] docs).
fn pack_by_element(packing: DwPacking, w: &DwWeights, q: &GemmQuant) -> Vec<u8> {
    let layout = Layout(packing);
    let (c, taps, bc) = (w.channels, w.k_h * w.k_w, layout.block_channels());
    let block_bytes = bc * 4 * (taps + 2);
    let mut out = vec![0u8; c.div_ceil(bc) * block_bytes];
    for ch in 0..c {
        let block = &mut out[(ch / bc) * block_bytes..][..block_bytes];
        let lane = ch % bc;
        let mut sum = 0i32;
        for t in 0..taps {
            let wv = w.weights[t * c + ch];
            sum += wv as i32;
            match packing {
                DwPacking::I32Lanes16 => {
                    let at = layout.word(1 + t, lane);
                    block[at..at + 4].copy_from_slice(&(wv as i16 as u16 as u32).to_ne_bytes());
                }
                DwPacking::EvenOddI16x16 | DwPacking::EvenOddI16x32 => {
                    let at = (1 + t) * bc * 4 + (lane % 2) * bc * 2 + lane * 2;
                    block[at..at + 2].copy_from_slice(&(wv as i16).to_ne_bytes());
                }
            }
        }
        let s_w = w.scales[if w.scales.len() == 1 { 0 } else { ch }];
        let m = (q.input.scale * s_w) / q.output.scale;
        let bias = w
            .bias
            .map_or(0, |b| b[ch])
            .wrapping_sub(q.input.zero_point.wrapping_mul(sum));
        let at = layout.word(0, lane);
        block[at..at + 4].copy_from_slice(&bias.to_ne_bytes());
        let at = layout.word(1 + taps, lane);
        block[at..at + 4].copy_from_slice(&m.to_ne_bytes());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn packing_matches_the_element_definition(
        channels in 1usize..80, k_h in 1usize..5, k_w in 1usize..5, zp in -128i32..128,
        per_channel in any::<bool>(), with_bias in any::<bool>(), seed in any::<u32>(),
    ) {
        let taps = k_h * k_w;
        let weights: Vec<i8> = (0..taps * channels)
            .map(|i| (i as u32).wrapping_mul(2654435761).wrapping_add(seed) as i8)
            .collect();
        let scales: Vec<f32> = if per_channel {
            (0..channels).map(|c| 1e-3 * (1 + c % 7) as f32).collect()
        } else {
            vec![2e-3]
        };
        let bias: Vec<i32> = (0..channels as i32).map(|c| c * 131 - 999).collect();
        let w = DwWeights {
            channels,
            k_h,
            k_w,
            weights: &weights,
            scales: &scales,
            bias: with_bias.then_some(bias.as_slice()),
        };
        let q = GemmQuant {
            input: QuantParams { scale: 0.05, zero_point: zp },
            output: QuantParams { scale: 0.1, zero_point: -3 },
            range: OutputRange::FULL,
        };
        for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
            let packed = PackedDwConv::pack(isa, &w, &q).unwrap();
            let oracle = pack_by_element(dwconv_kernel(isa).packing, &w, &q);
            prop_assert!(packed.data.as_slice() == oracle.as_slice(), "{isa}: {channels} channels, {k_h}x{k_w}");
        }
    }
}
