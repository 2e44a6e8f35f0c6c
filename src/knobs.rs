//! The environment switches tomtat reads (tuning, A/B timing, diagnostics), in one place:
//! each is read once, at first use, and the README lists them.
//!
//! | variable | effect |
//! |---|---|
//! | `TOMTAT_LOG` | a `tracing` filter for stderr logs (`debug`, `tomtat=trace`, ...); wins over `-v`/`-q` |
//! | `TOMTAT_NO_PACK` | CPU f32 projections stay candle tensors (no packed GEMM panels) |
//! | `TOMTAT_CPU_ISA` | cap the CPU kernels at `scalar`, `avx2`, `avx-vnni` or `avx512` (A/B timing, testing lower paths) |
//! | `TOMTAT_NO_AVX512` | the same as `TOMTAT_CPU_ISA=avx-vnni`: no AVX-512 kernels |
//! | `TOMTAT_CUDA_KERNELS=0` | GPU: candle's ops instead of tomtat's own kernels |
//! | `TOMTAT_CUDA_EVENTS=1` | GPU: keep cudarc's per-buffer event tracking |
//!
//! `RAYON_NUM_THREADS` is written only through [`set_candle_threads`]: by `--threads` /
//! `--workers` before any thread pool starts, and by `tomtat bench` between thread counts.

use std::sync::OnceLock;

/// The switches, as the environment had them when first asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    pub log: Option<String>,
    pub no_pack: bool,
    pub no_avx512: bool,
    /// `TOMTAT_CPU_ISA`, when it names a level.
    pub cpu_isa: Option<crate::kernels::cpu::Level>,
    /// `TOMTAT_CPU_ISA` when it names none (reported, then ignored).
    pub cpu_isa_unknown: Option<String>,
    pub cuda_kernels: bool,
    pub cuda_events: bool,
}

impl Knobs {
    /// From a variable lookup (the process environment in [`knobs`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Knobs {
        let isa = get("TOMTAT_CPU_ISA").filter(|v| !v.is_empty());
        Knobs {
            log: get("TOMTAT_LOG").filter(|v| !v.is_empty()),
            no_pack: get("TOMTAT_NO_PACK").is_some(),
            no_avx512: get("TOMTAT_NO_AVX512").is_some(),
            cpu_isa: isa.as_deref().and_then(crate::kernels::cpu::Level::parse),
            cpu_isa_unknown: isa.filter(|v| crate::kernels::cpu::Level::parse(v).is_none()),
            cuda_kernels: get("TOMTAT_CUDA_KERNELS").is_none_or(|v| v != "0"),
            cuda_events: get("TOMTAT_CUDA_EVENTS").is_some_and(|v| v != "0"),
        }
    }
}

/// Size candle's CPU parallelism: its element-wise kernels size their own spinning pool from
/// `RAYON_NUM_THREADS` when first used, and its matmul reads the variable on every call.
/// Call while no compute thread runs (at start, or between benchmark runs).
pub fn set_candle_threads(n: usize) {
    std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
}

/// The process's switches, read once.
pub fn knobs() -> &'static Knobs {
    static K: OnceLock<Knobs> = OnceLock::new();
    K.get_or_init(|| {
        let k = Knobs::from_lookup(|k| std::env::var(k).ok());
        if let Some(v) = &k.cpu_isa_unknown {
            eprintln!(
                "warning: TOMTAT_CPU_ISA={v:?} is not one of scalar, avx2, avx-vnni, avx512; ignored"
            );
        }
        k
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        let none = Knobs::from_lookup(|_| None);
        assert_eq!(
            none,
            Knobs {
                log: None,
                no_pack: false,
                no_avx512: false,
                cpu_isa: None,
                cpu_isa_unknown: None,
                cuda_kernels: true,
                cuda_events: false
            }
        );
        let env = |k: &str| match k {
            "TOMTAT_LOG" => Some("debug".to_string()),
            "TOMTAT_NO_PACK" | "TOMTAT_NO_AVX512" => Some(String::new()),
            "TOMTAT_CUDA_KERNELS" => Some("0".to_string()),
            "TOMTAT_CUDA_EVENTS" => Some("1".to_string()),
            _ => None,
        };
        let k = Knobs::from_lookup(env);
        assert_eq!(k.log.as_deref(), Some("debug"));
        assert!(k.no_pack && k.no_avx512 && !k.cuda_kernels && k.cuda_events);
        let isa = |v: &'static str| {
            Knobs::from_lookup(move |k| (k == "TOMTAT_CPU_ISA").then(|| v.into()))
        };
        assert_eq!(isa("avx2").cpu_isa, Some(crate::kernels::cpu::Level::Avx2));
        assert_eq!(isa("sse9").cpu_isa, None);
        assert_eq!(isa("sse9").cpu_isa_unknown.as_deref(), Some("sse9"));
        // TOMTAT_CUDA_EVENTS=0 is the default (off)
        assert!(
            !Knobs::from_lookup(|k| (k == "TOMTAT_CUDA_EVENTS").then(|| "0".into())).cuda_events
        );
    }
}
