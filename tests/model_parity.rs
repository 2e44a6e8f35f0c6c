//! Numerical parity of `tomtat::model` with Hugging Face transformers on the small random
//! models in tests/fixtures/models (built by scripts/make_model_fixtures.py), plus the
//! incremental decoder (KV cache, select_rows) against the full pass, batch vs single rows,
//! and error cases. Run with `--nocapture` to see the max abs diffs per family.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, IndexOp, Tensor, D};
use common::{expected, fixture_dir as dir, masked_diff, max_abs, max_abs_diff, FAMILIES};
use tomtat::device::DTypeArg;
use tomtat::model::{DecoderState, ModelError, Seq2SeqModel, Transformer};
use tomtat::pipeline::engine::{load_model, load_transformer, EngineOptions};

const TOL: f32 = 1e-4;

fn model(family: &str) -> Transformer {
    load_transformer(&dir(family), DTypeArg::Auto, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{family}: {e}"))
}

/// A model directory as the product loads it (no tokenizer needed), as the trait object.
fn load_dir(d: &std::path::Path) -> Box<dyn Seq2SeqModel> {
    let spec = d.to_str().expect("UTF-8 path");
    load_model(spec, &EngineOptions::default(), false)
        .unwrap_or_else(|e| panic!("{spec}: {e}"))
        .model
}

fn u32s(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

/// Step the decoder through `ids` (`[b, t]`), returning logits `[b, t, vocab]`.
fn step_all(dec: &mut dyn DecoderState, ids: &[Vec<u32>], from: usize, to: usize) -> Vec<Tensor> {
    (from..to)
        .map(|j| {
            let col: Vec<u32> = ids.iter().map(|r| r[j]).collect();
            dec.step(&col).unwrap()
        })
        .collect()
}

#[test]
fn encoder_and_logits_match_transformers() {
    for fam in FAMILIES {
        let m = model(fam);
        let e = expected(fam, &Device::Cpu);
        let ids = u32s(&e["input_ids"]);
        let enc = m.encode(&ids, &e["attention_mask"]).unwrap();
        let enc_all = max_abs_diff(&enc.hidden, &e["encoder_hidden"]);
        let enc_real = masked_diff(&enc.hidden, &e["encoder_hidden"], &e["attention_mask"]);
        let logits = m.decode_full(&enc, &e["decoder_input_ids"]).unwrap();
        let lg = max_abs_diff(&logits, &e["logits"]);
        let scale = max_abs(&e["logits"]);
        eprintln!(
            "{fam:7} encoder max|diff| {enc_real:.2e} (real positions) {enc_all:.2e} (all); logits {lg:.2e} (max|logit| {scale:.1})"
        );
        assert!(enc_real < TOL, "{fam}: encoder diff {enc_real}");
        assert!(
            enc_all < TOL,
            "{fam}: encoder diff at padded positions {enc_all}"
        );
        assert!(lg < TOL, "{fam}: logits diff {lg}");
        // the trait's teacher-forced entry point is the same full pass
        let tf = m
            .decode_teacher_forced(&enc, &e["decoder_input_ids"])
            .unwrap();
        assert_eq!(max_abs_diff(&tf, &logits), 0.0);
    }
}

#[test]
fn incremental_decoding_matches_full_pass() {
    for fam in FAMILIES {
        let m = model(fam);
        let e = expected(fam, &Device::Cpu);
        let enc = m
            .encode(&u32s(&e["input_ids"]), &e["attention_mask"])
            .unwrap();
        let dec_ids: Vec<Vec<u32>> = u32s(&e["decoder_input_ids"]).to_vec2().unwrap();
        let t = dec_ids[0].len();
        let full = m.decode_full(&enc, &e["decoder_input_ids"]).unwrap();
        // a roomier cache than needed must not change anything
        let mut dec = m.start_decoder(&enc, t + 5).unwrap();
        assert_eq!(dec.rows(), 4);
        let steps = step_all(dec.as_mut(), &dec_ids, 0, t);
        for s in &steps {
            assert_eq!(s.dims(), &[4, m.vocab_size()]);
            assert_eq!(s.dtype(), DType::F32);
        }
        let inc = Tensor::stack(&steps, 1).unwrap();
        let d_full = max_abs_diff(&inc, &full);
        let d_hf = max_abs_diff(&inc, &e["logits"]);
        eprintln!("{fam:7} incremental vs full pass {d_full:.2e}, vs transformers {d_hf:.2e}");
        assert!(
            d_full < TOL && d_hf < TOL,
            "{fam}: incremental {d_full} / {d_hf}"
        );
    }
}

#[test]
fn select_rows_reorders_caches() {
    for fam in FAMILIES {
        let m = model(fam);
        let e = expected(fam, &Device::Cpu);
        let ids = u32s(&e["input_ids"]);
        let mask = &e["attention_mask"];
        let dec_ids: Vec<Vec<u32>> = u32s(&e["decoder_input_ids"]).to_vec2().unwrap();
        let t = dec_ids[0].len();
        let split = 3;
        let enc = m.encode(&ids, mask).unwrap();
        let mut dec = m.start_decoder(&enc, t).unwrap();
        step_all(dec.as_mut(), &dec_ids, 0, split);
        // reorder with a repeat and a dropped row (row 1 leaves)
        let perm = [2u32, 0, 0, 3];
        dec.select_rows(&perm).unwrap();
        assert_eq!(dec.rows(), 4);
        let p_ids: Vec<Vec<u32>> = perm.iter().map(|&r| dec_ids[r as usize].clone()).collect();
        let cont = Tensor::stack(&step_all(dec.as_mut(), &p_ids, split, t), 1).unwrap();
        // reference: the reordered batch decoded from scratch
        let idx = Tensor::new(&perm, &Device::Cpu).unwrap();
        let enc_p = m
            .encode(
                &ids.index_select(&idx, 0).unwrap(),
                &mask.index_select(&idx, 0).unwrap(),
            )
            .unwrap();
        let dec_p = e["decoder_input_ids"].index_select(&idx, 0).unwrap();
        let full = m
            .decode_full(&enc_p, &dec_p)
            .unwrap()
            .narrow(1, split, t - split)
            .unwrap();
        let d = max_abs_diff(&cont, &full);
        // shrink to 2 rows mid-way, then continue
        let mut dec = m.start_decoder(&enc, t).unwrap();
        // beam-style expansion before the first step: every source twice
        dec.select_rows(&[0, 0, 1, 1, 2, 2, 3, 3]).unwrap();
        let x_ids: Vec<Vec<u32>> = (0..8).map(|i| dec_ids[i / 2].clone()).collect();
        let first = step_all(dec.as_mut(), &x_ids, 0, split);
        dec.select_rows(&[7, 2]).unwrap();
        let s_ids = vec![dec_ids[3].clone(), dec_ids[1].clone()];
        let rest = step_all(dec.as_mut(), &s_ids, split, t);
        let full_b = m.decode_full(&enc, &e["decoder_input_ids"]).unwrap();
        let mut d2 = 0f32;
        for (j, lg) in first.iter().enumerate() {
            for r in 0..8 {
                let want = full_b.i((r / 2, j)).unwrap();
                d2 = d2.max(max_abs_diff(&lg.i(r).unwrap(), &want));
            }
        }
        for (j, lg) in rest.iter().enumerate() {
            for (r, src) in [3usize, 1].iter().enumerate() {
                let want = full_b.i((*src, split + j)).unwrap();
                d2 = d2.max(max_abs_diff(&lg.i(r).unwrap(), &want));
            }
        }
        eprintln!("{fam:7} select_rows: reorder {d:.2e}, expand+shrink {d2:.2e}");
        assert!(d < TOL && d2 < TOL, "{fam}: select_rows {d} / {d2}");
        // identity and empty selections are fine; out-of-range rows are errors
        dec.select_rows(&[0, 1]).unwrap();
        assert!(matches!(dec.select_rows(&[2]), Err(ModelError::Input(_))));
        dec.select_rows(&[]).unwrap();
        assert_eq!(dec.rows(), 0);
    }
}

#[test]
fn batch_equals_rows_one_by_one() {
    for fam in FAMILIES {
        let m = model(fam);
        let e = expected(fam, &Device::Cpu);
        let ids = u32s(&e["input_ids"]);
        let mask = &e["attention_mask"];
        let enc = m.encode(&ids, mask).unwrap();
        let logits = m.decode_full(&enc, &e["decoder_input_ids"]).unwrap();
        let lens: Vec<u32> = mask
            .to_dtype(DType::U32)
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut d_enc = 0f32;
        let mut d_lg = 0f32;
        for (r, &len) in lens.iter().enumerate() {
            let len = len as usize;
            let one_ids = ids.i((r..r + 1, ..len)).unwrap();
            let one_mask = mask.i((r..r + 1, ..len)).unwrap();
            let one = m.encode(&one_ids, &one_mask).unwrap();
            let batch_h = enc.hidden.i((r..r + 1, ..len)).unwrap();
            d_enc = d_enc.max(max_abs_diff(&one.hidden, &batch_h));
            let one_lg = m
                .decode_full(&one, &e["decoder_input_ids"].i(r..r + 1).unwrap())
                .unwrap();
            d_lg = d_lg.max(max_abs_diff(&one_lg, &logits.i(r..r + 1).unwrap()));
        }
        eprintln!("{fam:7} batch vs single rows: encoder {d_enc:.2e}, logits {d_lg:.2e}");
        assert!(
            d_enc < TOL && d_lg < TOL,
            "{fam}: padding leaks: {d_enc} / {d_lg}"
        );
    }
}

/// Greedy search through the trait, for the settings whose only logits processors are
/// "no EOS before min_new_tokens" and single-token bad words: must give transformers' ids.
#[test]
fn greedy_forced_length_matches_hf_generate() {
    for fam in FAMILIES {
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir(fam).join("generate.json")).unwrap())
                .unwrap();
        let s = &g["settings"]["greedy_forced"];
        let p = &s["params"];
        if p["no_repeat_ngram_size"].as_u64().unwrap_or(0) > 0 {
            eprintln!("{fam:7} greedy check skipped (no_repeat_ngram_size)");
            continue;
        }
        let n = p["max_new_tokens"].as_u64().unwrap() as usize;
        let eos = g["eos_token_id"].as_u64().unwrap() as usize;
        let pad = g["pad_token_id"].as_u64().unwrap() as u32;
        let start = g["decoder_start_token_id"].as_u64().unwrap() as u32;
        let mut banned = vec![eos];
        if let Some(bw) = p["bad_words_ids"].as_array() {
            for w in bw {
                let w = w.as_array().unwrap();
                assert_eq!(w.len(), 1, "multi-token bad words not handled by this test");
                banned.push(w[0].as_u64().unwrap() as usize);
            }
        }
        let srcs: Vec<Vec<u32>> = serde_json::from_value(g["sources"].clone()).unwrap();
        let want: Vec<Vec<u32>> = serde_json::from_value(s["output_ids"].clone()).unwrap();
        let m = load_dir(&dir(fam));
        let s_max = srcs.iter().map(Vec::len).max().unwrap();
        let mut ids = vec![pad; srcs.len() * s_max];
        let mut mask = vec![0u8; srcs.len() * s_max];
        for (i, r) in srcs.iter().enumerate() {
            ids[i * s_max..i * s_max + r.len()].copy_from_slice(r);
            mask[i * s_max..i * s_max + r.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (srcs.len(), s_max), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, (srcs.len(), s_max), &Device::Cpu).unwrap();
        let enc = m.encode(&ids, &mask).unwrap();
        let mut dec = m.start_decoder(&enc, n).unwrap();
        let mut ban = vec![0f32; m.vocab_size()];
        for b in banned {
            ban[b] = f32::NEG_INFINITY;
        }
        let ban = Tensor::new(ban.as_slice(), &Device::Cpu).unwrap();
        let mut tok = vec![start; srcs.len()];
        let mut got = vec![Vec::new(); srcs.len()];
        for _ in 0..n {
            let lg = dec.step(&tok).unwrap().broadcast_add(&ban).unwrap();
            tok = lg.argmax(D::Minus1).unwrap().to_vec1().unwrap();
            for (g, &t) in got.iter_mut().zip(&tok) {
                g.push(t);
            }
        }
        let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        eprintln!(
            "{fam:7} greedy forced-length ids identical to HF generate: {same}/{}",
            want.len()
        );
        assert_eq!(got, want, "{fam}");
    }
}

#[test]
fn input_errors_are_reported() {
    let m = model("marian");
    let dev = Device::Cpu;
    let v = m.vocab_size() as u32;
    let ids = Tensor::new(&[[5u32, v]], &dev).unwrap();
    let ones = Tensor::ones((1, 2), DType::U8, &dev).unwrap();
    let e = m.encode(&ids, &ones).unwrap_err();
    assert!(
        matches!(e, ModelError::Input(_)) && e.to_string().contains("vocabulary"),
        "{e}"
    );
    // longer than max_position_embeddings (64)
    let long = Tensor::ones((1, 65), DType::U32, &dev).unwrap();
    let e = m
        .encode(&long, &Tensor::ones((1, 65), DType::U8, &dev).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("max_position_embeddings"), "{e}");
    // mask shape mismatch
    let ok = Tensor::new(&[[5u32, 6]], &dev).unwrap();
    assert!(m
        .encode(&ok, &Tensor::ones((1, 3), DType::U8, &dev).unwrap())
        .is_err());
    let enc = m.encode(&ok, &ones).unwrap();
    assert!(
        m.start_decoder(&enc, 65).is_err(),
        "decoder positions beyond the table"
    );
    assert!(m.start_decoder(&enc, 0).is_err());
    let mut dec = m.start_decoder(&enc, 2).unwrap();
    assert!(dec.step(&[1, 2]).is_err(), "two tokens for one row");
    assert!(dec.step(&[v]).is_err(), "token out of vocabulary");
    dec.step(&[1]).unwrap();
    dec.step(&[2]).unwrap();
    let e = dec.step(&[3]).unwrap_err();
    assert!(e.to_string().contains("preallocated"), "{e}");

    // T5 has no position limit
    let t5 = model("t5");
    let long = Tensor::ones((1, 300), DType::U32, &dev).unwrap();
    t5.encode(&long, &Tensor::ones((1, 300), DType::U8, &dev).unwrap())
        .unwrap();
}

#[test]
fn config_and_weight_errors_are_reported() {
    let dev = Device::Cpu;
    let cfg_text = std::fs::read_to_string(dir("bart").join("config.json")).unwrap();
    let weights = dir("bart").join("model.safetensors");
    // SAFETY: a fixture file nobody modifies while the test runs.
    let vb = || unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &dev).unwrap()
    };
    let mut cfg: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    cfg["encoder_ffn_dim"] = 96.into();
    let e = tomtat::model::from_config(&cfg, vb()).err().unwrap();
    let msg = e.to_string();
    assert!(matches!(e, ModelError::Weights(_)), "{msg}");
    assert!(
        msg.contains("model.encoder.layers.0.fc1.weight") && msg.contains("[64, 32]"),
        "{msg}"
    );
    let mut cfg: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    cfg["encoder_layers"] = 4.into();
    let msg = tomtat::model::from_config(&cfg, vb())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("missing tensor model.encoder.layers.3"),
        "{msg}"
    );
    let mut cfg: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    cfg["model_type"] = "gpt2".into();
    cfg["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    let e = tomtat::model::from_config(&cfg, vb()).err().unwrap();
    assert!(matches!(e, ModelError::UnknownArchitecture(_)), "{e}");
    // T5 v1.1 with its untied head removed and tie_word_embeddings=false
    let t5w = dir("t5v11").join("model.safetensors");
    let t5cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir("t5v11").join("config.json")).unwrap())
            .unwrap();
    let tensors = candle_core::safetensors::load(&t5w, &dev).unwrap();
    let no_head: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(k, _)| k != "lm_head.weight")
        .collect();
    let vb = candle_nn::VarBuilder::from_tensors(no_head, DType::F32, &dev);
    let msg = tomtat::model::from_config(&t5cfg, vb)
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("lm_head.weight"), "{msg}");
    // missing directory / file
    let e = load_transformer(&dir("does-not-exist"), DTypeArg::Auto, &dev)
        .err()
        .unwrap();
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn t5_buckets_match_transformers() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/t5_buckets.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rel: Vec<i64> = serde_json::from_value(v["relative_positions"].clone()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for c in cases {
        let nb = c["num_buckets"].as_u64().unwrap() as usize;
        let md = c["max_distance"].as_u64().unwrap() as usize;
        let bi = c["bidirectional"].as_bool().unwrap();
        let want: Vec<u32> = serde_json::from_value(c["buckets"].clone()).unwrap();
        let got: Vec<u32> = rel
            .iter()
            .map(|&r| tomtat::model::layers::relative_bucket(r, bi, nb, md))
            .collect();
        assert_eq!(got, want, "buckets {nb}/{md} bidirectional={bi}");
    }
}

