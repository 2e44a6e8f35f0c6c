//! The projection type of every model layer: f32 (candle's matmul) or int8 ([`QLinear`]).
//! Attention q/k/v/o, feed-forward wi/gate/wo and the vocabulary projection use it;
//! embeddings, norms and the attention score/context matmuls stay f32.

use candle_core::{Module, Tensor};

use super::int8::QLinear;
use super::transformer::Transformer;
use super::Result;

#[derive(Debug, Clone)]
pub enum Linear {
    F32(candle_nn::Linear),
    Q8(QLinear),
}

impl Linear {
    /// An f32 layer; `weight`: `[n_out, k]`, `bias`: `[n_out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear::F32(candle_nn::Linear::new(weight, bias))
    }

    /// The f32 weight (`None` once quantized).
    pub fn weight(&self) -> Option<&Tensor> {
        match self {
            Linear::F32(l) => Some(l.weight()),
            Linear::Q8(_) => None,
        }
    }

    /// The f32 bias (`None` without one, or once quantized).
    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            Linear::F32(l) => l.bias(),
            Linear::Q8(_) => None,
        }
    }

    pub fn is_q8(&self) -> bool {
        matches!(self, Linear::Q8(_))
    }

    /// Replace the f32 weight by its int8 quantization (no-op when already int8).
    pub fn quantize_q8(&mut self) -> Result<()> {
        if let Linear::F32(l) = self {
            *self = Linear::Q8(QLinear::quantize(l.weight(), l.bias())?);
        }
        Ok(())
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::F32(l) => l.forward(x),
            Linear::Q8(q) => q
                .forward(x)
                .map_err(|e| candle_core::Error::Msg(e.to_string())),
        }
    }
}

impl Transformer {
    /// Quantize every projection (attention, feed-forward, vocabulary) to int8 in place; the
    /// f32 weights are dropped. CPU only: later forwards error on other devices.
    pub fn quantize_q8(&mut self) -> Result<()> {
        if !self.device.is_cpu() {
            return Err(super::ModelError::Input(
                "--quantize q8 needs the CPU device".into(),
            ));
        }
        let mut all: Vec<&mut Linear> = Vec::new();
        for l in &mut self.encoder.layers {
            let a = &mut l.self_attn;
            all.extend([&mut a.q, &mut a.k, &mut a.v, &mut a.o]);
            all.extend([&mut l.ffn.wi, &mut l.ffn.wo]);
            all.extend(l.ffn.gate.as_mut());
        }
        for l in &mut self.decoder.layers {
            for a in [&mut l.self_attn, &mut l.cross_attn] {
                all.extend([&mut a.q, &mut a.k, &mut a.v, &mut a.o]);
            }
            all.extend([&mut l.ffn.wi, &mut l.ffn.wo]);
            all.extend(l.ffn.gate.as_mut());
        }
        all.push(&mut self.lm_head);
        for lin in all {
            lin.quantize_q8()?;
        }
        Ok(())
    }

    /// Whether [`Self::quantize_q8`] has run.
    pub fn is_q8(&self) -> bool {
        self.lm_head.is_q8()
    }
}
