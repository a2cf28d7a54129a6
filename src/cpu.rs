//! CPU feature detection and the one-time choice of instruction set for the kernels.
//!
//! The CPU's features are detected once per process ([`features`]); everything else in the
//! crate asks this module instead of probing the CPU itself. The kernel ISA is chosen once
//! per process too: the most preferred ISA the CPU supports ([`Isa::PREFERENCE`]), unless the
//! environment variable `XQ_ISA` (any [`Isa::name`]) forces one — tests and benchmarks use
//! that to exercise every path. Forcing an ISA the CPU lacks is an error, never a silent
//! fallback.

use crate::{Error, Result};
use std::fmt;
use std::sync::OnceLock;

/// The CPU features the kernels care about, detected once ([`features`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX2 (256-bit integer SIMD).
    pub avx2: bool,
    /// FMA3 fused multiply-add.
    pub fma: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// AVX-512 on 128- and 256-bit registers.
    pub avx512vl: bool,
    /// AVX-512 VNNI (EVEX `vpdpbusd` / `vpdpwssd`).
    pub avx512vnni: bool,
    /// AVX-VNNI (VEX-encoded 256-bit `vpdpbusd` / `vpdpwssd`, without AVX-512).
    pub avxvnni: bool,
}

impl CpuFeatures {
    /// Probes this CPU.
    fn detect() -> CpuFeatures {
        #[cfg(target_arch = "x86_64")]
        {
            CpuFeatures {
                avx2: std::is_x86_feature_detected!("avx2"),
                fma: std::is_x86_feature_detected!("fma"),
                avx512f: std::is_x86_feature_detected!("avx512f"),
                avx512bw: std::is_x86_feature_detected!("avx512bw"),
                avx512vl: std::is_x86_feature_detected!("avx512vl"),
                avx512vnni: std::is_x86_feature_detected!("avx512vnni"),
                avxvnni: std::is_x86_feature_detected!("avxvnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuFeatures::default()
    }

    /// Whether the CPU has every feature the kernels of `isa` use.
    pub fn supports(&self, isa: Isa) -> bool {
        let avx2 = self.avx2 && self.fma;
        let avx512vnni = avx2 && self.avx512f && self.avx512bw && self.avx512vl && self.avx512vnni;
        match isa {
            Isa::Scalar => true,
            Isa::Avx2 => avx2,
            Isa::AvxVnni => avx2 && self.avxvnni,
            Isa::Avx512Vnni256 | Isa::Avx512Vnni => avx512vnni,
        }
    }
}

/// The features of this CPU, detected on first use and then cached for the process.
pub fn features() -> &'static CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    FEATURES.get_or_init(CpuFeatures::detect)
}

/// The `f32` SIMD code the float kernel families (`fmath`, the normalisation rows, gemv,
/// sgemm) run for an ISA: 512-bit AVX-512 F on [`Isa::Avx512Vnni`], 256-bit AVX2 + FMA on
/// the other x86-64 levels, the portable definition otherwise, each only where this CPU has
/// the instructions. One decision for every family, so a forced `XQ_ISA` means the same
/// everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F32Simd {
    /// The portable definition (the oracle of the others).
    Scalar,
    /// AVX2 + FMA, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 F, 16 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl F32Simd {
    /// The code `isa` runs on this CPU.
    pub fn for_isa(isa: Isa) -> F32Simd {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = features();
            match isa {
                Isa::Avx512Vnni if cpu.supports(Isa::Avx512Vnni) => return F32Simd::Avx512,
                Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni256 | Isa::Avx512Vnni
                    if cpu.supports(Isa::Avx2) =>
                {
                    return F32Simd::Avx2
                }
                _ => {}
            }
        }
        let _ = isa;
        F32Simd::Scalar
    }
}

/// An instruction-set level with its own row of kernel variants (see `kernels::table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust; the test oracle of every SIMD variant.
    Scalar,
    /// x86-64 AVX2 (+FMA): 256-bit integer SIMD, `vpmaddwd` dot products.
    Avx2,
    /// x86-64 AVX-VNNI (+AVX2, FMA): 256-bit VEX `vpdpbusd` / `vpdpwssd` dot products (Intel
    /// Alder Lake and later client CPUs, Sapphire Rapids, AMD Zen 5).
    AvxVnni,
    /// The AVX-VNNI kernels built with the EVEX encodings of the same 256-bit instructions
    /// (AVX-512 VNNI + VL): they run on every AVX-512 VNNI CPU, which proves the AVX-VNNI
    /// algorithm where AVX-VNNI itself is missing and may suit CPUs that split 512-bit
    /// operations in two. Only chosen when `XQ_ISA` forces it.
    Avx512Vnni256,
    /// x86-64 AVX-512 F/BW/VL + VNNI: 512-bit `vpdpbusd` dot products.
    Avx512Vnni,
}

impl Isa {
    /// Every ISA level, the portable one first.
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512Vnni256,
        Isa::Avx512Vnni,
    ];

    /// The ISAs chosen without `XQ_ISA`, most preferred first ([`Isa::Avx512Vnni256`] is
    /// only chosen when forced).
    pub const PREFERENCE: [Isa; 4] = [Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2, Isa::Scalar];

    /// The name used by `XQ_ISA`, in program files and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni256 => "avx512vnni256",
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
        features().supports(self)
    }

    /// Whether code of this level may use AVX2 and FMA instructions.
    pub fn implies_avx2(self) -> bool {
        self != Isa::Scalar
    }

    /// The most preferred level this CPU supports.
    pub fn best_supported() -> Isa {
        Isa::PREFERENCE
            .into_iter()
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
                let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
                Error::invalid_argument("XQ_ISA", format!("`{s}` is not one of {}", names.join(", ")))
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

/// The ISA the kernels use in this process, chosen once (see the module docs).
pub fn selected_isa() -> Result<Isa> {
    static SELECTED: OnceLock<std::result::Result<Isa, String>> = OnceLock::new();
    SELECTED
        .get_or_init(|| choose_isa(std::env::var("XQ_ISA").ok().as_deref()).map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Unsupported)
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

    #[test]
    fn preference_follows_the_detected_features() {
        let only = |f: CpuFeatures| Isa::PREFERENCE.into_iter().find(|&isa| f.supports(isa)).unwrap();
        let avx2 = CpuFeatures {
            avx2: true,
            fma: true,
            ..CpuFeatures::default()
        };
        let avxvnni = CpuFeatures {
            avxvnni: true,
            ..avx2
        };
        let avx512 = CpuFeatures {
            avx512f: true,
            avx512bw: true,
            avx512vl: true,
            avx512vnni: true,
            ..avx2
        };
        assert_eq!(only(CpuFeatures::default()), Isa::Scalar);
        assert_eq!(only(avx2), Isa::Avx2);
        assert_eq!(only(avxvnni), Isa::AvxVnni);
        assert_eq!(only(avx512), Isa::Avx512Vnni);
        assert_eq!(
            only(CpuFeatures {
                avxvnni: true,
                ..avx512
            }),
            Isa::Avx512Vnni
        );
        assert!(avx512.supports(Isa::Avx512Vnni256) && !avx512.supports(Isa::AvxVnni));
        assert!(!avxvnni.supports(Isa::Avx512Vnni256));
        // AVX-VNNI without AVX2 (not a real CPU) selects nothing above scalar.
        assert_eq!(
            only(CpuFeatures {
                avxvnni: true,
                ..CpuFeatures::default()
            }),
            Isa::Scalar
        );
        assert_eq!(features(), features(), "detected once");
    }
}
