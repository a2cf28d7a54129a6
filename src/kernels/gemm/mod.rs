//! Quantized GEMM (fully connected, 1×1 convolution, and the engine of k×k convolution):
//! `i8` activations × `i8` weights (per-channel or per-tensor scales) → `i8`, with the bias,
//! zero-point compensation and fp32 requantization fused (see [`crate::kernels`] docs).
//!
//! Use: [`PackedGemm::pack`] once, then [`PackedGemm::run`] on ranges of the
//! [`PackedGemm::tile_count`] tiles. Tile `t` covers rows `(t / n_tiles) * mr ..` and columns
//! `(t % n_tiles) * tile_cols ..`; distinct tiles write disjoint outputs.
//!
//! ```
//! use xq::kernels::gemm::{GemmQuant, GemmWeights, PackedGemm};
//! use xq::kernels::{table, OutputRange, QuantParams};
//!
//! let (m, n, k) = (3, 2, 4);
//! let w = [1i8, 2, 3, 4, -1, -2, -3, -4]; // n × k
//! let weights = GemmWeights { n, ks: 1, kc: k, weights: &w, scales: &[0.5, 0.25], bias: None };
//! let q = GemmQuant {
//!     input: QuantParams { scale: 1.0, zero_point: 0 },
//!     output: QuantParams { scale: 1.0, zero_point: 0 },
//!     range: OutputRange::FULL,
//! };
//! let packed = PackedGemm::pack(table::selected_isa()?, &weights, &q)?;
//! let x = [1i8, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 4]; // m × k
//! let mut y = [0i8; 6];
//! let tiles = packed.tile_count(m);
//! // A runtime would hand disjoint sub-ranges to its threads (see `run_shared`).
//! packed.run(m, &x, k, &mut y, n, 0..tiles)?;
//! assert_eq!(y, [5, -2, 1, 0, 8, -4]); // e.g. row 0: 10·0.5 = 5, −10·0.25 = −2.5 → −2
//! # Ok::<(), xq::Error>(())
//! ```