/// Opt-in check on a full-size model directory (not in CI: needs large local files):
/// `TOMTAT_BENCH_MODEL=dir TOMTAT_BENCH_HF_IDS=hf.json RAYON_NUM_THREADS=1 cargo test --release
/// --test model_parity full_size -- --ignored --nocapture`. `dir` holds config.json,
/// model.safetensors and bench_inputs.json (ids, as ../shared/reference/make_random_models.py
/// writes); greedy search of `max_new_tokens` tokens with EOS and single-token bad words
/// banned (HF `min_new_tokens == max_new_tokens`), timed; if TOMTAT_BENCH_HF_IDS names the
/// `--dump` of ../shared/reference/bench_hf.py (beams 1), the ids must be identical.
#[test]
#[ignore]
fn full_size_greedy_matches_hf_and_timing() {
    let Ok(d) = std::env::var("TOMTAT_BENCH_MODEL") else {
        eprintln!("TOMTAT_BENCH_MODEL not set");
        return;
    };
    let d = PathBuf::from(d);
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let inputs = read(d.join("bench_inputs.json"));
    let gen = read(d.join("generation_config.json"));
    let cfg = read(d.join("config.json"));
    let srcs: Vec<Vec<u32>> = serde_json::from_value(inputs["ids"].clone()).unwrap();
    let n = gen["max_new_tokens"].as_u64().unwrap_or(30) as usize;
    let start = gen["decoder_start_token_id"]
        .as_u64()
        .or(cfg["decoder_start_token_id"].as_u64())
        .unwrap() as u32;
    let eos = gen["eos_token_id"]
        .as_u64()
        .or(cfg["eos_token_id"].as_u64())
        .unwrap() as usize;
    let pad = inputs["pad_token_id"].as_u64().unwrap() as u32;
    let t0 = std::time::Instant::now();
    let m = load_dir(&d);
    let load_s = t0.elapsed().as_secs_f64();
    let mut ban = vec![0f32; m.vocab_size()];
    ban[eos] = f32::NEG_INFINITY;
    if let Some(bw) = gen["bad_words_ids"].as_array() {
        for w in bw
            .iter()
            .filter_map(|w| w.as_array())
            .filter(|w| w.len() == 1)
        {
            ban[w[0].as_u64().unwrap() as usize] = f32::NEG_INFINITY;
        }
    }
    let ban = Tensor::new(ban.as_slice(), &Device::Cpu).unwrap();
    let s_max = srcs.iter().map(Vec::len).max().unwrap();
    let b = srcs.len();
    let mut ids = vec![pad; b * s_max];
    let mut mask = vec![0u8; b * s_max];
    for (i, r) in srcs.iter().enumerate() {
        ids[i * s_max..i * s_max + r.len()].copy_from_slice(r);
        mask[i * s_max..i * s_max + r.len()].fill(1);
    }
    let ids = Tensor::from_vec(ids, (b, s_max), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (b, s_max), &Device::Cpu).unwrap();
    let mut runs = Vec::new();
    let mut got = Vec::new();
    let n_runs: usize = std::env::var("TOMTAT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for _ in 0..n_runs {
        let t = std::time::Instant::now();
        let enc = m.encode(&ids, &mask).unwrap();
        let t_enc = t.elapsed().as_secs_f64();
        let mut dec = m.start_decoder(&enc, n).unwrap();
        let mut tok = vec![start; b];
        got = vec![Vec::new(); b];
        for _ in 0..n {
            let lg = dec.step(&tok).unwrap().broadcast_add(&ban).unwrap();
            tok = lg.argmax(D::Minus1).unwrap().to_vec1().unwrap();
            for (g, &t) in got.iter_mut().zip(&tok) {
                g.push(t);
            }
        }
        runs.push((t.elapsed().as_secs_f64(), t_enc));
    }
    let best = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    eprintln!(
        "{}: load {load_s:.2}s, runs (total s, encode s) {runs:.3?}, best {:.1} tok/s",
        d.display(),
        (b * n) as f64 / best
    );
    if let Ok(p) = std::env::var("TOMTAT_BENCH_HF_IDS") {
        let want: Vec<Vec<u32>> =
            serde_json::from_value(read(PathBuf::from(p))["ids"].clone()).unwrap();
        let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
        eprintln!("greedy ids identical to HF: {same}/{}", want.len());
        assert_eq!(got, want);
    }
}
