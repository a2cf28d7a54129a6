//! Library version and CPU information.

use super::boundary::{guard, Out};
use super::status::xq_status;
use crate::cpu::{self, Isa};
use std::ffi::c_char;

/// An instruction-set level with its own int8 kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum xq_isa {
    /// Portable scalar kernels.
    XQ_ISA_SCALAR = 0,
    /// x86-64 AVX2.
    XQ_ISA_AVX2 = 1,
    /// x86-64 AVX-512 with VNNI.
    XQ_ISA_AVX512VNNI = 2,
    /// x86-64 AVX-VNNI (256-bit VEX dot products, with AVX2).
    XQ_ISA_AVXVNNI = 3,
    /// The AVX-VNNI kernels in their AVX-512 VNNI encoding (only when `XQ_ISA` forces it).
    XQ_ISA_AVX512VNNI256 = 4,
}

impl From<Isa> for xq_isa {
    fn from(isa: Isa) -> Self {
        match isa {
            Isa::Scalar => xq_isa::XQ_ISA_SCALAR,
            Isa::Avx2 => xq_isa::XQ_ISA_AVX2,
            Isa::Avx512Vnni => xq_isa::XQ_ISA_AVX512VNNI,
            Isa::AvxVnni => xq_isa::XQ_ISA_AVXVNNI,
            Isa::Avx512Vnni256 => xq_isa::XQ_ISA_AVX512VNNI256,
        }
    }
}

/// What libxq found on this CPU and which kernels it will use.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct xq_cpu_info {
    /// The CPU supports the AVX2 kernels.
    pub supports_avx2: bool,
    /// The CPU supports the AVX-512 VNNI kernels.
    pub supports_avx512vnni: bool,
    /// The kernels libxq selected (the best supported, unless `XQ_ISA` forces one).
    pub selected_isa: xq_isa,
    /// Number of CPUs this process may run on.
    pub available_cpus: u32,
}

/// The library version as one number: `major * 1000000 + minor * 1000 + patch`; compare it
/// with the header's `XQ_VERSION` to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn xq_version() -> u32 {
    version_number(
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    )
}

fn version_number(major: &str, minor: &str, patch: &str) -> u32 {
    let n = |s: &str| s.parse::<u32>().unwrap_or(0);
    n(major) * 1_000_000 + n(minor) * 1_000 + n(patch)
}

/// The library version as a static string such as `"0.1.0"`; never free it.
#[no_mangle]
pub extern "C" fn xq_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Fills `*info` with the CPU features libxq detected and the kernel ISA it selected.
/// Fails with `XQ_ERROR_NULL_POINTER` if `info` is NULL, and with
/// `XQ_ERROR_INVALID_ARGUMENT` / `XQ_ERROR_UNSUPPORTED` if `XQ_ISA` names an unknown ISA or
/// one this CPU lacks.
///
/// # Safety
/// `info` must be NULL or point to writable storage for an `xq_cpu_info`.
#[no_mangle]
pub unsafe extern "C" fn xq_get_cpu_info(info: *mut xq_cpu_info) -> xq_status {
    guard(|| {
        // SAFETY: writable or NULL per this function's contract.
        let out = unsafe { Out::new(info, "info") }?;
        let selected = cpu::selected_isa()?;
        out.write(xq_cpu_info {
            supports_avx2: Isa::Avx2.is_supported(),
            supports_avx512vnni: Isa::Avx512Vnni.is_supported(),
            selected_isa: selected.into(),
            available_cpus: u32::try_from(cpu::available_cpus()).unwrap_or(u32::MAX),
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::boundary::last_error;

    #[test]
    fn version_matches_cargo() {
        assert_eq!(version_number("1", "2", "3"), 1_002_003);
        // SAFETY: static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(xq_version_string()) }
            .to_str()
            .unwrap();
        assert_eq!(s, crate::VERSION);
        let parts: Vec<u32> = s.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(xq_version(), parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]);
    }

    #[test]
    fn cpu_info_rejects_null_and_fills_otherwise() {
        // SAFETY: NULL is rejected before anything is written.
        let status = unsafe { xq_get_cpu_info(std::ptr::null_mut()) };
        assert_eq!(status, xq_status::XQ_ERROR_NULL_POINTER);
        assert!(last_error().contains("`info`"));
        let mut info = std::mem::MaybeUninit::<xq_cpu_info>::uninit();
        // SAFETY: points to writable storage.
        assert_eq!(unsafe { xq_get_cpu_info(info.as_mut_ptr()) }, xq_status::XQ_OK);
        // SAFETY: XQ_OK means the struct was written.
        let info = unsafe { info.assume_init() };
        assert!(info.available_cpus >= 1);
        if std::env::var_os("XQ_ISA").is_none() {
            assert_eq!(info.selected_isa, Isa::best_supported().into());
        }
    }
}
