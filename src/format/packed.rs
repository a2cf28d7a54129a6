//! The `packed` section of a program file: kernel weights already packed for one kernel
//! variant (the one the saving process ran), so that a process running the same variant uses
//! them in place from the memory map instead of packing at load. The unpacked weights stay in
//! the `program` section; a process running another variant ignores this section and packs
//! those.
//!
//! Layout (integers little-endian, offsets from the section start, which the container
//! aligns to 64 bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | encoding version ([`PACKED_ENCODING`]); other versions are ignored, not errors |
//! | 4 | 4 | entry count |
//! | 8 | 8 | reserved, zero |
//! | 16 | 16 | ISA name (`Isa`'s display name), NUL-padded |
//! | 32 | 48 | GEMM kernel name (`GemmKernelInfo::name`), NUL-padded |
//! | 80 | 24 · count | entries: step u32, part u32, offset u64, length u64 |
//! | … | … | blobs, each at a multiple of [`BLOB_ALIGN`] |
//!
//! A step is an index into the program's steps; a part is a convolution group (0 for a
//! fully connected layer). Entries are sorted by (step, part) without duplicates.

use crate::cpu::Isa;
use crate::{Error, Result};

/// Section kind of packed weights in the program container.
pub const KIND_PACKED: u32 = 4;
/// Version of this section's encoding.
pub const PACKED_ENCODING: u32 = 1;
/// Alignment of every blob inside the section (and so in memory).
pub const BLOB_ALIGN: usize = 64;
const HEADER_LEN: usize = 80;
const ENTRY_LEN: usize = 24;
const ISA_AT: usize = 16;
const ISA_LEN: usize = 16;
const KERNEL_AT: usize = 32;
const KERNEL_LEN: usize = 48;

/// One packed weight buffer: step `step`, part `part`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedBlob<'a> {
    /// Index of the kernel step in the program.
    pub step: usize,
    /// Convolution group (0 for a fully connected layer).
    pub part: usize,
    /// The packed bytes.
    pub data: &'a [u8],
}

fn corrupt(what: String) -> Error {
    Error::CorruptFile(format!("packed section is corrupt: {what}"))
}

fn put_name(out: &mut [u8], name: &str, what: &str) -> Result<()> {
    if name.len() > out.len() || name.contains('\0') {
        return Err(Error::invalid_argument(
            "name",
            format!(
                "{what} name `{name}` must be at most {} bytes without NUL",
                out.len()
            ),
        ));
    }
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(())
}

fn get_name<'a>(raw: &'a [u8], what: &str) -> Result<&'a str> {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    if raw[len..].iter().any(|&b| b != 0) {
        return Err(corrupt(format!("{what} name is not NUL-padded")));
    }
    std::str::from_utf8(&raw[..len]).map_err(|_| corrupt(format!("{what} name is not UTF-8")))
}

