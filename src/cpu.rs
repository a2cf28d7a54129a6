//! CPU feature detection and the one-time choice of instruction set for the kernels.
//!
//! The choice is made once per process: the best ISA the CPU supports, unless the
//! environment variable `XQ_ISA` (`scalar`, `avx2`, `avx512vnni`) forces one — tests and
//! benchmarks use that to exercise every path. Forcing an ISA the CPU lacks is an error,
//! never a silent fallback.

use crate::{Error, Result};
use std::fmt;
use std::sync::LazyLock as Lazy;

/// An instruction-set level with its own kernel variants, ordered from least to most capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust; the test oracle of every SIMD variant.
    Scalar,
    /// x86-64 AVX2 (+FMA): 256-bit integer SIMD, `vpmaddwd` dot products.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI: 512-bit `vpdpbusd` dot products.
    Avx512Vnni,
}

impl Isa {
    /// All ISA levels, least capable first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni];

    /// The name used by `XQ_ISA` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Parses an `XQ_ISA` value.
    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU can run kernels of this level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The most capable level this CPU supports.
    pub fn best_supported() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.is_supported())
            .unwrap_or(Isa::Scalar)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Decides the ISA from an optional `XQ_ISA` value (pure, so it can be tested).
pub fn choose_isa(requested: Option<&str>) -> Result<Isa> {
    match requested {
        None => Ok(Isa::best_supported()),
        Some(s) if s.trim().is_empty() => Ok(Isa::best_supported()),
        Some(s) => {
            let isa = Isa::parse(s).ok_or_else(|| {
                Error::invalid_argument("XQ_ISA", format!("`{s}` is not one of scalar, avx2, avx512vnni"))
            })?;
            if isa.is_supported() {
                Ok(isa)
            } else {
                Err(Error::Unsupported(format!(
                    "XQ_ISA={s} was requested but this CPU does not support it"
                )))
            }
        }
    }
}

static SELECTED: Lazy<std::result::Result<Isa, String>> =
    Lazy::new(|| choose_isa(std::env::var("XQ_ISA").ok().as_deref()).map_err(|e| e.to_string()));

/// The ISA the kernels use in this process, chosen once (see the module docs).
pub fn selected_isa() -> Result<Isa> {
    SELECTED.clone().map_err(Error::Unsupported)
}

/// Number of CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_every_name_and_rejects_others() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
            assert_eq!(Isa::parse(&isa.name().to_uppercase()), Some(isa));
        }
        assert_eq!(Isa::parse("sse9"), None);
    }

    #[test]
    fn choose_isa_defaults_to_best_and_rejects_unknown() {
        assert_eq!(choose_isa(None).unwrap(), Isa::best_supported());
        assert_eq!(choose_isa(Some("scalar")).unwrap(), Isa::Scalar);
        let err = choose_isa(Some("neon9")).unwrap_err().to_string();
        assert!(err.contains("XQ_ISA") && err.contains("neon9"), "{err}");
        for isa in Isa::ALL {
            assert_eq!(choose_isa(Some(isa.name())).is_ok(), isa.is_supported());
        }
    }
}
