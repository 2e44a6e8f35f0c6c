//! The CPU features the kernels use, detected once from the CPU's real flags (cpuid) and
//! optionally capped by `TOMTAT_CPU_ISA` (or `TOMTAT_NO_AVX512`) for A/B timing and for
//! exercising the lower paths on a bigger CPU. Every kernel asks [`features`]; none calls
//! `is_x86_feature_detected!` on its own, so one cap moves all of them together.

use std::fmt;
use std::sync::OnceLock;

/// Instruction-set levels, lowest first; a cap keeps the features at or below one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust only.
    Scalar,
    /// AVX2 + FMA (Haswell, Zen 1-3).
    Avx2,
    /// AVX2 + AVX-VNNI (`vpdpbusd` on 256-bit registers: Alder Lake and later, Zen 5).
    AvxVnni,
    /// Everything this build uses, AVX-512 included.
    Avx512,
}

impl Level {
    /// From `TOMTAT_CPU_ISA`: `scalar`, `avx2`, `avx-vnni`, `avx512` (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "scalar" | "none" | "portable" => Some(Level::Scalar),
            "avx2" => Some(Level::Avx2),
            "avx-vnni" | "avxvnni" => Some(Level::AvxVnni),
            "avx512" | "avx-512" | "max" => Some(Level::Avx512),
            _ => None,
        }
    }
}

/// What the kernels may use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// AVX2 and FMA (every SIMD f32 path needs both).
    pub avx2_fma: bool,
    /// AVX-VNNI (VEX-encoded `vpdpbusd`, 256-bit).
    pub avx_vnni: bool,
    /// AVX-512 F + BW.
    pub avx512: bool,
    /// AVX-512 VNNI (with F + BW).
    pub avx512_vnni: bool,
}

impl Features {
    /// The CPU's own flags.
    pub fn detect() -> Features {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let avx512 =
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
            Features {
                avx2_fma,
                avx_vnni: avx2_fma && is_x86_feature_detected!("avxvnni"),
                avx512,
                avx512_vnni: avx512 && is_x86_feature_detected!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Features::default()
    }

    /// These features with everything above `level` turned off.
    pub fn capped(self, level: Level) -> Features {
        Features {
            avx2_fma: self.avx2_fma && level >= Level::Avx2,
            avx_vnni: self.avx_vnni && level >= Level::AvxVnni,
            avx512: self.avx512 && level >= Level::Avx512,
            avx512_vnni: self.avx512_vnni && level >= Level::Avx512,
        }
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.avx2_fma, "avx2+fma"),
            (self.avx_vnni, "avx-vnni"),
            (self.avx512, "avx512"),
            (self.avx512_vnni, "avx512-vnni"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|&(_, n)| n)
        .collect();
        if names.is_empty() {
            f.write_str("none (portable code)")
        } else {
            f.write_str(&names.join(" "))
        }
    }
}

/// The cap the environment asks for: `TOMTAT_CPU_ISA`, else `TOMTAT_NO_AVX512` (= `avx-vnni`).
pub fn cap_from_knobs(k: &crate::knobs::Knobs) -> Level {
    match (&k.cpu_isa, k.no_avx512) {
        (Some(l), _) => *l,
        (None, true) => Level::AvxVnni,
        (None, false) => Level::Avx512,
    }
}

/// The features the kernels use: the CPU's, capped by the environment. Read once.
pub fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(|| Features::detect().capped(cap_from_knobs(crate::knobs::knobs())))
}

/// One line for logs and `tomtat bench`: what the CPU has and what the kernels chose.
pub fn describe() -> String {
    let cpu = Features::detect();
    let used = features();
    let f32_gemm = super::gemm::kernel_name();
    let int8 = super::int8::Kernel::detect();
    let mut s = format!("f32 GEMM: {f32_gemm}; int8: {int8}; CPU flags: {cpu}");
    if used != cpu {
        s.push_str(&format!(" (capped to: {used})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_cap() {
        assert_eq!(Level::parse("AVX2"), Some(Level::Avx2));
        assert_eq!(Level::parse("avx_vnni"), Some(Level::AvxVnni));
        assert_eq!(Level::parse("scalar"), Some(Level::Scalar));
        assert_eq!(Level::parse("sse"), None);
        let all = Features {
            avx2_fma: true,
            avx_vnni: true,
            avx512: true,
            avx512_vnni: true,
        };
        assert_eq!(all.capped(Level::Avx512), all);
        let v = all.capped(Level::AvxVnni);
        assert!(v.avx2_fma && v.avx_vnni && !v.avx512 && !v.avx512_vnni);
        let a = all.capped(Level::Avx2);
        assert!(a.avx2_fma && !a.avx_vnni && !a.avx512);
        assert_eq!(all.capped(Level::Scalar), Features::default());
        assert_eq!(Features::default().to_string(), "none (portable code)");
        assert_eq!(a.to_string(), "avx2+fma");
    }

    #[test]
    fn used_features_are_within_the_cpus() {
        let (cpu, used) = (Features::detect(), features());
        assert!(!used.avx2_fma || cpu.avx2_fma);
        assert!(!used.avx_vnni || cpu.avx_vnni);
        assert!(!used.avx512 || cpu.avx512);
        assert!(!used.avx512_vnni || cpu.avx512_vnni);
    }
}