/// Encodes `blobs` (sorted by (step, part), no duplicates) packed for `kernel` of `isa`.
pub fn encode(isa: Isa, kernel: &str, blobs: &[PackedBlob]) -> Result<Vec<u8>> {
    if blobs
        .windows(2)
        .any(|w| (w[0].step, w[0].part) >= (w[1].step, w[1].part))
    {
        return Err(Error::Internal(
            "packed blobs are not sorted by (step, part)".into(),
        ));
    }
    let too_big = |what: &str| Error::ResourceLimit(format!("packed section: {what} exceeds 32 bits"));
    let count = u32::try_from(blobs.len()).map_err(|_| too_big("entry count"))?;
    let mut offsets = Vec::with_capacity(blobs.len());
    let mut end = (HEADER_LEN + ENTRY_LEN * blobs.len()).next_multiple_of(BLOB_ALIGN);
    for b in blobs {
        offsets.push(end);
        end = (end + b.data.len()).next_multiple_of(BLOB_ALIGN);
    }
    let mut out = vec![0u8; end];
    out[0..4].copy_from_slice(&PACKED_ENCODING.to_le_bytes());
    out[4..8].copy_from_slice(&count.to_le_bytes());
    put_name(&mut out[ISA_AT..ISA_AT + ISA_LEN], isa.name(), "ISA")?;
    put_name(&mut out[KERNEL_AT..KERNEL_AT + KERNEL_LEN], kernel, "kernel")?;
    for (i, (b, &offset)) in blobs.iter().zip(&offsets).enumerate() {
        let e = &mut out[HEADER_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
        e[0..4].copy_from_slice(&u32::try_from(b.step).map_err(|_| too_big("step"))?.to_le_bytes());
        e[4..8].copy_from_slice(&u32::try_from(b.part).map_err(|_| too_big("part"))?.to_le_bytes());
        e[8..16].copy_from_slice(&(offset as u64).to_le_bytes());
        e[16..24].copy_from_slice(&(b.data.len() as u64).to_le_bytes());
        out[offset..offset + b.data.len()].copy_from_slice(b.data);
    }
    Ok(out)
}

/// A validated packed section (see the module docs).
#[derive(Debug)]
pub struct PackedSection<'a> {
    /// The ISA the weights were packed for.
    pub isa: Isa,
    /// The GEMM kernel variant the weights were packed for.
    pub kernel: &'a str,
    blobs: Vec<PackedBlob<'a>>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> PackedSection<'a> {
    /// Validates a packed section. `Ok(None)` when it was written by another encoding version
    /// or for an ISA this build does not know (the program then packs its weights at load);
    /// [`Error::CorruptFile`] when it is damaged: table or blobs out of bounds, misaligned,
    /// unsorted or duplicated entries, bad names. Nothing is allocated from a size in the
    /// section before the size is checked against the section's length.
    pub fn parse(section: &'a [u8]) -> Result<Option<Self>> {
        if section.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "{} bytes is too short for its header",
                section.len()
            )));
        }
        if le_u32(section, 0) != PACKED_ENCODING {
            return Ok(None);
        }
        let Some(isa) = Isa::parse(get_name(&section[ISA_AT..ISA_AT + ISA_LEN], "ISA")?) else {
            return Ok(None);
        };
        let kernel = get_name(&section[KERNEL_AT..KERNEL_AT + KERNEL_LEN], "kernel")?;
        let count = le_u32(section, 4) as usize;
        let table_end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|t| t.checked_add(HEADER_LEN))
            .filter(|&end| end <= section.len())
            .ok_or_else(|| corrupt(format!("a table of {count} entries does not fit")))?;
        let mut blobs: Vec<PackedBlob<'a>> = Vec::with_capacity(count);
        for i in 0..count {
            let e = &section[HEADER_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
            let (step, part) = (le_u32(e, 0) as usize, le_u32(e, 4) as usize);
            let (offset, len) = (le_u64(e, 8), le_u64(e, 16));
            let end = offset.checked_add(len).filter(|&end| end <= section.len() as u64);
            if end.is_none() || offset < table_end as u64 {
                return Err(corrupt(format!(
                    "entry {i}: range {offset}+{len} lies outside the blob area"
                )));
            }
            if !offset.is_multiple_of(BLOB_ALIGN as u64) {
                return Err(corrupt(format!("entry {i}: offset {offset} is not aligned")));
            }
            if blobs.last().is_some_and(|b| (b.step, b.part) >= (step, part)) {
                return Err(corrupt(format!(
                    "entry {i}: entries are not sorted by (step, part)"
                )));
            }
            blobs.push(PackedBlob {
                step,
                part,
                data: &section[offset as usize..][..len as usize],
            });
        }
        Ok(Some(PackedSection { isa, kernel, blobs }))
    }

    /// Every blob, sorted by (step, part).
    pub fn blobs(&self) -> &[PackedBlob<'a>] {
        &self.blobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KERNEL: &str = "qs8-qc8w-gemm-6x64c4-fp32-avx512vnni";

    fn sample() -> Vec<u8> {
        let (a, b) = (vec![1u8; 100], vec![2u8; 64]);
        let blobs = [
            PackedBlob {
                step: 1,
                part: 0,
                data: &a,
            },
            PackedBlob {
                step: 1,
                part: 1,
                data: &b,
            },
            PackedBlob {
                step: 7,
                part: 0,
                data: &[],
            },
        ];
        encode(Isa::Avx2, KERNEL, &blobs).unwrap()
    }

    #[test]
    fn round_trips_aligned_blobs() {
        let bytes = sample();
        let s = PackedSection::parse(&bytes).unwrap().unwrap();
        assert_eq!((s.isa, s.kernel), (Isa::Avx2, KERNEL));
        let b = s.blobs();
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].step, b[0].part, b[0].data), (1, 0, &[1u8; 100][..]));
        assert_eq!((b[1].step, b[1].part, b[1].data), (1, 1, &[2u8; 64][..]));
        assert_eq!((b[2].step, b[2].data.len()), (7, 0));
        for blob in b {
            assert_eq!(
                (blob.data.as_ptr() as usize - bytes.as_ptr() as usize) % BLOB_ALIGN,
                0
            );
        }
    }

    #[test]
    fn unsorted_blobs_and_long_names_are_refused_when_writing() {
        let blobs = [
            PackedBlob {
                step: 2,
                part: 0,
                data: &[],
            },
            PackedBlob {
                step: 2,
                part: 0,
                data: &[],
            },
        ];
        assert!(encode(Isa::Scalar, KERNEL, &blobs).is_err());
        assert!(encode(Isa::Scalar, &"k".repeat(49), &[]).is_err());
    }

    #[test]
    fn other_versions_and_unknown_isas_are_ignored() {
        let mut b = sample();
        b[0] = 2;
        assert!(PackedSection::parse(&b).unwrap().is_none());
        let mut b = sample();
        b[ISA_AT..ISA_AT + 4].copy_from_slice(b"neon");
        assert!(PackedSection::parse(&b).unwrap().is_none());
    }

    #[test]
    fn damaged_tables_are_corrupt_file_errors() {
        let e = HEADER_LEN;
        type Damage = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Damage, &str)> = vec![
            (Box::new(|b| b.truncate(HEADER_LEN - 1)), "too short"),
            (
                Box::new(|b| b[4..8].copy_from_slice(&u32::MAX.to_le_bytes())),
                "does not fit",
            ),
            (
                Box::new(move |b| b[e + 16..e + 24].copy_from_slice(&u64::MAX.to_le_bytes())),
                "outside",
            ),
            (
                Box::new(move |b| b[e + 8..e + 16].copy_from_slice(&0u64.to_le_bytes())),
                "outside",
            ),
            (
                Box::new(move |b| b[e + 8] = b[e + 8].wrapping_add(1)),
                "not aligned",
            ),
            (Box::new(move |b| b[e + ENTRY_LEN] = 0), "not sorted"),
            (Box::new(|b| b[KERNEL_AT + KERNEL_LEN - 1] = b'x'), "NUL-padded"),
            (Box::new(|b| b[KERNEL_AT] = 0xff), "UTF-8"),
        ];
        for (damage, message) in cases {
            let mut b = sample();
            damage(&mut b);
            let err = PackedSection::parse(&b).unwrap_err();
            assert!(matches!(err, Error::CorruptFile(_)), "{err}");
            assert!(err.to_string().contains(message), "{message}: {err}");
        }
        let mut b = sample();
        let last = b.len() - 1;
        b.truncate(last);
        assert!(PackedSection::parse(&b).is_err(), "truncated blob area");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_damage_never_panics(flips in proptest::collection::vec((0usize..512, any::<u8>()), 1..8),
                                      cut in 0usize..512) {
            let mut b = sample();
            for (at, v) in flips {
                let at = at % b.len();
                b[at] = v;
            }
            b.truncate(cut.max(1) % (b.len() + 1));
            if let Ok(Some(s)) = PackedSection::parse(&b) {
                for blob in s.blobs() {
                    prop_assert!(blob.data.len() <= b.len());
                }
            }
        }
    }
}
