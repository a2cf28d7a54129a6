//! The `.xq` container: a fixed header, a section table and section payloads, each payload
//! aligned to [`SECTION_ALIGN`] bytes so constant data (packed weights) can be used in place
//! from a memory-mapped file.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `"XQPROG\0\x1a"` |
//! | 8 | 4 | format version ([`FORMAT_VERSION`]) |
//! | 12 | 4 | section count |
//! | 16 | 8 | total file size in bytes |
//! | 24 | 4 | CRC-32 of bytes 0..24 and 28..file size (everything but this field) |
//! | 28 | 36 | reserved, zero |
//! | 64 | 48 · count | section table: kind u32, flags u32, name [24 bytes, NUL-padded UTF-8], offset u64, length u64 |
//! | … | … | payloads, each at an offset that is a multiple of [`SECTION_ALIGN`] |
//!
//! Reading validates everything before handing out a slice: magic, version, declared size
//! against the real size, the checksum, the table's bounds, every section's bounds and
//! alignment, and name encoding. Counts and sizes from the file are checked against the
//! buffer's length before any allocation that depends on them.

use crate::{Error, Result};

/// File magic: identifies a libxq program and catches text-mode transfers (`\x1a`).
pub const MAGIC: [u8; 8] = *b"XQPROG\0\x1a";
/// The container format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Alignment of every section payload, in bytes (a cache line and an AVX-512 register).
pub const SECTION_ALIGN: usize = 64;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one section table entry.
pub const ENTRY_LEN: usize = 48;
/// Longest section name in bytes.
pub const MAX_NAME_LEN: usize = 24;
const CHECKSUM_AT: usize = 24;

/// One section of a container being written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    /// What the section holds (the runtime's numbering).
    pub kind: u32,
    /// Per-section flags (the runtime's meaning).
    pub flags: u32,
    /// A short name for reports and debugging (at most [`MAX_NAME_LEN`] bytes of UTF-8).
    pub name: &'a str,
    /// The payload.
    pub data: &'a [u8],
}

/// Builds a container in memory.
#[derive(Default)]
pub struct ContainerWriter<'a> {
    sections: Vec<Section<'a>>,
}

fn align_up(n: usize) -> usize {
    n.div_ceil(SECTION_ALIGN) * SECTION_ALIGN
}

impl<'a> ContainerWriter<'a> {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a section; fails if the name is too long or contains NUL.
    pub fn add(&mut self, section: Section<'a>) -> Result<()> {
        if section.name.len() > MAX_NAME_LEN || section.name.contains('\0') {
            return Err(Error::invalid_argument(
                "name",
                format!(
                    "section name `{}` must be at most {MAX_NAME_LEN} bytes without NUL",
                    section.name
                ),
            ));
        }
        if self.sections.len() >= u32::MAX as usize {
            return Err(Error::ResourceLimit("too many sections".into()));
        }
        self.sections.push(section);
        Ok(())
    }

    /// Serializes the container, checksum included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let table_end = HEADER_LEN + ENTRY_LEN * self.sections.len();
        let mut offsets = Vec::with_capacity(self.sections.len());
        let mut end = align_up(table_end);
        for s in &self.sections {
            offsets.push(end);
            end = align_up(end + s.data.len());
        }
        let mut out = vec![0u8; end];
        out[..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(self.sections.len() as u32).to_le_bytes());
        out[16..24].copy_from_slice(&(end as u64).to_le_bytes());
        for (i, (s, &offset)) in self.sections.iter().zip(&offsets).enumerate() {
            let e = &mut out[HEADER_LEN + i * ENTRY_LEN..HEADER_LEN + (i + 1) * ENTRY_LEN];
            e[0..4].copy_from_slice(&s.kind.to_le_bytes());
            e[4..8].copy_from_slice(&s.flags.to_le_bytes());
            e[8..8 + s.name.len()].copy_from_slice(s.name.as_bytes());
            e[32..40].copy_from_slice(&(offset as u64).to_le_bytes());
            e[40..48].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
            out[offset..offset + s.data.len()].copy_from_slice(s.data);
        }
        let crc = checksum(&out);
        out[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

fn checksum(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..CHECKSUM_AT]);
    hasher.update(&bytes[CHECKSUM_AT + 4..]);
    hasher.finalize()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A validated view of a container held in memory (e.g. a memory map).
#[derive(Debug)]
pub struct ContainerReader<'a> {
    bytes: &'a [u8],
    sections: Vec<Section<'a>>,
}

