//! A deterministic stand-in [`TextGenerator`] for the pipeline's unit tests: "translates"
//! by tagging words, "summarizes" by keeping the first words. Token = whitespace word, so
//! lengths are easy to reason about.

use std::sync::Mutex;

use crate::pipeline::*;

pub struct Mock {
    pub window: usize,
    pub words_out: Option<usize>,
    /// Added to every reported output length (to hit length caps).
    pub inflate: usize,
    pub calls: Mutex<Vec<usize>>,
    pub vocab: Mutex<Vec<String>>,
}

impl Mock {
    pub fn new(window: usize, words_out: Option<usize>) -> Self {
        Mock {
            window,
            words_out,
            inflate: 0,
            calls: Mutex::new(Vec::new()),
            vocab: Mutex::new(Vec::new()),
        }
    }
}

impl TextGenerator for Mock {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, PipelineError> {
        let mut v = self.vocab.lock().unwrap();
        Ok(texts
            .iter()
            .map(|t| {
                let mut ids: Vec<u32> = t
                    .split_whitespace()
                    .map(|w| {
                        v.push(w.to_string());
                        (v.len() - 1) as u32
                    })
                    .collect();
                ids.push(u32::MAX); // EOS
                ids
            })
            .collect())
    }
    fn max_source_tokens(&self) -> usize {
        self.window
    }
    fn generate(
        &self,
        sources: &[Vec<u32>],
        _l: Lengths,
    ) -> Result<Vec<(String, usize)>, PipelineError> {
        self.calls.lock().unwrap().push(sources.len());
        let v = self.vocab.lock().unwrap();
        Ok(sources
            .iter()
            .map(|s| {
                assert!(
                    s.len() <= self.window,
                    "source over the window: {}",
                    s.len()
                );
                let words: Vec<String> = s
                    .iter()
                    .filter(|&&i| i != u32::MAX)
                    .map(|&i| v[i as usize].clone())
                    .collect();
                let out = match self.words_out {
                    None => words.iter().map(|w| format!("EN:{w}")).collect::<Vec<_>>(),
                    Some(n) => words.into_iter().take(n).collect(),
                };
                let n = out.len() + self.inflate;
                (out.join(" "), n)
            })
            .collect())
    }
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: "mock".into(),
            repo: None,
            revision: None,
        }
    }
}
