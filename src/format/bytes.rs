//! Owned program bytes with [`SECTION_ALIGN`]-aligned start: a read-only memory map of a file,
//! or an aligned heap copy of a caller's buffer.

use super::container::SECTION_ALIGN;
use crate::{Error, Result};
use std::path::Path;

/// One cache line; a `Vec` of these is a 64-byte-aligned byte buffer.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; SECTION_ALIGN]);

enum Storage {
    Mapped(memmap2::Mmap),
    Heap { lines: Vec<Line>, len: usize },
}

/// Program bytes whose first byte is aligned to [`SECTION_ALIGN`].
pub struct ProgramBytes {
    storage: Storage,
}

impl ProgramBytes {
    /// Maps a file read-only. The file must not be modified while the program is loaded
    /// (as with any memory-mapped model format); libxq only reads it.
    pub fn map_file(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
        // SAFETY: the map is read-only and owned by this object. Memory-mapped data may change
        // if another process writes the file; this function's documented contract forbids
        // that, as every memory-mapped model format does.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path.display(), e))?;
        Ok(ProgramBytes {
            storage: Storage::Mapped(map),
        })
    }

    /// Copies a buffer into aligned memory.
    pub fn copy_from(bytes: &[u8]) -> Result<Self> {
        let n_lines = bytes.len().div_ceil(SECTION_ALIGN);
        let mut lines = Vec::new();
        lines.try_reserve_exact(n_lines).map_err(|_| {
            Error::ResourceLimit(format!("cannot allocate {} bytes for a program", bytes.len()))
        })?;
        lines.resize(n_lines, Line([0; SECTION_ALIGN]));
        for (line, chunk) in lines.iter_mut().zip(bytes.chunks(SECTION_ALIGN)) {
            line.0[..chunk.len()].copy_from_slice(chunk);
        }
        Ok(ProgramBytes {
            storage: Storage::Heap {
                lines,
                len: bytes.len(),
            },
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(map) => map,
            Storage::Heap { lines, len } => {
                // SAFETY: `lines` is a contiguous allocation of `lines.len() * SECTION_ALIGN`
                // initialised bytes (`Line` is `repr(C)` over a byte array, no padding) and
                // `len <= lines.len() * SECTION_ALIGN` by construction.
                unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), *len) }
            }
        }
    }
}

impl AsRef<[u8]> for ProgramBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_aligned_and_exact() {
        for len in [0usize, 1, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let b = ProgramBytes::copy_from(&data).unwrap();
            assert_eq!(b.as_slice(), &data[..]);
            assert_eq!(b.as_slice().as_ptr() as usize % SECTION_ALIGN, 0);
        }
    }

    #[test]
    fn maps_files_and_reports_missing_ones() {
        let path = std::env::temp_dir().join(format!("xq-bytes-{}.bin", std::process::id()));
        std::fs::write(&path, b"hello program").unwrap();
        let b = ProgramBytes::map_file(&path).unwrap();
        assert_eq!(b.as_slice(), b"hello program");
        assert_eq!(b.as_slice().as_ptr() as usize % SECTION_ALIGN, 0);
        drop(b);
        std::fs::remove_file(&path).unwrap();
        let err = ProgramBytes::map_file(&path).err().unwrap().to_string();
        assert!(err.contains("xq-bytes"), "{err}");
    }
}
