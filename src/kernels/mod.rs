//! Compute kernels, apart from the model architectures that call them: the packed f32 GEMM,
//! int8 GEMM, vectorized f32 math, decoder-step attention over host buffers, and the glue to
//! tomtat's CUDA kernels. Each CPU kernel has a portable reference path and SIMD paths chosen
//! once at run time from the CPU's features ([`cpu`]).

pub mod attention;
pub mod cpu;
pub mod cuda;
pub mod gemm;
pub mod int8;
pub mod simd;

/// Errors of the kernels' entry points (shapes and inputs they cannot take).
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A weight the kernel cannot pack (wrong length or shape, too long a row).
    #[error("weights: {0}")]
    Weights(String),
    /// An input the kernel cannot take (shape, dtype, device, unsupported kernel).
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, KernelError>;