impl<'a> ContainerReader<'a> {
    /// Validates `bytes` as a container (see the module docs). The slice should start at an
    /// address aligned to [`SECTION_ALIGN`] for payloads to be aligned in memory too;
    /// [`ContainerReader::payloads_aligned`] tells.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let corrupt = |what: String| Error::CorruptFile(what);
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "{} bytes is too short for a program header",
                bytes.len()
            )));
        }
        if bytes[..8] != MAGIC {
            return Err(corrupt("not a libxq program (bad magic)".into()));
        }
        let version = le_u32(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "program format version {version} is not supported (this libxq reads version {FORMAT_VERSION})"
            )));
        }
        let declared = le_u64(bytes, 16);
        if declared != bytes.len() as u64 {
            return Err(corrupt(format!(
                "file is {} bytes but its header says {declared} (truncated or padded)",
                bytes.len()
            )));
        }
        let stored = le_u32(bytes, CHECKSUM_AT);
        let actual = checksum(bytes);
        if stored != actual {
            return Err(corrupt(format!(
                "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
            )));
        }
        let count = le_u32(bytes, 12) as usize;
        let table_end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|t| t.checked_add(HEADER_LEN))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                corrupt(format!(
                    "section table of {count} entries does not fit in the file"
                ))
            })?;
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            let e = &bytes[HEADER_LEN + i * ENTRY_LEN..HEADER_LEN + (i + 1) * ENTRY_LEN];
            let raw_name = &e[8..8 + MAX_NAME_LEN];
            let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(MAX_NAME_LEN);
            if raw_name[name_len..].iter().any(|&b| b != 0) {
                return Err(corrupt(format!("section {i}: name is not NUL-padded")));
            }
            let name = std::str::from_utf8(&raw_name[..name_len])
                .map_err(|_| corrupt(format!("section {i}: name is not UTF-8")))?;
            let (offset, len) = (le_u64(e, 32), le_u64(e, 40));
            let end = offset.checked_add(len).filter(|&end| end <= bytes.len() as u64);
            if end.is_none() || offset < table_end as u64 {
                return Err(corrupt(format!(
                    "section {i} (`{name}`): range {offset}+{len} lies outside the payload area"
                )));
            }
            if offset % SECTION_ALIGN as u64 != 0 {
                return Err(corrupt(format!(
                    "section {i} (`{name}`): offset {offset} is not aligned"
                )));
            }
            let (offset, len) = (offset as usize, len as usize);
            sections.push(Section {
                kind: le_u32(e, 0),
                flags: le_u32(e, 4),
                name,
                data: &bytes[offset..offset + len],
            });
        }
        Ok(ContainerReader { bytes, sections })
    }

    /// The sections, in file order.
    pub fn sections(&self) -> &[Section<'a>] {
        &self.sections
    }

    /// The first section of a kind, or an error naming what is missing.
    pub fn require(&self, kind: u32, what: &str) -> Result<&Section<'a>> {
        self.sections
            .iter()
            .find(|s| s.kind == kind)
            .ok_or_else(|| Error::CorruptFile(format!("program has no {what} section")))
    }

    /// Whether every payload starts at a [`SECTION_ALIGN`]-aligned address in memory.
    pub fn payloads_aligned(&self) -> bool {
        (self.bytes.as_ptr() as usize).is_multiple_of(SECTION_ALIGN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let weights: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mut w = ContainerWriter::new();
        w.add(Section {
            kind: 1,
            flags: 0,
            name: "graph",
            data: b"{\"nodes\": []}",
        })
        .unwrap();
        w.add(Section {
            kind: 2,
            flags: 5,
            name: "weights",
            data: &weights,
        })
        .unwrap();
        w.add(Section {
            kind: 3,
            flags: 0,
            name: "",
            data: &[],
        })
        .unwrap();
        w.to_bytes()
    }

    #[test]
    fn round_trips_sections_with_aligned_offsets() {
        let bytes = sample();
        let r = ContainerReader::parse(&bytes).unwrap();
        let s = r.sections();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].kind, s[0].name, s[0].data),
            (1, "graph", &b"{\"nodes\": []}"[..])
        );
        assert_eq!((s[1].kind, s[1].flags, s[1].data.len()), (2, 5, 300));
        assert_eq!(s[1].data[299], (299u32 * 7) as u8);
        for sec in s {
            assert_eq!(
                (sec.data.as_ptr() as usize - bytes.as_ptr() as usize) % SECTION_ALIGN,
                0
            );
        }
        assert_eq!(r.require(2, "weights").unwrap().name, "weights");
        assert!(r
            .require(9, "plan")
            .unwrap_err()
            .to_string()
            .contains("no plan section"));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(
                matches!(ContainerReader::parse(&bytes[..len]), Err(Error::CorruptFile(_))),
                "len {len}"
            );
        }
    }

    #[test]
    fn wrong_magic_version_and_checksum_have_clear_messages() {
        let mut b = sample();
        b[0] = b'Y';
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
        let mut b = sample();
        b[8] = 99;
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("version 99"));
        let mut b = sample();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    /// Rewrites the checksum so that structural checks (not the CRC) must catch the damage.
    fn reseal(b: &mut [u8]) {
        let crc = checksum(b);
        b[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn hostile_tables_are_rejected_without_allocating() {
        let mut b = sample();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut b);
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("does not fit"));

        let mut b = sample();
        let e = HEADER_LEN + ENTRY_LEN;
        b[e + 40..e + 48].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut b);
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("outside"));

        let mut b = sample();
        b[e + 32..e + 40].copy_from_slice(&0u64.to_le_bytes());
        reseal(&mut b);
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("outside"));
    }

    #[test]
    fn bad_names_are_rejected() {
        let mut w = ContainerWriter::new();
        assert!(w
            .add(Section {
                kind: 0,
                flags: 0,
                name: "this name is far too long!",
                data: &[]
            })
            .is_err());
        let mut b = sample();
        b[HEADER_LEN + 8] = 0xff;
        reseal(&mut b);
        assert!(ContainerReader::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_damage_never_panics(flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8),
                                      reseal_it in any::<bool>()) {
            let mut b = sample();
            for (at, v) in flips {
                let at = at % b.len();
                b[at] = v;
            }
            if reseal_it {
                reseal(&mut b);
            }
            let _ = ContainerReader::parse(&b);
        }
    }
}
