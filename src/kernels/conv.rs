//! k×k convolution with stride, dilation, padding and groups over NHWC `i8` input, computed
//! by the GEMM microkernels through an [`Indirection`] table (no im2col buffer): each output
//! pixel is a GEMM row whose `taps` segments are the input pixels its window reads, or a row
//! of input zero points for padding taps. At run time the table's offsets become segment
//! pointers for a chunk of rows at a time (for fewer than 16 channels per group, e.g. an RGB
//! stem, the chunk's segments are copied into a small im2col block instead, since per-pointer
//! overhead would dominate); a 1×1, stride-1, unpadded, ungrouped convolution skips them and
//! reads its input as a dense matrix. A transposed convolution runs here too, through its
//! own table ([`Indirection::transposed`]).
//!
//! Use: [`PackedConv::pack`] once, an [`Indirection`] once per input shape, then
//! [`PackedConv::run`] on ranges of [`PackedConv::tile_count`] tiles (group-major: the tiles
//! of group 0, then group 1, ...).

use super::buffer::PackedBytes;
use super::dynamic::QuantizedRows;
use super::gemm::{check_matrix, GemmQuant, GemmWeights, PackedGemm, TileOut};
use super::indirection::{Indirection, PADDING};
use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams};
use super::table::GemmKernelInfo;
use crate::cpu::Isa;
use crate::qscheme::ChannelScales;
use crate::{Error, Result};
use std::ops::Range;

/// M tiles whose segment pointers are resolved at once (bounds the pointer buffer).
const CHUNK_M_TILES: usize = 32;

/// Segments (input channels per group) shorter than this are gathered into a chunk-sized
/// im2col block instead of being packed one pointer at a time.
const SMALL_SEGMENT: usize = 16;

/// Copies the first `len` elements of `src` into `dst` (`kc4` long, `len <= kc4 < 16`);
/// when `src` holds a whole `kc4` it is copied in fixed-size moves, so `dst`'s padding gets
/// neighbouring values (which the packed weights, zero there, ignore).
#[inline(always)]
fn copy_segment(dst: &mut [i8], src: &[i8], len: usize) {
    match (dst.len(), src.len() >= dst.len()) {
        (4, true) => dst.copy_from_slice(&src[..4]),
        (8, true) => dst.copy_from_slice(&src[..8]),
        (12, true) => dst.copy_from_slice(&src[..12]),
        _ => {
            for (d, &x) in dst.iter_mut().zip(&src[..len]) {
                *d = x;
            }
        }
    }
}

/// Unpacked convolution weights.
#[derive(Clone, Copy, Debug)]
pub struct ConvWeights<'a> {
    /// Output channels (all groups).
    pub out_c: usize,
    /// Input channels per group.
    pub in_c_per_group: usize,
    /// Number of groups; `out_c` must be a multiple of it.
    pub groups: usize,
    /// Kernel height.
    pub k_h: usize,
    /// Kernel width.
    pub k_w: usize,
    /// OHWI weights: `out_c × k_h × k_w × in_c_per_group`.
    pub weights: &'a [i8],
    /// One (per tensor) or `out_c` (per output channel) weight scales; zero point 0.
    pub scales: &'a [f32],
    /// Optional `i32` bias with scale `s_x * s_w[c]`.
    pub bias: Option<&'a [i32]>,
}

/// Convolution weights packed per group for one GEMM variant.
#[derive(Debug)]
pub struct PackedConv {
    groups: Vec<PackedGemm>,
    out_c: usize,
    in_c_per_group: usize,
    k_h: usize,
    k_w: usize,
    input_zp: i8,
}

impl PackedConv {
    /// Packs `w` for the GEMM variant of `isa`.
    pub fn pack(isa: Isa, w: &ConvWeights, q: &GemmQuant) -> Result<PackedConv> {
        q.input.validate("input")?;
        q.output.validate("output")?;
        Self::pack_groups(isa, w, q, None)
    }

