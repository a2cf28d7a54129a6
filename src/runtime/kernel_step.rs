//! Kernel steps built from a [`KernelSpec`]: packed weights, indirection tables and shapes,
//! prepared once; [`KernelStep::run`] computes a range of tiles between arena buffers.
//! A [`KernelStep`] holds the built [`Step`] of its kind.

use crate::cpu::Isa;
use crate::kernels::buffer::PackedBytes;
use crate::kernels::indirection::ConvGeometry;
use crate::kernels::output::SharedOutput;
use crate::program::steps::{geometry, BuildContext, Step};
use crate::program::{ConvSpec, GatherSpec, Im2colSpec, KernelSpec, ReshapeSpec, ValueSpec, GATHER_FILL};
use crate::{Error, Result};
use std::ops::Range;

/// A kernel step prepared for one ISA.
pub struct KernelStep(Box<dyn Step>);

impl KernelStep {
    /// Prepares `spec` for `isa`; `values` gives shapes and qparams.
    pub fn build(isa: Isa, spec: &KernelSpec, values: &[ValueSpec]) -> Result<KernelStep> {
        Self::build_with(isa, spec, values, None, None)
    }

    /// Like [`KernelStep::build`], taking the GEMM weights of a dense / grouped convolution
    /// (one buffer per group) or of a fully connected layer (one buffer) already packed for
    /// `isa` from `prepacked` instead of packing them, and the int8 weights of a convolution or
    /// fully connected layer from `unpacked` instead of `spec` (which then leaves them empty,
    /// e.g. when they stay in a program file). Prepacked weights for any other kernel, or of
    /// the wrong size, are an [`Error::CorruptFile`].
    pub fn build_with(
        isa: Isa,
        spec: &KernelSpec,
        values: &[ValueSpec],
        prepacked: Option<Vec<PackedBytes>>,
        unpacked: Option<&[i8]>,
    ) -> Result<KernelStep> {
        let takes_prepacked = matches!(
            spec,
            KernelSpec::Conv(ConvSpec { depthwise: false, .. }) | KernelSpec::FullyConnected(_)
        );
        if prepacked.is_some() && !takes_prepacked {
            return Err(Error::CorruptFile(format!(
                "packed weights given for a {} step, which has none",
                spec.kind_name()
            )));
        }
        let cx = BuildContext {
            isa,
            values,
            prepacked,
            weights: unpacked,
        };
        for i in spec.inputs().into_iter().chain(std::iter::once(spec.output())) {
            cx.value(i)?;
        }
        Ok(KernelStep(match spec {
            KernelSpec::Conv(s) => s.build(cx)?,
            KernelSpec::FullyConnected(s) => s.build(cx)?,
            KernelSpec::Binary(s) => s.build(cx)?,
            KernelSpec::GlobalAvgPool(s) => s.build(cx)?,
            KernelSpec::MaxPool(s) => s.build(cx)?,
            KernelSpec::Concat(s) => s.build(cx)?,
            _ => Box::new(LegacyStep::build_with(spec, cx)?),
        }))
    }

    /// Profile label of the step ("binary" for add and mul).
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// The packed weights [`KernelStep::build_with`] can take back: one buffer per group of a
    /// convolution, one for a fully connected layer, none for other kernels.
    pub fn packed_parts(&self) -> Vec<&[u8]> {
        self.0.packed_parts()
    }

    /// Whether the step's packed weights are used in place from shared bytes (a program
    /// file's packed section) rather than packed at load; false for steps without weights.
    pub fn uses_shared_weights(&self) -> bool {
        self.0.uses_shared_weights()
    }

    /// Number of independent tiles.
    pub fn tile_count(&self) -> usize {
        self.0.tile_count()
    }

    /// Computes `tiles` from `inputs` into `out`.
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint tile ranges.
    pub unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        // SAFETY: forwards this function's contract.
        unsafe { self.0.run(inputs, out, tiles) }
    }
}

/// A prepared kernel of any kind (the steps not yet built by their own step file).
enum LegacyStep {
    /// Byte move by storage index: `out[i] = in[map[i]]`, `fill` where `map[i]` is
    /// `GATHER_FILL`.
    Gather {
        /// Source storage index per output storage index.
        map: Vec<u32>,
        /// Padding byte.
        fill: i8,
    },
    /// Window gather into dense rows (see `KernelSpec::Im2col`).
    Im2col {
        /// The window geometry over the NHWC input.
        geometry: ConvGeometry,
        /// Row length.
        k_padded: usize,
        /// The fill byte (input zero point).
        fill: i8,
    },
    /// Byte move: `out[i] = in[map[i]]`, or a plain copy without a map.
    Reshape(Option<Vec<u32>>),
}

