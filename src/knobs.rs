//! The environment switches tomtat reads (tuning, A/B timing, diagnostics), in one place:
//! each is read once, at first use, and the README lists them.
//!
//! | variable | effect |
//! |---|---|
//! | `TOMTAT_LOG` | a `tracing` filter for stderr logs (`debug`, `tomtat=trace`, ...); wins over `-v`/`-q` |
//! | `TOMTAT_NO_PACK` | CPU f32 projections stay candle tensors (no packed GEMM panels) |
//! | `TOMTAT_NO_AVX512` | the GEMM uses its AVX2 kernel even where AVX-512 exists |
//! | `TOMTAT_CUDA_KERNELS=0` | GPU: candle's ops instead of tomtat's own kernels |
//! | `TOMTAT_CUDA_EVENTS=1` | GPU: keep cudarc's per-buffer event tracking |
//!
//! (`RAYON_NUM_THREADS` is set by `--threads`/`--workers` before any thread pool starts.)

use std::sync::OnceLock;

/// The switches, as the environment had them when first asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    pub log: Option<String>,
    pub no_pack: bool,
    pub no_avx512: bool,
    pub cuda_kernels: bool,
    pub cuda_events: bool,
}

impl Knobs {
    /// From a variable lookup (the process environment in [`knobs`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Knobs {
        Knobs {
            log: get("TOMTAT_LOG").filter(|v| !v.is_empty()),
            no_pack: get("TOMTAT_NO_PACK").is_some(),
            no_avx512: get("TOMTAT_NO_AVX512").is_some(),
            cuda_kernels: get("TOMTAT_CUDA_KERNELS").is_none_or(|v| v != "0"),
            cuda_events: get("TOMTAT_CUDA_EVENTS").is_some_and(|v| v != "0"),
        }
    }
}

/// The process's switches, read once.
pub fn knobs() -> &'static Knobs {
    static K: OnceLock<Knobs> = OnceLock::new();
    K.get_or_init(|| Knobs::from_lookup(|k| std::env::var(k).ok()))
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
        // TOMTAT_CUDA_EVENTS=0 is the default (off)
        assert!(
            !Knobs::from_lookup(|k| (k == "TOMTAT_CUDA_EVENTS").then(|| "0".into())).cuda_events
        );
    }
}