    /// Packs every group, with optional `f32` biases for the dynamic epilogue.
    fn pack_groups(
        isa: Isa,
        w: &ConvWeights,
        q: &GemmQuant,
        float_bias: Option<&[f32]>,
    ) -> Result<PackedConv> {
        if w.groups == 0 || w.out_c == 0 || !w.out_c.is_multiple_of(w.groups) {
            return Err(Error::invalid_argument(
                "groups",
                format!(
                    "{} output channels cannot be split into {} groups",
                    w.out_c, w.groups
                ),
            ));
        }
        let taps = w.k_h.checked_mul(w.k_w);
        let per_oc = taps.and_then(|t| t.checked_mul(w.in_c_per_group));
        if per_oc.and_then(|p| p.checked_mul(w.out_c)) != Some(w.weights.len()) {
            return Err(Error::ShapeMismatch(format!(
                "conv weights have {} elements, expected {}×{}×{}×{}",
                w.weights.len(),
                w.out_c,
                w.k_h,
                w.k_w,
                w.in_c_per_group
            )));
        }
        let Some(scales) = ChannelScales::new(w.scales, w.out_c) else {
            return Err(Error::ShapeMismatch(format!(
                "{} weight scales for {} channels",
                w.scales.len(),
                w.out_c
            )));
        };
        if w.bias.is_some_and(|b| b.len() != w.out_c) {
            return Err(Error::ShapeMismatch(format!(
                "bias length differs from {} output channels",
                w.out_c
            )));
        }
        let (taps, per_oc) = (w.k_h * w.k_w, w.k_h * w.k_w * w.in_c_per_group);
        let cout_g = w.out_c / w.groups;
        let groups = (0..w.groups)
            .map(|g| {
                let chans = g * cout_g..(g + 1) * cout_g;
                let gw = GemmWeights {
                    n: cout_g,
                    ks: taps,
                    kc: w.in_c_per_group,
                    weights: &w.weights[chans.start * per_oc..chans.end * per_oc],
                    scales: scales.sub(chans.clone()),
                    bias: w.bias.map(|b| &b[chans.clone()]),
                };
                PackedGemm::pack_with(isa, &gw, q, float_bias.map(|b| &b[chans.clone()]))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PackedConv {
            groups,
            out_c: w.out_c,
            in_c_per_group: w.in_c_per_group,
            k_h: w.k_h,
            k_w: w.k_w,
            input_zp: q.input.zero_point as i8,
        })
    }

    /// Takes weights packed earlier by [`PackedConv::pack`] for the variant of `isa`, one
    /// buffer per group (see [`PackedGemm::from_packed`] for what is checked), for a
    /// convolution of `out_c` channels in `groups` groups of `in_c_per_group` input channels
    /// with a `kernel = (k_h, k_w)` window.
    pub fn from_packed(
        isa: Isa,
        out_c: usize,
        in_c_per_group: usize,
        groups: usize,
        kernel: (usize, usize),
        q: &GemmQuant,
        packed: Vec<PackedBytes>,
    ) -> Result<PackedConv> {
        if groups == 0 || out_c == 0 || !out_c.is_multiple_of(groups) || packed.len() != groups {
            return Err(Error::CorruptFile(format!(
                "{} packed groups for {out_c} output channels in {groups} groups",
                packed.len()
            )));
        }
        let taps = kernel
            .0
            .checked_mul(kernel.1)
            .ok_or_else(|| Error::InvalidModel("convolution kernel size overflows".into()))?;
        let groups = packed
            .into_iter()
            .map(|data| PackedGemm::from_packed(isa, out_c / groups, taps, in_c_per_group, q, data))
            .collect::<Result<Vec<_>>>()?;
        Ok(PackedConv {
            groups,
            out_c,
            in_c_per_group,
            k_h: kernel.0,
            k_w: kernel.1,
            input_zp: q.input.zero_point as i8,
        })
    }

    /// The packed weights of each group (what [`PackedConv::from_packed`] takes back).
    pub fn packed_groups(&self) -> impl Iterator<Item = &[u8]> {
        self.groups.iter().map(|g| g.packed_bytes())
    }

    /// Whether the packed weights are used in place from shared bytes (not built at load).
    pub fn is_shared(&self) -> bool {
        self.groups.iter().all(|g| g.is_shared())
    }

    /// The GEMM variant these weights were packed for.
    pub fn kernel(&self) -> &'static GemmKernelInfo {
        self.groups[0].kernel()
    }