impl LegacyStep {
    /// Prepares `spec` for `cx.isa`.
    fn build_with(spec: &KernelSpec, cx: BuildContext<'_>) -> Result<LegacyStep> {
        let BuildContext { values, .. } = cx;
        let value = |i: usize| {
            values
                .get(i)
                .ok_or_else(|| Error::InvalidModel(format!("kernel refers to value {i} of {}", values.len())))
        };
        let out = value(spec.output())?;
        Ok(match spec {
            KernelSpec::Conv(_)
            | KernelSpec::FullyConnected(_)
            | KernelSpec::Binary(_)
            | KernelSpec::GlobalAvgPool(_)
            | KernelSpec::MaxPool(_)
            | KernelSpec::Concat(_) => {
                return Err(Error::Internal(format!(
                    "{} is built by its step",
                    spec.kind_name()
                )))
            }
            KernelSpec::Gather(GatherSpec { input, map, fill, .. }) => {
                let x = value(*input)?;
                if map.len() != out.numel() {
                    return Err(Error::InvalidModel(
                        "gather map length differs from the output".into(),
                    ));
                }
                let fill_mark = GATHER_FILL;
                let mut smap = vec![fill_mark; map.len()];
                for (l, &src) in map.iter().enumerate() {
                    if src != fill_mark {
                        if src as usize >= x.numel() {
                            return Err(Error::InvalidModel("gather map reads outside the input".into()));
                        }
                        smap[out.storage_index(l)] = x.storage_index(src as usize) as u32;
                    }
                }
                LegacyStep::Gather {
                    map: smap,
                    fill: *fill,
                }
            }
            KernelSpec::Im2col(Im2colSpec {
                input,
                window,
                k_padded,
                ..
            }) => {
                let x = value(*input)?;
                if !x.is_nhwc() {
                    return Err(Error::InvalidModel("im2col input must be 4-D".into()));
                }
                let g = geometry(x, window);
                g.validate()?;
                let k_real = g.taps() * g.in_c;
                let pixels = g.batch * g.out_h() * g.out_w();
                if *k_padded < k_real || *k_padded > k_real + 3 || out.dims != [pixels, *k_padded] {
                    return Err(Error::InvalidModel("im2col shapes".into()));
                }
                LegacyStep::Im2col {
                    geometry: g,
                    k_padded: *k_padded,
                    fill: x.q.zero_point as i8,
                }
            }
            KernelSpec::Reshape(ReshapeSpec { input, .. }) => {
                let x = value(*input)?;
                if x.numel() != out.numel() || x.numel() > u32::MAX as usize {
                    return Err(Error::InvalidModel("reshape changes the element count".into()));
                }
                if x.storage_is_logical() && out.storage_is_logical() {
                    LegacyStep::Reshape(None)
                } else {
                    let mut map = vec![0u32; out.numel()];
                    for l in 0..out.numel() {
                        map[out.storage_index(l)] = x.storage_index(l) as u32;
                    }
                    LegacyStep::Reshape(Some(map))
                }
            }
        })
    }
}

impl Step for LegacyStep {
    fn kind(&self) -> &'static str {
        match self {
            LegacyStep::Im2col { .. } => "im2col",
            LegacyStep::Gather { .. } => "gather",
            LegacyStep::Reshape(..) => "reshape",
        }
    }

    /// Number of independent tiles.
    fn tile_count(&self) -> usize {
        match self {
            LegacyStep::Im2col { geometry, .. } => geometry.batch * geometry.out_h(),
            LegacyStep::Gather { .. } => 1,
            LegacyStep::Reshape(_) => 1,
        }
    }

    /// Computes `tiles` from `inputs` into `out`.
    ///
    /// # Safety
    /// Concurrent calls on the same `out` must use disjoint tile ranges.
    unsafe fn run(&self, inputs: &[&[i8]], out: &SharedOutput, tiles: Range<usize>) -> Result<()> {
        let x = inputs[0];
        // SAFETY: every arm forwards this function's contract (disjoint tiles for concurrent
        // callers on the same `out`).
        unsafe {
            match self {
                LegacyStep::Gather { map, fill } => {
                    if out.len() != map.len() {
                        return Err(Error::Internal("gather buffer sizes differ".into()));
                    }
                    let dst = out.as_ptr();
                    for (i, &src) in map.iter().enumerate() {
                        let v = if src == GATHER_FILL {
                            *fill
                        } else {
                            x[src as usize]
                        };
                        // SAFETY: `i < out.len()` (checked above); one call covers the output.
                        *dst.add(i) = v;
                    }
                    Ok(())
                }
                LegacyStep::Im2col {
                    geometry: g,
                    k_padded,
                    fill,
                } => {
                    let (oh, ow) = (g.out_h(), g.out_w());
                    if x.len() != g.batch * g.image_len() || out.len() != g.batch * oh * ow * k_padded {
                        return Err(Error::Internal("im2col buffer sizes differ".into()));
                    }
                    // The output holds every row of these tiles (checked above), and the caller
                    // gives concurrent calls disjoint tiles.
                    im2col_tiles(g, *k_padded, *fill, x, out.as_ptr(), tiles);
                    Ok(())
                }
                LegacyStep::Reshape(map) => {
                    if out.len() != x.len() {
                        return Err(Error::Internal("reshape buffer sizes differ".into()));
                    }
                    let dst = out.as_ptr();
                    match map {
                        None => std::ptr::copy_nonoverlapping(x.as_ptr(), dst, x.len()),
                        Some(map) => {
                            for (i, &src) in map.iter().enumerate() {
                                *dst.add(i) = x[src as usize];
                            }
                        }
                    }
                    Ok(())
                }
            }
        }
    }
}

