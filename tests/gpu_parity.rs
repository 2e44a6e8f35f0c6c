//! Parity on a CUDA device with the same fixtures as tests/model_parity.rs and
//! tests/generate_parity.rs (transformers' f32 outputs on the small random models):
//! * f32 on the GPU: encoder states and logits within 1e-3, generated ids identical;
//! * f16 / bf16: logits within a loose relative bound, argmax agreement of the logits and
//!   generated-id agreement reported (and only loosely asserted: half precision may flip
//!   near-ties).
//!
//! Built only with `--features cuda`. Without a usable GPU the tests print why and pass,
//! unless TOMTAT_REQUIRE_GPU=1 (scripts/gpu_check.sh sets it). TOMTAT_TEST_DEVICE picks the
//! device (default cuda:0; `cpu` runs the same checks on the CPU half-precision path). Run with `--nocapture` for the numbers (lines start with `gpu:`).
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device};
use common::{agreement, argmax_ids, expected, fixture_dir as dir, masked_diff, max_abs, FAMILIES};
use serde_json::Value;
use tomtat::generate::{generate, GenerationConfig};
use tomtat::model::{load_dir_transformer_as, Seq2SeqModel, Transformer};

/// The GPU, or `None` (with a note) when there is none and none is required.
fn gpu() -> Option<Device> {
    let name = std::env::var("TOMTAT_TEST_DEVICE").unwrap_or_else(|_| "cuda:0".into());
    match tomtat::device::parse_device(&name) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("TOMTAT_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("TOMTAT_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("gpu: skipped ({e})");
            None
        }
    }
}

fn model(family: &str, dtype: DType, dev: &Device) -> Transformer {
    load_dir_transformer_as(&dir(family), dtype, dev)
        .unwrap_or_else(|e| panic!("{family} {dtype:?}: {e}"))
}

/// Encoder and teacher-forced logits against transformers: (encoder diff, logits diff,
/// max |logit|, argmax agreement over all decoder positions).
fn forward_parity(family: &str, dtype: DType, dev: &Device) -> (f32, f32, f32, f64) {
    let m = model(family, dtype, dev);
    let e = expected(family, dev);
    let ids = e["input_ids"].to_dtype(DType::U32).unwrap();
    let enc = m.encode(&ids, &e["attention_mask"]).unwrap();
    let enc_diff = masked_diff(&enc.hidden, &e["encoder_hidden"], &e["attention_mask"]);
    let logits = m.decode_full(&enc, &e["decoder_input_ids"]).unwrap();
    assert_eq!(logits.dtype(), DType::F32, "logits must be f32");
    let want = &e["logits"];
    let lg = max_abs(&(&logits - want).unwrap());
    let scale = max_abs(want);
    let agree = agreement(&argmax_ids(&logits), &argmax_ids(want));
    (enc_diff, lg, scale, agree)
}

struct Setting {
    name: String,
    cfg: GenerationConfig,
    expected: Vec<Vec<u32>>,
}

