//! The program file: a [`ProgramSpec`] in a `.xq` container.
//!
//! Sections: `program` (kind 1: inputs, outputs, values and steps with each kernel's
//! unpacked int8 weights, scales and int32 bias, encoded by [`crate::program::codec`]),
//! `fallback` (kind 2: the interpreter's nodes and constants as ONNX protobuf; empty when
//! everything is delegated), `report` (kind 3: the partitioning report, UTF-8),
//! optionally `packed` (kind 4, [`super::packed`]: the GEMM weights packed for the kernels of
//! the saving process's ISA) and, when the program has it, `report_data` (kind 5: the
//! report as data, encoded by [`crate::program::report`]; a reader that does not know its
//! encoding version loads the program without it). A loading process whose kernels match
//! uses the packed weights in place from the memory map; any other packs the unpacked
//! weights, so one file serves every ISA. Readers that predate the packed or the report data
//! section ignore it (the container skips unknown kinds), and files written before the
//! report data section load without it. Every count and length read from a file is checked
//! against the bytes that remain before anything is allocated.
//!
//! This module knows the program ([`crate::program`]), not the runtime: packing weights for
//! an ISA is the runtime's job, so the packed section is written from blobs the runtime
//! hands over ([`to_bytes_with_packed`], called by `runtime::Program::to_bytes`,
//! which saves the weights its kernels already packed), and read back as blobs per step that
//! the runtime's kernel steps take ([`from_bytes_for`]). [`to_bytes`] and [`save`] write a
//! program without that section.

use super::container::{ContainerReader, ContainerWriter, Section};
use super::packed::{PackedSection, KIND_PACKED};
use crate::ir::Graph;
use crate::program::codec::{corrupt, decode_program, encode_program};
use crate::program::{ProgramSpec, ReportData};
use crate::{Error, Result};

const KIND_PROGRAM: u32 = 1;
const KIND_FALLBACK: u32 = 2;
const KIND_REPORT: u32 = 3;
const KIND_REPORT_DATA: u32 = 5;

/// Serialises a lowered program into `.xq` bytes without a packed section (a loading process
/// packs the weights); `runtime::Program::to_bytes` adds the packed weights of its
/// kernels.
pub fn to_bytes(spec: &ProgramSpec) -> Result<Vec<u8>> {
    to_bytes_with_packed(spec, None)
}

/// Serialises a lowered program with the given packed section payload (encoded by
/// [`super::packed::encode`]), if any.
pub fn to_bytes_with_packed(spec: &ProgramSpec, packed: Option<&[u8]>) -> Result<Vec<u8>> {
    let program = encode_program(spec);
    let fallback = if spec.fallback.nodes.is_empty() {
        Vec::new()
    } else {
        crate::onnx::to_bytes(&spec.fallback)?
    };
    let mut w = ContainerWriter::new();
    for (kind, name, data) in [
        (KIND_PROGRAM, "program", program.as_slice()),
        (KIND_FALLBACK, "fallback", fallback.as_slice()),
        (KIND_REPORT, "report", spec.report.as_bytes()),
    ] {
        w.add(Section {
            kind,
            flags: 0,
            name,
            data,
        })?;
    }
    if let Some(data) = packed {
        w.add(Section {
            kind: KIND_PACKED,
            flags: 0,
            name: "packed",
            data,
        })?;
    }
    let report_data = spec.report_data.as_ref().map(|r| r.encode());
    if let Some(data) = &report_data {
        w.add(Section {
            kind: KIND_REPORT_DATA,
            flags: 0,
            name: "report_data",
            data,
        })?;
    }
    Ok(w.to_bytes())
}

/// Parses `.xq` bytes (validated container) into a lowered program; a packed section is
/// not read.
pub fn from_bytes(bytes: &[u8]) -> Result<ProgramSpec> {
    decode_sections(&ContainerReader::parse(bytes)?, None)
}

/// A program file decoded for loading by [`from_bytes_for`], borrowing from the file's bytes.
pub struct LoadView<'a> {
    /// The program, with empty `weights` in every convolution and fully connected step.
    pub spec: ProgramSpec,
    /// Per step: the int8 weights the program leaves empty, in place in the file.
    pub weights: Vec<Option<&'a [i8]>>,
    /// The packed section, when it was written for the kernels asked for.
    pub packed: Option<PackedSection<'a>>,
}

/// Views `bytes` as `i8`.
fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: `i8` and `u8` have the same size and alignment and every bit pattern is valid
    // for both.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
}

/// Parses `.xq` bytes for loading with the kernels of `isa`, without copying constant data:
/// the int8 weights of convolutions and fully connected layers stay in `bytes` (for packing
/// at load), and the packed section is returned (validated, in place) when it was written
/// for exactly those kernels (same ISA and GEMM kernel name).
pub fn from_bytes_for(bytes: &[u8], isa: crate::cpu::Isa) -> Result<LoadView<'_>> {
    let c = ContainerReader::parse(bytes)?;
    let packed = match c.sections().iter().find(|s| s.kind == KIND_PACKED) {
        Some(s) => PackedSection::parse(s.data)?,
        None => None,
    }
    .filter(|p| p.isa == isa && p.kernel == crate::kernels::table::gemm_kernel(isa).name);
    let mut weights = Vec::new();
    let spec = decode_sections(&c, Some(&mut weights))?;
    Ok(LoadView {
        spec,
        weights: weights.into_iter().map(|w| w.map(as_i8)).collect(),
        packed,
    })
}

fn decode_sections<'a>(
    c: &ContainerReader<'a>,
    views: Option<&mut Vec<Option<&'a [u8]>>>,
) -> Result<ProgramSpec> {
    let program = c.require(KIND_PROGRAM, "program")?.data;
    let fallback = c.require(KIND_FALLBACK, "fallback")?.data;
    let report = c.require(KIND_REPORT, "report")?.data;
    let fallback = if fallback.is_empty() {
        Graph::default()
    } else {
        crate::onnx::load_bytes(fallback, None)?
    };
    let report = String::from_utf8(report.to_vec()).map_err(|_| corrupt("report is not UTF-8"))?;
    let report_data = match c.sections().iter().find(|s| s.kind == KIND_REPORT_DATA) {
        Some(s) => ReportData::decode(s.data)?,
        None => None,
    };
    Ok(ProgramSpec {
        report_data,
        ..decode_program(program, fallback, report, views)?
    })
}

/// Writes a program file without a packed section (see [`to_bytes`]).
pub fn save(spec: &ProgramSpec, path: impl AsRef<std::path::Path>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(spec)?).map_err(|e| Error::io(path.display(), e))
}

/// Reads a program file through a memory map.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<ProgramSpec> {
    let bytes = super::ProgramBytes::map_file(path.as_ref())?;
    from_bytes(bytes.as_slice())
}