/// Copies a run of a few bytes (one kernel row of im2col) with two overlapping word moves
/// instead of a `memcpy` call when it is 4 to 16 bytes long.
#[inline(always)]
fn copy_run(dst: &mut [i8], src: &[i8]) {
    let n = dst.len();
    assert_eq!(n, src.len());
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // SAFETY: both slices hold n bytes; each pair of moves covers [0, w) and [n - w, n) with
    // w <= n, so every access is in bounds (unaligned accesses are allowed).
    unsafe {
        match n {
            8..=16 => {
                let (head, tail) = (
                    s.cast::<u64>().read_unaligned(),
                    s.add(n - 8).cast::<u64>().read_unaligned(),
                );
                d.cast::<u64>().write_unaligned(head);
                d.add(n - 8).cast::<u64>().write_unaligned(tail);
            }
            4..=7 => {
                let (head, tail) = (
                    s.cast::<u32>().read_unaligned(),
                    s.add(n - 4).cast::<u32>().read_unaligned(),
                );
                d.cast::<u32>().write_unaligned(head);
                d.add(n - 4).cast::<u32>().write_unaligned(tail);
            }
            _ => dst.copy_from_slice(src),
        }
    }
}

/// Im2col of output rows `tiles` (tile = output row of one image): each output pixel's
/// window as `k_padded` bytes in `(ky, kx, channel)` order, padding taps and the tail filled
/// with `fill`.
///
/// # Safety
/// `x` holds `g.batch` images; `dst` is valid for writing `g.batch · out_h · out_w ·
/// k_padded` bytes, of which this call writes only the rows of `tiles`.
unsafe fn im2col_tiles(
    g: &ConvGeometry,
    k_padded: usize,
    fill: i8,
    x: &[i8],
    dst: *mut i8,
    tiles: Range<usize>,
) {
    let (oh, ow, c) = (g.out_h(), g.out_w(), g.in_c);
    let run = g.k_w * c;
    // Input row offset of each kernel row for the current output row (None: padding).
    let mut rows: Vec<Option<usize>> = vec![None; g.k_h];
    for t in tiles {
        let (image, oy) = (t / oh, t % oh);
        let src = &x[image * g.image_len()..][..g.image_len()];
        for (ky, r) in rows.iter_mut().enumerate() {
            *r = (oy * g.stride.0 + ky * g.dilation.0)
                .checked_sub(g.padding.0)
                .filter(|&y| y < g.in_h)
                .map(|y| y * g.in_w * c);
        }
        for ox in 0..ow {
            // SAFETY: row `(image, oy, ox)` of `k_padded` bytes is inside the output and
            // belongs to tile `t` only (caller contract).
            let r = unsafe {
                std::slice::from_raw_parts_mut(dst.add(((image * oh + oy) * ow + ox) * k_padded), k_padded)
            };
            let ix0 = (ox * g.stride.1).checked_sub(g.padding.1);
            let mut at = 0;
            match ix0 {
                // Every tap of the window row is inside: runs of k_w · c contiguous bytes.
                Some(x0) if g.dilation.1 == 1 && x0 + g.k_w <= g.in_w => {
                    for row in &rows {
                        let d = &mut r[at..at + run];
                        match row {
                            Some(off) => copy_run(d, &src[off + x0 * c..][..run]),
                            None => d.iter_mut().for_each(|v| *v = fill),
                        }
                        at += run;
                    }
                }
                _ => {
                    for row in &rows {
                        for kx in 0..g.k_w {
                            let ix = (ox * g.stride.1 + kx * g.dilation.1)
                                .checked_sub(g.padding.1)
                                .filter(|&ix| ix < g.in_w);
                            let d = &mut r[at..at + c];
                            match (row, ix) {
                                (Some(off), Some(ix)) => d.copy_from_slice(&src[off + ix * c..][..c]),
                                _ => d.iter_mut().for_each(|v| *v = fill),
                            }
                            at += c;
                        }
                    }
                }
            }
            // The tail is at most 3 bytes: a loop, not a memset call.
            for v in &mut r[at..] {
                *v = fill;
            }
        }
    }
}