fn settings(family: &str) -> (Vec<Vec<u32>>, Vec<Setting>) {
    let path = dir(family).join("generate.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("generate.json");
    let ids = |v: &Value| -> Vec<Vec<u32>> { serde_json::from_value(v.clone()).expect("ids") };
    let s = doc["settings"]
        .as_object()
        .expect("settings")
        .iter()
        .map(|(name, s)| Setting {
            name: name.clone(),
            cfg: serde_json::from_value(s["params"].clone()).expect("params"),
            expected: ids(&s["output_ids"]),
        })
        .collect();
    (ids(&doc["sources"]), s)
}

/// (identical sequences, total, token agreement over aligned positions) per setting.
fn generate_parity(family: &str, dtype: DType, dev: &Device) -> Vec<(String, usize, usize, f64)> {
    let m = model(family, dtype, dev);
    let (sources, settings) = settings(family);
    settings
        .iter()
        .map(|s| {
            let got = generate(&m as &dyn Seq2SeqModel, &sources, &s.cfg, dev)
                .unwrap_or_else(|e| panic!("{family} {dtype:?} {}: {e}", s.name));
            let same = got.iter().zip(&s.expected).filter(|(a, b)| a == b).count();
            let (mut ok, mut n) = (0usize, 0usize);
            for (g, w) in got.iter().zip(&s.expected) {
                n += g.len().max(w.len());
                ok += g.iter().zip(w).take_while(|(a, b)| a == b).count();
            }
            let tok = ok as f64 / n.max(1) as f64;
            (s.name.clone(), same, s.expected.len(), tok)
        })
        .collect()
}

#[test]
fn f32_on_gpu_matches_transformers() {
    let Some(dev) = gpu() else { return };
    let mut failures = Vec::new();
    for fam in FAMILIES {
        let (enc, lg, scale, agree) = forward_parity(fam, DType::F32, &dev);
        println!(
            "gpu: f32  {fam:7} encoder {enc:.2e} logits {lg:.2e} (max|logit| {scale:.1}) \
             argmax agreement {:.1}%",
            agree * 100.0
        );
        if enc >= 1e-3 || lg >= 1e-3 {
            failures.push(format!(
                "{fam}: encoder {enc:.2e} logits {lg:.2e} (tol 1e-3)"
            ));
        }
        for (name, same, n, tok) in generate_parity(fam, DType::F32, &dev) {
            println!(
                "gpu: f32  {fam:7} {name:14} ids {same}/{n} identical, {:.1}% of tokens",
                tok * 100.0
            );
            if same != n {
                failures.push(format!("{fam} {name}: {same}/{n} identical sequences"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Half precision: reported, with loose bounds that catch real breakage (NaN/inf, masks,
/// wrong dtype plumbing) but not rounding. The bounds come from the same test on CPU
/// (TOMTAT_TEST_DEVICE=cpu): f16 logits within 2.7e-2 relative, argmax agreement 100%; bf16
/// (3 fewer mantissa bits) within 0.2, agreement 86-97% on these small-margin random models.
fn half(dtype: DType) {
    let (max_rel, min_agree) = if dtype == DType::BF16 {
        (0.3, 0.75)
    } else {
        (0.1, 0.9)
    };
    let Some(dev) = gpu() else { return };
    let tag = format!("{dtype:?}").to_lowercase();
    let mut failures = Vec::new();
    for fam in FAMILIES {
        let (enc, lg, scale, agree) = forward_parity(fam, dtype, &dev);
        let rel = lg / scale.max(1e-6);
        println!(
            "gpu: {tag:4} {fam:7} encoder {enc:.2e} logits {lg:.2e} (relative {rel:.2e}) \
             argmax agreement {:.1}%",
            agree * 100.0
        );
        if !(rel < max_rel && agree >= min_agree) {
            failures.push(format!(
                "{fam}: logits relative diff {rel:.2e}, argmax agreement {:.1}%",
                agree * 100.0
            ));
        }
        for (name, same, n, tok) in generate_parity(fam, dtype, &dev) {
            println!(
                "gpu: {tag:4} {fam:7} {name:14} ids {same}/{n} identical, {:.1}% of tokens",
                tok * 100.0
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn f16_on_gpu_is_close() {
    half(DType::F16);
}

#[test]
fn bf16_on_gpu_is_close() {
    half(DType::BF16);
}

#[test]
fn gpu_memory_is_reported() {
    let Some(dev) = gpu() else { return };
    if dev.is_cpu() {
        assert!(tomtat::device::memory_info(&dev).is_none());
        return;
    }
    let (free, total) = tomtat::device::memory_info(&dev).expect("memory info on a GPU");
    println!("gpu: memory free {} MiB of {} MiB", free >> 20, total >> 20);
    assert!(free <= total && total > 0);
}