    fn pixels(ind: &Indirection) -> usize {
        ind.geometry().batch * ind.out_h() * ind.out_w()
    }

    /// Number of tiles for `ind`'s geometry.
    pub fn tile_count(&self, ind: &Indirection) -> usize {
        self.groups.len() * self.groups[0].tile_count(Self::pixels(ind))
    }

    /// Computes tiles `tiles` of `output` (NHWC, `batch × out_h × out_w × out_c`) from
    /// `input` (NHWC, `batch × in_h × in_w × (groups · in_c_per_group)`).
    pub fn run(&self, ind: &Indirection, input: &[i8], output: &mut [i8], tiles: Range<usize>) -> Result<()> {
        let out = SharedOutput::new(output);
        // SAFETY: `out` borrows `output` exclusively for this call.
        unsafe { self.run_shared(ind, input, &out, tiles) }
    }

    /// Like [`PackedConv::run`], writing through a [`SharedOutput`].
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        ind: &Indirection,
        input: &[i8],
        output: &SharedOutput,
        tiles: Range<usize>,
    ) -> Result<()> {
        check_matrix("output", Self::pixels(ind), self.out_c, self.out_c, output.len())?;
        let out_c = self.out_c;
        let out = |group_col: usize, row0: usize, col0: usize| {
            let rq = self.groups[0].requantizer();
            TileOut::Quantized {
                // SAFETY: (row0, group_col + col0) is inside the output checked above.
                c: unsafe { output.as_ptr().add(row0 * out_c + group_col + col0) },
                stride: out_c,
                rq,
            }
        };
        // SAFETY: every tile's block lies in the checked output; disjoint tiles are the
        // caller's contract.
        unsafe { self.run_groups(ind, input, self.input_zp, out, tiles) }
    }

    /// The group loop shared by static and dynamic convolution: runs the GEMM tiles of
    /// `tiles` with padding taps reading `zp`, the epilogue of each tile given by
    /// `out(first column of the group, row0, col0)`.
    ///
    /// # Safety
    /// Every `out(..)` must satisfy the GEMM tile output contract; concurrent calls must
    /// use disjoint tiles.
    unsafe fn run_groups(
        &self,
        ind: &Indirection,
        input: &[i8],
        zp: i8,
        out: impl Fn(usize, usize, usize) -> TileOut,
        tiles: Range<usize>,
    ) -> Result<()> {
        let g = *ind.geometry();
        let cin_g = self.in_c_per_group;
        if g.in_c != cin_g * self.groups.len() || (g.k_h, g.k_w) != (self.k_h, self.k_w) {
            return Err(Error::ShapeMismatch(format!(
                "indirection is for {}x{} taps over {} channels, weights are {}x{} over {}×{} channels",
                g.k_h,
                g.k_w,
                g.in_c,
                self.k_h,
                self.k_w,
                self.groups.len(),
                cin_g
            )));
        }
        let m = Self::pixels(ind);
        let plane = ind.out_h() * ind.out_w();
        check_matrix("input", g.batch, g.image_len(), g.image_len(), input.len())?;
        let total = self.tile_count(ind);
        if tiles.start > tiles.end || tiles.end > total {
            return Err(Error::invalid_argument(
                "tiles",
                format!("range {tiles:?} is outside 0..{total}"),
            ));
        }
        let per_group = self.groups[0].tile_count(m);
        CONV_SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            let ConvScratch {
                zero_row,
                seg_ptrs,
                chunk_block,
            } = scratch;
            // Padded to kc4 so short segments can be copied in whole 4-byte groups.
            zero_row.clear();
            zero_row.resize(cin_g.div_ceil(4) * 4, zp);
            for (gi, packed) in self.groups.iter().enumerate() {
                let lo = tiles.start.max(gi * per_group);
                let hi = tiles.end.min((gi + 1) * per_group);
                if lo >= hi {
                    continue;
                }
                let group_col = gi * packed.n();
                let local = lo - gi * per_group..hi - gi * per_group;
                // A 1×1, stride-1, unpadded, ungrouped convolution reads its input as a dense
                // matrix of pixels × channels.
                let pointwise = g.taps() == 1
                    && g.stride == (1, 1)
                    && g.padding == (0, 0, 0, 0)
                    && !ind.is_transposed()
                    && plane == g.in_h * g.in_w;
                if pointwise && self.groups.len() == 1 {
                    let dense = &input[..m * cin_g];
                    // SAFETY: forwarded contract.
                    unsafe {
                        packed.run_tiles(
                            m,
                            |row, _| &dense[row * cin_g..][..cin_g],
                            cin_g.is_multiple_of(4).then_some((dense, 0)),
                            |row0, col0| out(group_col, row0, col0),
                            local,
                        )?;
                    }
                    continue;
                }
                // The indirection buffer proper: segment pointers of a chunk of M tiles' rows,
                // resolved in one tight loop, then read by the packing code. Segments shorter
                // than SMALL_SEGMENT (e.g. a 3-channel stem) are instead copied into a
                // chunk-sized im2col block, which packs in one pass.
                let (n_tiles, mr) = (packed.n_tiles(), packed.kernel().mr);
                let (taps, kc4) = (g.taps(), cin_g.div_ceil(4) * 4);
                let small = cin_g < SMALL_SEGMENT;
                let mut t = local.start;
                while t < local.end {
                    let mt0 = t / n_tiles;
                    let mt1 = (mt0 + CHUNK_M_TILES).min(m.div_ceil(mr));
                    let chunk_end = (mt1 * n_tiles).min(local.end);
                    let (row0, row1) = (mt0 * mr, (mt1 * mr).min(m));
                    let tile_out = |r: usize, c: usize| out(group_col, r, c);
                    if small {
                        let kpad = taps * kc4;
                        let need = (row1 - row0) * kpad;
                        if chunk_block.len() < need {
                            chunk_block.resize(need, 0);
                        }
                        for (row, dst_row) in (row0..row1).zip(chunk_block[..need].chunks_exact_mut(kpad)) {
                            let image = &input[(row / plane) * g.image_len()..][..g.image_len()];
                            for (&off, dst) in
                                ind.pixel(row % plane).iter().zip(dst_row.chunks_exact_mut(kc4))
                            {
                                let src = if off == PADDING {
                                    &zero_row[..]
                                } else {
                                    &image[off as usize + gi * cin_g..]
                                };
                                copy_segment(dst, src, cin_g);
                            }
                        }
                        let block = &chunk_block[..need];
                        let segment = |row: usize, s: usize| -> &[i8] {
                            &block[(row - row0) * kpad + s * kc4..][..cin_g]
                        };
                        // SAFETY: forwarded contract; the block holds rows row0..row1.
                        unsafe { packed.run_tiles(m, segment, Some((block, row0)), tile_out, t..chunk_end)? };
                    } else {
                        seg_ptrs.clear();
                        for row in row0..row1 {
                            let image = &input[(row / plane) * g.image_len()..][..g.image_len()];
                            seg_ptrs.extend(ind.pixel(row % plane).iter().map(|&off| {
                                if off == PADDING {
                                    zero_row.as_ptr()
                                } else {
                                    image[off as usize + gi * cin_g..][..cin_g].as_ptr()
                                }
                            }));
                        }
                        let seg_ptrs = &seg_ptrs;
                        let segment = |row: usize, s: usize| -> &[i8] {
                            // SAFETY: each pointer starts `cin_g` elements of `input` or of
                            // `zero_row` (bounds-checked above), both borrowed for this call.
                            unsafe { std::slice::from_raw_parts(seg_ptrs[(row - row0) * taps + s], cin_g) }
                        };
                        // SAFETY: forwarded contract; rows row0..row1 are the rows of tiles t..chunk_end.
                        unsafe { packed.run_tiles(m, segment, None, tile_out, t..chunk_end)? };
                    }
                    t = chunk_end;
                }
            }
            Ok(())
        })
    }
}