/// Runs `$kernel::<MR, PANELS>` for a tile's row count (1–6) and panel count: each listed
/// panel count by itself, any other as `$last`. The register-tiled kernels of every SIMD
/// variant are monomorphised over both.
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch_tile {
    ($t:expr, $kernel:ident, [$($p:literal),*], $last:literal) => {
        match $t.rows {
            1 => dispatch_tile!(@panels $t, $kernel, 1, [$($p),*], $last),
            2 => dispatch_tile!(@panels $t, $kernel, 2, [$($p),*], $last),
            3 => dispatch_tile!(@panels $t, $kernel, 3, [$($p),*], $last),
            4 => dispatch_tile!(@panels $t, $kernel, 4, [$($p),*], $last),
            5 => dispatch_tile!(@panels $t, $kernel, 5, [$($p),*], $last),
            _ => dispatch_tile!(@panels $t, $kernel, 6, [$($p),*], $last),
        }
    };
    (@panels $t:expr, $kernel:ident, $mr:literal, [$($p:literal),*], $last:literal) => {
        match $t.panels {
            $($p => $kernel::<$mr, $p>($t),)*
            _ => $kernel::<$mr, $last>($t),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512vnni;
#[cfg(target_arch = "x86_64")]
mod avxvnni;
pub(crate) mod pack;
mod scalar;
pub(crate) mod variants;

use super::buffer::{AlignedBytes, PackedBytes, PACKED_ALIGN};
use super::output::SharedOutput;
use super::requant::{OutputRange, QuantParams, Requantizer};
use super::table::{gemm_kernel, GemmKernelInfo};
use crate::cpu::Isa;
use crate::qscheme::{conv_multiplier, validate_multiplier, ChannelScales};
use crate::{Error, Result};
use pack::PanelGeometry;
use std::cell::RefCell;
use std::ops::Range;

/// Unpacked GEMM weights: `n` output channels, each with `ks × kc` reduction elements.
#[derive(Clone, Copy, Debug)]
pub struct GemmWeights<'a> {
    /// Output channels (columns of the result).
    pub n: usize,
    /// Segments of an A row (1 for fully connected; kernel height × width for convolution).
    pub ks: usize,
    /// Elements per segment (K for fully connected; input channels per group for convolution).
    pub kc: usize,
    /// `n × ks × kc` weights, row-major (the layout of ONNX Gemm's transposed B / OHWI).
    pub weights: &'a [i8],
    /// Weight scales: one (per tensor) or `n` (per output channel). Weight zero point is 0.
    pub scales: &'a [f32],
    /// Optional `i32` bias with scale `s_x * s_w[c]`, zero point 0.
    pub bias: Option<&'a [i32]>,
}

/// Activation quantization of a GEMM: input and output qparams and the fused output range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmQuant {
    /// Input (A) quantization.
    pub input: QuantParams,
    /// Output quantization.
    pub output: QuantParams,
    /// Output range after a fused activation.
    pub range: OutputRange,
}

/// Weights packed once for one kernel variant, ready to run any number of times.
#[derive(Debug)]
pub struct PackedGemm {
    kernel: &'static GemmKernelInfo,
    geo: PanelGeometry,
    data: PackedBytes,
    rq: Requantizer,
}

/// One microkernel call. Contract: `a` points to `rows` packed A rows of `kpad` elements
/// (`kpad * a_elem_bytes` bytes each); `w` points to `panels` consecutive, aligned panels
/// of `panel_bytes`; the output block of `out` (`rows × cols` at its stride) may be
/// written; `rows <= mr`, `panels <= panels_per_tile`, `cols <= panels * panel_nr`.
pub(crate) struct TileArgs {
    pub rows: usize,
    pub panels: usize,
    pub cols: usize,
    pub kpad: usize,
    pub a: *const u8,
    pub w: *const u8,
    pub panel_bytes: usize,
    pub out: TileOut,
}

/// Where and how a tile's accumulators are written (the epilogue).
#[derive(Clone, Copy)]
pub(crate) enum TileOut {
    /// `i8` output: `requantize((acc as f32) * multiplier[c])`.
    Quantized {
        /// Row 0, column 0 of the tile.
        c: *mut i8,
        /// Row stride in elements.
        stride: usize,
        /// Output zero point and range.
        rq: Requantizer,
    },
    /// `f32` output of dynamic quantization:
    /// `((acc - zp[r]·Σw[c]) as f32) * (scale[r] * s_w[c]) + bias[c]`.
    Dequantized {
        /// Row 0, column 0 of the tile.
        y: *mut f32,
        /// Row stride in elements.
        stride: usize,
        /// Scales of the tile's rows: row `r` uses `row_scale[r * row_step]`.
        row_scale: *const f32,
        /// Zero points of the tile's rows: row `r` uses `row_zp[r * row_step]`.
        row_zp: *const i32,
        /// 1 for per-row parameters, 0 for one pair shared by every row.
        row_step: usize,
    },
}

thread_local! {
    /// Per-thread scratch for packed A rows, grown on demand and reused across calls.
    static A_SCRATCH: RefCell<AlignedBytes> = RefCell::new(AlignedBytes::zeroed(0).unwrap());
    /// Per-thread list of a tile's A segments (capacity reused across calls; emptied
    /// before every use, so no pointer outlives the call that stored it).
    static SEG_PTRS: RefCell<Vec<*const i8>> = const { RefCell::new(Vec::new()) };
}

impl PackedGemm {
    /// Packs `w` for the kernel variant of `isa` with the given activation quantization.
    pub fn pack(isa: Isa, w: &GemmWeights, q: &GemmQuant) -> Result<PackedGemm> {
        q.input.validate("input")?;
        q.output.validate("output")?;
        Self::pack_with(isa, w, q, None)
    }

    /// Packs for `q`, plus optional `f32` biases for the dynamic-quantization epilogue.
    pub(crate) fn pack_with(
        isa: Isa,
        w: &GemmWeights,
        q: &GemmQuant,
        float_bias: Option<&[f32]>,
    ) -> Result<PackedGemm> {
        super::ensure_supported(isa)?;
        let kernel = gemm_kernel(isa);
        let geo = PanelGeometry::new(kernel, w.n, w.ks, w.kc)?;
        let expected = w.n.checked_mul(geo.kpad).map(|_| w.n * w.ks * w.kc);
        if expected != Some(w.weights.len()) {
            return Err(Error::ShapeMismatch(format!(
                "weights have {} elements, expected n×ks×kc = {}×{}×{}",
                w.weights.len(),
                w.n,
                w.ks,
                w.kc
            )));
        }
        let Some(scales) = ChannelScales::new(w.scales, w.n) else {
            return Err(Error::ShapeMismatch(format!(
                "{} weight scales for {} output channels (need 1 or {})",
                w.scales.len(),
                w.n,
                w.n
            )));
        };
        let mut multipliers = Vec::with_capacity(w.n);
        for c in 0..w.n {
            multipliers.push(conv_multiplier(q.input.scale, scales.get(c), q.output.scale)?);
        }
        let zero_bias;
        let bias = match w.bias {
            Some(b) if b.len() == w.n => b,
            Some(b) => {
                return Err(Error::ShapeMismatch(format!(
                    "bias has {} elements, expected {}",
                    b.len(),
                    w.n
                )))
            }
            None => {
                zero_bias = vec![0; w.n];
                &zero_bias
            }
        };
        if float_bias.is_some_and(|b| b.len() != w.n) {
            return Err(Error::ShapeMismatch(format!(
                "float bias length differs from n = {}",
                w.n
            )));
        }
        let data = pack::pack_weights(
            kernel,
            &geo,
            w.weights,
            bias,
            &multipliers,
            float_bias,
            q.input.zero_point,
        )?;
        Ok(PackedGemm {
            kernel,
            geo,
            data: PackedBytes::Built(data),
            rq: Requantizer::new(q.output.zero_point, q.range),
        })
    }

    /// Takes weights packed earlier by [`PackedGemm::pack`] for the variant of `isa` with the
    /// same `n`, `ks`, `kc` (e.g. stored in a program file and used in place). Fails with
    /// [`Error::CorruptFile`] when `data` does not have the packed size or alignment, or holds
    /// a multiplier that is not positive and finite; other packed values are taken as they are
    /// (no value of them can make a kernel read or write out of bounds).
    pub fn from_packed(
        isa: Isa,
        n: usize,
        ks: usize,
        kc: usize,
        q: &GemmQuant,
        data: PackedBytes,
    ) -> Result<PackedGemm> {
        super::ensure_supported(isa)?;
        q.input.validate("input")?;
        q.output.validate("output")?;
        let kernel = gemm_kernel(isa);
        let geo = PanelGeometry::new(kernel, n, ks, kc)?;
        let bytes = data.as_slice();
        if Some(bytes.len()) != geo.panels.checked_mul(geo.panel_bytes) {
            return Err(Error::CorruptFile(format!(
                "packed weights of {n}×{ks}×{kc} for {} have {} bytes, expected {}",
                kernel.name,
                bytes.len(),
                geo.panels * geo.panel_bytes
            )));
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(PACKED_ALIGN) {
            return Err(Error::CorruptFile("packed weights are not aligned".into()));
        }
        for (p, panel) in bytes.chunks_exact(geo.panel_bytes).enumerate() {
            let cols = (n - p * geo.nr).min(geo.nr);
            let multipliers = &panel[geo.multiplier_offset()..][..cols * 4];
            for word in multipliers.chunks_exact(4) {
                let m = f32::from_ne_bytes(word.try_into().expect("4 bytes"));
                validate_multiplier(m, "packed multipliers")
                    .map_err(|e| Error::CorruptFile(format!("packed weights: {e}")))?;
            }
        }
        Ok(PackedGemm {
            kernel,
            geo,
            data,
            rq: Requantizer::new(q.output.zero_point, q.range),
        })
    }

    /// The packed weights (what [`PackedGemm::from_packed`] takes back).
    pub fn packed_bytes(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Whether the packed weights are used in place from shared bytes (not built at load).
    pub fn is_shared(&self) -> bool {
        self.data.is_shared()
    }

    /// The kernel variant these weights were packed for.
    pub fn kernel(&self) -> &'static GemmKernelInfo {
        self.kernel
    }

    /// The output requantizer (zero point and range).
    pub(crate) fn requantizer(&self) -> Requantizer {
        self.rq
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.geo.n
    }

    /// Reduction length per output (`ks * kc`, without padding).
    pub fn k(&self) -> usize {
        self.geo.ks * self.geo.kc
    }

    /// Number of column tiles.
    pub fn n_tiles(&self) -> usize {
        self.geo.n.div_ceil(self.kernel.tile_cols())
    }

    /// Number of tiles of an `m`-row GEMM.
    pub fn tile_count(&self, m: usize) -> usize {
        m.div_ceil(self.kernel.mr) * self.n_tiles()
    }

    /// Computes tiles `tiles` of `output[m × n] = requant(input[m × k] · Wᵀ)`.
    ///
    /// Row `i` of the input starts at `i * input_stride` (≥ k) and row `i` of the output at
    /// `i * output_stride` (≥ n).
    pub fn run(
        &self,
        m: usize,
        input: &[i8],
        input_stride: usize,
        output: &mut [i8],
        output_stride: usize,
        tiles: Range<usize>,
    ) -> Result<()> {
        let out = SharedOutput::new(output);
        // SAFETY: `out` borrows `output` exclusively for this call, so no other writer exists.
        unsafe { self.run_shared(m, input, input_stride, &out, output_stride, tiles) }
    }

    /// Like [`PackedGemm::run`] but writing through a [`SharedOutput`], so several threads
    /// can compute different tiles of one output.
    ///
    /// # Safety
    /// Calls that run concurrently on the same output must have disjoint tile ranges.
    pub unsafe fn run_shared(
        &self,
        m: usize,
        input: &[i8],
        input_stride: usize,
        output: &SharedOutput,
        output_stride: usize,
        tiles: Range<usize>,
    ) -> Result<()> {
        let k = self.k();
        check_matrix("input", m, k, input_stride, input.len())?;
        check_matrix("output", m, self.geo.n, output_stride, output.len())?;
        let kc = self.geo.kc;
        let segment = |row: usize, s: usize| &input[row * input_stride + s * kc..][..kc];
        // Rows need no segment padding when a row is one segment of whole K groups.
        let unpadded = self.geo.ks == 1 && self.geo.kc == self.geo.kc4;
        let dense = (unpadded && input_stride == k).then(|| (&input[..m * k], 0));
        // SAFETY: forwarded contract; rows and segments are bounds-checked slices.
        unsafe { self.run_rows(m, segment, dense, output, output_stride, tiles) }
    }

    /// The quantized-output tile loop: tile outputs go to `output` at `output_stride`.
    ///
    /// # Safety
    /// `output` must hold `m` rows of `n` at stride `output_stride` (checked by callers) and
    /// concurrent calls must use disjoint tiles.
    pub(crate) unsafe fn run_rows<'a>(
        &self,
        m: usize,
        segment: impl Fn(usize, usize) -> &'a [i8],
        dense: Option<(&'a [i8], usize)>,
        output: &SharedOutput,
        output_stride: usize,
        tiles: Range<usize>,
    ) -> Result<()> {
        let rq = self.rq;
        let out = |row0: usize, col0: usize| TileOut::Quantized {
            // SAFETY: (row0, col0) is inside the output (caller contract).
            c: unsafe { output.as_ptr().add(row0 * output_stride + col0) },
            stride: output_stride,
            rq,
        };
        // SAFETY: forwarded contract.
        unsafe { self.run_tiles(m, segment, dense, out, tiles) }
    }

    /// The tile loop shared by GEMM, convolution and dynamic GEMM: `segment(row, s)` yields
    /// `kc` elements; `out(row0, col0)` gives the epilogue of the tile at that corner.
    /// `dense`, when given, is `(block, first_row)`: rows `first_row..` of A laid out back to
    /// back as `kpad` elements each (segments already padded to `kc4`, padding values
    /// irrelevant); it lets packing convert whole tiles at once. Tiles whose rows it does not
    /// hold are packed from `segment`.
    ///
    /// # Safety
    /// Every `out(row0, col0)` must satisfy the [`TileArgs`] output contract for the tile
    /// there, and concurrent calls must use disjoint tiles.
    pub(crate) unsafe fn run_tiles<'a>(
        &self,
        m: usize,
        segment: impl Fn(usize, usize) -> &'a [i8],
        dense: Option<(&'a [i8], usize)>,
        out: impl Fn(usize, usize) -> TileOut,
        tiles: Range<usize>,
    ) -> Result<()> {
        let total = self.tile_count(m);
        if tiles.start > tiles.end || tiles.end > total {
            return Err(Error::invalid_argument(
                "tiles",
                format!("range {tiles:?} is outside 0..{total}"),
            ));
        }
        let kern = self.kernel;
        let n_tiles = self.n_tiles();
        let row_bytes = self.geo.kpad * kern.a_elem_bytes;
        let kpad = self.geo.kpad;
        A_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < kern.mr * row_bytes {
                *scratch = AlignedBytes::zeroed(kern.mr * row_bytes)?;
            }
            let a_buf = scratch.as_mut_slice();
            let mut packed_mt = usize::MAX;
            let mut seg_ptrs = SEG_PTRS.with(|v| std::mem::take(&mut *v.borrow_mut()));
            for t in tiles {
                let (mt, nt) = (t / n_tiles, t % n_tiles);
                let row0 = mt * kern.mr;
                let rows = (m - row0).min(kern.mr);
                if mt != packed_mt {
                    let block = dense.and_then(|(d, first)| {
                        let start = row0.checked_sub(first)? * kpad;
                        d.get(start..start + rows * kpad)
                    });
                    // SAFETY: `pack` only accepted an ISA this CPU supports.
                    unsafe {
                        match block {
                            Some(block) => pack::pack_a_block(kern, block, a_buf),
                            None => pack::pack_a(
                                kern,
                                &self.geo,
                                rows,
                                |r, s| segment(row0 + r, s),
                                &mut seg_ptrs,
                                a_buf,
                            ),
                        }
                    }
                    packed_mt = mt;
                }
                let col0 = nt * kern.tile_cols();
                let cols = (self.geo.n - col0).min(kern.tile_cols());
                let first_panel = col0 / kern.panel_nr;
                let args = TileArgs {
                    rows,
                    panels: cols.div_ceil(kern.panel_nr),
                    cols,
                    kpad: self.geo.kpad,
                    a: a_buf.as_ptr(),
                    // SAFETY: first_panel < panels, so the offset is inside `data`.
                    w: unsafe {
                        self.data
                            .as_slice()
                            .as_ptr()
                            .add(first_panel * self.geo.panel_bytes)
                    },
                    panel_bytes: self.geo.panel_bytes,
                    out: out(row0, col0),
                };
                // SAFETY: `args` satisfies the TileArgs contract by construction above, and
                // `pack` only accepted an ISA this CPU supports.
                unsafe { (kern.tile)(&args) };
            }
            seg_ptrs.clear();
            SEG_PTRS.with(|v| *v.borrow_mut() = seg_ptrs);
            Ok(())
        })
    }
}

/// Checks that `rows` rows of `cols` elements at `stride` fit in `len` elements.
pub(crate) fn check_matrix(
    name: &'static str,
    rows: usize,
    cols: usize,
    stride: usize,
    len: usize,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    if stride < cols {
        return Err(Error::invalid_argument(
            name,
            format!("row stride {stride} < row length {cols}"),
        ));
    }
    let need = (rows - 1)
        .checked_mul(stride)
        .and_then(|x| x.checked_add(cols))
        .ok_or_else(|| Error::invalid_argument(name, "size overflows"))?;
    if need > len {
        return Err(Error::ShapeMismatch(format!(
            "{name} has {len} elements, needs {need} ({rows} rows × {cols} at stride {stride})"
        )));
    }
    Ok(())
}
