//! `--quantize q8` against f32 on the committed random models (tests/fixtures/models):
//! teacher-forced log-probs (max / mean abs diff, top-1 agreement) and greedy ids of the 32
//! fixture sources (identical sequences, per-position agreement). Random weights make the
//! quantization error larger than on trained models, so the bounds are loose; run with
//! `--nocapture` to see the numbers.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, D};
use serde_json::Value;
use tomtat::generate::{generate, GenerationConfig};
use tomtat::model::{load_dir_transformer, Seq2SeqModel, Transformer};

const FAMILIES: [&str; 5] = ["marian", "bart", "mbart", "t5", "t5v11"];

fn dir(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(family)
}

fn models(family: &str) -> (Transformer, Transformer) {
    let f32m = load_dir_transformer(&dir(family), &Device::Cpu).expect("load");
    let mut q8 = f32m.clone();
    q8.quantize_q8().expect("quantize");
    assert!(q8.is_q8() && !f32m.is_q8());
    (f32m, q8)
}

fn log_probs(m: &Transformer, ids: &Tensor, mask: &Tensor, dec: &Tensor) -> Tensor {
    let enc = m.encode(ids, mask).expect("encode");
    let logits = m.decode_full(&enc, dec).expect("decode");
    candle_nn::ops::log_softmax(&logits, D::Minus1).expect("log_softmax")
}

#[test]
fn teacher_forced_log_probs_close_to_f32() {
    let mut failures = Vec::new();
    for fam in FAMILIES {
        let (f, q) = models(fam);
        let e = candle_core::safetensors::load(dir(fam).join("expected.safetensors"), &Device::Cpu)
            .expect("expected.safetensors");
        let ids = e["input_ids"].to_dtype(DType::U32).unwrap();
        let dec = e["decoder_input_ids"].to_dtype(DType::U32).unwrap();
        let mask = &e["attention_mask"];
        let lf = log_probs(&f, &ids, mask, &dec);
        let lq = log_probs(&q, &ids, mask, &dec);
        let diff: Vec<f32> = (&lf - &lq)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let max = diff.iter().fold(0f32, |m, v| m.max(*v));
        let mean = diff.iter().sum::<f32>() / diff.len() as f32;
        let top_f: Vec<u32> = lf
            .argmax(D::Minus1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let top_q: Vec<u32> = lq
            .argmax(D::Minus1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let agree =
            top_f.iter().zip(&top_q).filter(|(a, b)| a == b).count() as f64 / top_f.len() as f64;
        println!(
            "{fam:7} teacher-forced log-probs: max|diff| {max:.4} mean|diff| {mean:.5}, top-1 agreement {:.1}% of {}",
            agree * 100.0,
            top_f.len()
        );
        if !(mean < 0.05 && max < 1.0 && agree >= 0.9) {
            failures.push(format!("{fam}: max {max} mean {mean} agreement {agree}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn greedy_ids_mostly_agree_with_f32() {
    let mut failures = Vec::new();
    for fam in FAMILIES {
        let (f, q) = models(fam);
        let text = std::fs::read_to_string(dir(fam).join("generate.json")).expect("generate.json");
        let doc: Value = serde_json::from_str(&text).expect("json");
        let sources: Vec<Vec<u32>> = serde_json::from_value(doc["sources"].clone()).unwrap();
        let cfg: GenerationConfig =
            serde_json::from_value(doc["settings"]["greedy_forced"]["params"].clone()).unwrap();
        let gf = generate(&f, &sources, &cfg, &Device::Cpu).expect("f32 generate");
        let gq = generate(&q, &sources, &cfg, &Device::Cpu).expect("q8 generate");
        let same = gf.iter().zip(&gq).filter(|(a, b)| a == b).count();
        // Positions before the first divergence (after it the prefixes differ).
        let (mut agree, mut total) = (0usize, 0usize);
        for (a, b) in gf.iter().zip(&gq) {
            total += a.len();
            agree += a.iter().zip(b).take_while(|(x, y)| x == y).count();
        }
        let frac = agree as f64 / total as f64;
        println!(
            "{fam:7} greedy (30 new tokens): {same}/{} sequences identical, {:.1}% of tokens before the first divergence",
            gf.len(),
            frac * 100.0
        );
        if frac < 0.5 {
            failures.push(format!("{fam}: {frac}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