/// The growable scratch of one thread's grouped-convolution calls, kept between calls.
#[derive(Default)]
struct ConvScratch {
    /// Zero-point bytes read by padding taps.
    zero_row: Vec<i8>,
    /// Segment pointers of a chunk of rows.
    seg_ptrs: Vec<*const i8>,
    /// Im2col rows of a chunk (short segments).
    chunk_block: Vec<i8>,
}

thread_local! {
    static CONV_SCRATCH: std::cell::RefCell<ConvScratch> = std::cell::RefCell::new(ConvScratch::default());
}

/// Convolution weights for dynamic quantization: the input is quantized per tensor at run
/// time ([`crate::kernels::dynamic::quantize_rows`] with one row) and the output is `f32`
/// (`y = ((acc - zp·Σw) as f32) * (s_x * s_w[c]) + bias[c]`, as in [`crate::kernels::dynamic`]).
#[derive(Debug)]
pub struct PackedDynamicConv {
    conv: PackedConv,
}

impl PackedDynamicConv {
    /// Packs `w` (its `bias` must be `None`; pass `f32` biases in `bias`) for `isa`.
    pub fn pack(isa: Isa, w: &ConvWeights, bias: Option<&[f32]>) -> Result<Self> {
        if w.bias.is_some() {
            return Err(Error::invalid_argument(
                "bias",
                "dynamic convolution takes f32 biases",
            ));
        }
        if bias.is_some_and(|b| b.len() != w.out_c) {
            return Err(Error::ShapeMismatch(format!(
                "bias length differs from {} output channels",
                w.out_c
            )));
        }
        if let Some(bad) = bias.and_then(|b| b.iter().find(|v| !v.is_finite())) {
            return Err(Error::invalid_argument("bias", format!("contains {bad}")));
        }
        let unit = QuantParams {
            scale: 1.0,
            zero_point: 0,
        };
        let q = GemmQuant {
            input: unit,
            output: unit,
            range: OutputRange::FULL,
        };
        Ok(PackedDynamicConv {
            conv: PackedConv::pack_groups(isa, w, &q, bias)?,
        })
    }

