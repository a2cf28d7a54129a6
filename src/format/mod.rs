//! The compiled-program file (`.xq`): a versioned, checksummed container of aligned
//! sections, readable in place from a memory map. [`container`] knows nothing about what the
//! sections hold; [`program_file`] gives them meaning (a [`crate::program::ProgramSpec`] and
//! the packed weights the runtime hands over).

mod bytes;
pub mod container;
pub mod packed;
pub mod program_file;

pub use bytes::ProgramBytes;

pub use container::{ContainerReader, ContainerWriter, Section, FORMAT_VERSION, SECTION_ALIGN};
