//! The projection layer every block uses (attention q/k/v/o, feed-forward, vocabulary head).
//!
//! On CPU in f32 the weight is packed once at load for [`crate::kernels::gemm`] (no repacking per
//! decoding step); elsewhere (CUDA, half precision) it stays a candle tensor and uses candle's
//! matmul. `--quantize q8` turns it into an int8 layer ([`crate::kernels::int8::QLinear`]).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::config::Activation;
use super::layers::activate;
use super::Result;
use crate::kernels::gemm::PackedMatrix;
use crate::kernels::int8::QLinear;

#[derive(Debug, Clone)]
pub enum Linear {
    /// `[out, in]` weight and `[out]` bias as loaded, for candle's matmul.
    Dense {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    /// Packed f32 weight (CPU).
    Packed(Arc<PackedMatrix>),
    /// Int8 weight (CPU), see [`QLinear`].
    Q8(QLinear),
}

impl Linear {
    /// A layer that keeps its tensors as they are.
    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear::Dense { weight, bias }
    }

    /// The fastest layout for the weight's device and dtype (packed on CPU f32); with `q8`,
    /// a CPU f32 weight is quantized to int8 as it is read, so the f32 copy of the whole
    /// model never exists at once (peak memory of a q8 load ~ the int8 model plus one f32
    /// tensor).
    pub fn prepared(weight: Tensor, bias: Option<Tensor>, q8: bool) -> Result<Self> {
        if !weight.device().is_cpu()
            || weight.dtype() != DType::F32
            || crate::knobs::knobs().no_pack
        {
            return Ok(Self::dense(weight, bias));
        }
        let (n, k) = weight.dims2()?;
        let b = match &bias {
            Some(b) => Some(b.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        // read the weight in place (no copy of a possibly vocabulary-sized matrix)
        let weight = weight.contiguous()?;
        let (storage, layout) = weight.storage_and_layout();
        let packed = match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) => {
                if q8 {
                    let q = crate::kernels::int8::QLinear::from_rows(
                        &v[start..end],
                        n,
                        k,
                        b.as_deref(),
                    )?;
                    return Ok(Linear::Q8(q));
                }
                PackedMatrix::pack(&v[start..end], n, k, b.as_deref())
            }
            _ => {
                return Err(super::ModelError::Weights(
                    "packing expects a contiguous f32 CPU weight".into(),
                ))
            }
        };
        Ok(Linear::Packed(Arc::new(packed)))
    }

    /// The packed weight, when this layer has one.
    pub fn packed(&self) -> Option<&Arc<PackedMatrix>> {
        match self {
            Linear::Packed(p) => Some(p),
            Linear::Dense { .. } | Linear::Q8(_) => None,
        }
    }

    pub fn is_q8(&self) -> bool {
        matches!(self, Linear::Q8(_))
    }

    /// Replace the f32 weight by its int8 quantization (no-op when already int8).
    pub fn quantize_q8(&mut self) -> Result<()> {
        let q = match self {
            Linear::Dense { weight, bias } => QLinear::quantize(weight, bias.as_ref())?,
            // row by row: no f32 copy of a possibly vocabulary-sized matrix
            Linear::Packed(p) => {
                QLinear::from_fn(p.n(), p.k(), p.bias(), |i, row| p.row_into(i, row))?
            }
            Linear::Q8(_) => return Ok(()),
        };
        *self = Linear::Q8(q);
        Ok(())
    }

    /// Output features.
    pub fn out_dim(&self) -> Result<usize> {
        Ok(match self {
            Linear::Dense { weight, .. } => weight.dim(0)?,
            Linear::Packed(p) => p.n(),
            Linear::Q8(q) => q.out_features(),
        })
    }

    /// `act(self(x))`: on a GPU the bias and the activation are one kernel after the matmul.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        match self {
            Linear::Dense { weight, bias } => dense(x, weight, bias.as_ref(), Some(act)),
            Linear::Packed(_) | Linear::Q8(_) => activate(&self.forward(x)?, act),
        }
    }

    /// `[.., in] -> [.., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Dense { weight, bias } => dense(x, weight, bias.as_ref(), None),
            // contiguous() is free for the usual contiguous input
            Linear::Packed(p) => Ok(x.contiguous()?.apply_op1_no_bwd(&PackedOp(p))?),
            Linear::Q8(q) => Ok(q.forward(x)?),
        }
    }
}

/// `act(x W^T + b)` for `x` `[.., in]` and a `[out, in]` weight: candle's matmul, then on a
/// GPU the bias (and the activation, when the kernel has it) in one kernel.
fn dense(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / k.max(1);
    let y = x.reshape((rows, k))?.matmul(&weight.t()?)?;
    // the activation still to apply after the bias
    let (y, act) = match bias {
        None => (y, act),
        Some(b) => match crate::kernels::cuda::bias_act(&y, b, act)? {
            Some(y) => (y, None),
            // an activation the kernel lacks: the bias alone there, the activation after
            None if act.is_some() => match crate::kernels::cuda::bias_act(&y, b, None)? {
                Some(y) => (y, act),
                None => (y.broadcast_add(b)?, act),
            },
            None => (y.broadcast_add(b)?, None),
        },
    };
    let y = match act {
        Some(a) => activate(&y, a)?,
        None => y,
    };
    let mut out = dims;
    if let Some(last) = out.last_mut() {
        *last = weight.dim(0)?;
    }
    Ok(y.reshape(out)?)
}

struct PackedOp<'a>(&'a PackedMatrix);

impl CustomOp1 for PackedOp<'_> {
    fn name(&self) -> &'static str {
        "packed-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.0;
        let dims = layout.shape().dims();
        let k = dims.last().copied().unwrap_or(0);
        if k != p.k() {
            candle_core::bail!(
                "packed linear: input has {k} features, the weight {}",
                p.k()
            );
        }
        let x = match storage {
            CpuStorage::F32(v) => v,
            _ => candle_core::bail!("packed linear: input must be f32"),
        };
        let m = layout.shape().elem_count() / k.max(1);
        let out = match layout.contiguous_offsets() {
            Some((start, end)) => p.matmul(&x[start..end], m),
            None => candle_core::bail!("packed linear: input must be contiguous"),
        };
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = p.n();
        }
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn packed_equals_dense() {
        let d = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (37, 24), &d).unwrap();
        let b = Tensor::randn(0f32, 1.0, 37, &d).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 24), &d).unwrap();
        let dense = Linear::dense(w.clone(), Some(b.clone()))
            .forward(&x)
            .unwrap();
        let packed = Linear::prepared(w, Some(b), false).unwrap();
        assert!(matches!(packed, Linear::Packed(_)));
        let got = packed.forward(&x).unwrap();
        assert_eq!(got.dims(), &[2, 5, 37]);
        let diff = crate::model::max_abs_diff(&got, &dense);
        assert!(diff < 1e-4, "{diff}");
        // a strided (transposed) input is made contiguous first
        let xt = Tensor::randn(0f32, 1.0, (24, 3), &d).unwrap().t().unwrap();
        assert!(!xt.is_contiguous());
        let w2 = Tensor::randn(0f32, 1.0, (5, 24), &d).unwrap();
        let a = Linear::prepared(w2.clone(), None, false)
            .unwrap()
            .forward(&xt)
            .unwrap();
        let b = Linear::dense(w2, None).forward(&xt).unwrap();
        assert!(crate::model::max_abs_diff(&a, &b) < 1e-4);
    }
}