    /// The GEMM variant these weights were packed for.
    pub fn kernel(&self) -> &'static GemmKernelInfo {
        self.conv.kernel()
    }

    /// Number of tiles for `ind`'s geometry.
    pub fn tile_count(&self, ind: &Indirection) -> usize {
        self.conv.tile_count(ind)
    }

    /// Computes tiles `tiles` of the `f32` output (NHWC) from `input`, the whole NHWC input
    /// quantized as one row (`quantize_rows(x, 1, x.len(), x.len())`).
    pub fn run(
        &self,
        ind: &Indirection,
        input: &QuantizedRows,
        out: &mut [f32],
        tiles: Range<usize>,
    ) -> Result<()> {
        if input.m != 1 || input.scales.len() != 1 || input.zero_points.len() != 1 {
            return Err(Error::invalid_argument(
                "input",
                "dynamic convolution needs a per-tensor quantized input (m = 1)",
            ));
        }
        let out_c = self.conv.out_c;
        check_matrix("out", PackedConv::pixels(ind), out_c, out_c, out.len())?;
        let (y, scale, zp) = (out.as_mut_ptr(), &input.scales[0], &input.zero_points[0]);
        let tile_out = |group_col: usize, row0: usize, col0: usize| TileOut::Dequantized {
            // SAFETY: (row0, group_col + col0) is inside `out` (checked above).
            y: unsafe { y.add(row0 * out_c + group_col + col0) },
            stride: out_c,
            row_scale: scale,
            row_zp: zp,
            row_step: 0,
        };
        // SAFETY: `out` is exclusively borrowed and every tile lies inside it.
        unsafe { self.conv.run_groups(ind, &input.data, *zp as i8, tile_out, tiles) }
    }
}
