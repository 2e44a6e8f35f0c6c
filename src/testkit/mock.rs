//! A deterministic mock [`Seq2SeqModel`] for unit tests: the logits of a row are a function
//! of its (unpadded) source ids and its decoder history, so reordering, expanding or dropping
//! rows incorrectly changes the output. It records every step's row count.

use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use crate::model::{DecoderState, EncoderOutput, ModelError, Result, Seq2SeqModel};

pub type LogitsFn = dyn Fn(&[u32], &[u32]) -> Vec<f32> + Send + Sync;

pub struct MockModel {
    pub vocab: usize,
    pub pad: u32,
    pub logits: Box<LogitsFn>,
    /// Rows fed at each step, over all decoders started from this model.
    pub step_rows: Arc<Mutex<Vec<usize>>>,
}

impl MockModel {
    pub fn new(vocab: usize, pad: u32, logits: Box<LogitsFn>) -> Self {
        MockModel {
            vocab,
            pad,
            logits,
            step_rows: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Pseudo-random logits in [-4, 4) from a hash of (source, history), with EOS growing
    /// likelier with length so that free-running decoding ends.
    pub fn hashed(vocab: usize, pad: u32, eos: u32, seed: u64) -> Self {
        Self::new(
            vocab,
            pad,
            Box::new(move |src, hist| {
                let mut h = seed;
                for &t in src {
                    h = mix(h ^ t as u64);
                }
                h = mix(h ^ 0xabcdef);
                for &t in hist {
                    h = mix(h ^ t as u64);
                }
                let mut out: Vec<f32> = (0..vocab as u64)
                    .map(|v| {
                        let x = mix(h ^ (v.wrapping_mul(0x9e37_79b9)));
                        ((x >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
                    })
                    .collect();
                out[eos as usize] += 0.45 * hist.len() as f32 - 3.0;
                out
            }),
        )
    }
}

pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Row {
    src: Vec<u32>,
    hist: Vec<u32>,
}

struct MockState<'a> {
    model: &'a MockModel,
    rows: Vec<Row>,
    max_len: usize,
}

impl Seq2SeqModel for MockModel {
    fn encode(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<EncoderOutput> {
        let ids = input_ids.to_vec2::<u32>()?;
        let mask = attention_mask.to_vec2::<u8>()?;
        for (r, m) in ids.iter().zip(&mask) {
            for (&t, &b) in r.iter().zip(m) {
                if b == 0 && t != self.pad {
                    return Err(ModelError::Config(format!("padding {t} is not pad")));
                }
            }
        }
        let hidden = input_ids.to_dtype(candle_core::DType::F32)?.unsqueeze(2)?;
        Ok(EncoderOutput {
            hidden,
            mask: attention_mask.clone(),
        })
    }

    fn start_decoder(
        &self,
        enc: &EncoderOutput,
        max_len: usize,
    ) -> Result<Box<dyn DecoderState + '_>> {
        let hidden = enc.hidden.squeeze(2)?.to_vec2::<f32>()?;
        let mask = enc.mask.to_vec2::<u8>()?;
        let rows = hidden
            .iter()
            .zip(&mask)
            .map(|(h, m)| Row {
                src: h
                    .iter()
                    .zip(m)
                    .filter(|(_, &b)| b == 1)
                    .map(|(&x, _)| x as u32)
                    .collect(),
                hist: Vec::new(),
            })
            .collect();
        Ok(Box::new(MockState {
            model: self,
            rows,
            max_len,
        }))
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }
}

impl DecoderState for MockState<'_> {
    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        if tokens.len() != self.rows.len() {
            return Err(ModelError::Config(format!(
                "{} tokens for {} rows",
                tokens.len(),
                self.rows.len()
            )));
        }
        self.model
            .step_rows
            .lock()
            .map_err(|_| ModelError::Config("poisoned".into()))?
            .push(self.rows.len());
        let mut data = Vec::with_capacity(self.rows.len() * self.model.vocab);
        for (row, &t) in self.rows.iter_mut().zip(tokens) {
            row.hist.push(t);
            if row.hist.len() > self.max_len {
                return Err(ModelError::Config(format!(
                    "decoder fed {} positions, preallocated {}",
                    row.hist.len(),
                    self.max_len
                )));
            }
            data.extend((self.model.logits)(&row.src, &row.hist));
        }
        Ok(Tensor::from_vec(
            data,
            (self.rows.len(), self.model.vocab),
            &Device::Cpu,
        )?)
    }

    fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let mut new = Vec::with_capacity(rows.len());
        for &r in rows {
            let old = self
                .rows
                .get(r as usize)
                .ok_or_else(|| ModelError::Config(format!("row {r} out of range")))?;
            new.push(Row {
                src: old.src.clone(),
                hist: old.hist.clone(),
            });
        }
        self.rows = new;
        Ok(())
    }

    fn rows(&self) -> usize {
        self.rows.len()
    }
}
