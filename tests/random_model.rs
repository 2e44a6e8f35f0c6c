//! `tomtat random-model` / `testkit::random_model`: tiny models of every architecture are written in
//! the Hub layout with exactly the tensors of the HF checkpoint (names and shapes listed here
//! independently of the writer, from transformers' `state_dict()` as `save_pretrained` stores
//! it), deterministically per seed. scripts/check_random_model.py checks the same files with
//! transformers itself (not in CI).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;
use serde_json::Value;
use tomtat::testkit::random_model::{plan, write_random_model, RandomSpec, Shape, Variant};

fn tomtat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tomtat"))
}

fn shared_tokenizer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tokenizers/opus-mt-en-mg")
}

fn tiny(arch: Variant, seed: u64) -> RandomSpec {
    let mut s = RandomSpec::new(arch, Shape::Tiny);
    s.seed = seed;
    s
}

fn write(spec: &RandomSpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_random_model(spec, dir.path()).unwrap();
    dir
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn get(cfg: &Value, key: &str) -> usize {
    cfg[key].as_u64().unwrap_or_else(|| panic!("{key} missing")) as usize
}

type Shapes = BTreeMap<String, Vec<usize>>;

fn header(path: &Path) -> (Shapes, Option<std::collections::HashMap<String, String>>) {
    let bytes = fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let shapes = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            (name, view.shape().to_vec())
        })
        .collect();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    (shapes, meta.metadata().clone())
}

fn f32s(bytes: &[u8], name: &str) -> Vec<f32> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The tensors of the HF checkpoint as transformers 5 `save_pretrained` writes them
/// (MarianMTModel / BartForConditionalGeneration / MBartForConditionalGeneration /
/// T5ForConditionalGeneration), derived from config.json alone.
fn expected_tensors(arch: Variant, cfg: &Value) -> Shapes {
    let mut m = Shapes::new();
    let mut add = |n: String, s: Vec<usize>| {
        assert!(m.insert(n.clone(), s).is_none(), "duplicate {n}");
    };
    let v = get(cfg, "vocab_size");
    let d = get(cfg, "d_model");
    if matches!(arch, Variant::T5 | Variant::T5v11) {
        let (ff, heads, inner) = (
            get(cfg, "d_ff"),
            get(cfg, "num_heads"),
            get(cfg, "num_heads") * get(cfg, "d_kv"),
        );
        let buckets = get(cfg, "relative_attention_num_buckets");
        let gated = cfg["feed_forward_proj"]
            .as_str()
            .unwrap()
            .starts_with("gated-");
        add("shared.weight".into(), vec![v, d]);
        for (side, n) in [
            ("encoder", get(cfg, "num_layers")),
            ("decoder", get(cfg, "num_decoder_layers")),
        ] {
            for i in 0..n {
                let mut attn = |layer: usize, kind: &str, rel: bool| {
                    let p = format!("{side}.block.{i}.layer.{layer}.{kind}");
                    for x in ["q", "k", "v"] {
                        add(format!("{p}.{x}.weight"), vec![inner, d]);
                    }
                    add(format!("{p}.o.weight"), vec![d, inner]);
                    if rel {
                        add(
                            format!("{p}.relative_attention_bias.weight"),
                            vec![buckets, heads],
                        );
                    }
                    add(
                        format!("{side}.block.{i}.layer.{layer}.layer_norm.weight"),
                        vec![d],
                    );
                };
                attn(0, "SelfAttention", i == 0);
                let ffn_layer = if side == "decoder" {
                    attn(1, "EncDecAttention", false);
                    2
                } else {
                    1
                };
                let p = format!("{side}.block.{i}.layer.{ffn_layer}");
                if gated {
                    add(format!("{p}.DenseReluDense.wi_0.weight"), vec![ff, d]);
                    add(format!("{p}.DenseReluDense.wi_1.weight"), vec![ff, d]);
                } else {
                    add(format!("{p}.DenseReluDense.wi.weight"), vec![ff, d]);
                }
                add(format!("{p}.DenseReluDense.wo.weight"), vec![d, ff]);
                add(format!("{p}.layer_norm.weight"), vec![d]);
            }
            add(format!("{side}.final_layer_norm.weight"), vec![d]);
        }
        if cfg["tie_word_embeddings"] == false {
            add("lm_head.weight".into(), vec![v, d]);
        }
        return m;
    }
    add("final_logits_bias".into(), vec![1, v]);
    add("model.shared.weight".into(), vec![v, d]);
    let pos = get(cfg, "max_position_embeddings");
    for (side, n, ff) in [
        (
            "encoder",
            get(cfg, "encoder_layers"),
            get(cfg, "encoder_ffn_dim"),
        ),
        (
            "decoder",
            get(cfg, "decoder_layers"),
            get(cfg, "decoder_ffn_dim"),
        ),
    ] {
        let mut ln = |p: String| {
            add(format!("{p}.weight"), vec![d]);
            add(format!("{p}.bias"), vec![d]);
        };
        if arch != Variant::Marian {
            ln(format!("model.{side}.layernorm_embedding"));
        }
        if arch == Variant::Mbart {
            ln(format!("model.{side}.layer_norm"));
        }
        for i in 0..n {
            let l = format!("model.{side}.layers.{i}");
            let mut kinds = vec!["self_attn"];
            if side == "decoder" {
                kinds.push("encoder_attn");
            }
            for k in kinds {
                for x in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                    add(format!("{l}.{k}.{x}.weight"), vec![d, d]);
                    add(format!("{l}.{k}.{x}.bias"), vec![d]);
                }
                add(format!("{l}.{k}_layer_norm.weight"), vec![d]);
                add(format!("{l}.{k}_layer_norm.bias"), vec![d]);
            }
            add(format!("{l}.fc1.weight"), vec![ff, d]);
            add(format!("{l}.fc1.bias"), vec![ff]);
            add(format!("{l}.fc2.weight"), vec![d, ff]);
            add(format!("{l}.fc2.bias"), vec![d]);
            add(format!("{l}.final_layer_norm.weight"), vec![d]);
            add(format!("{l}.final_layer_norm.bias"), vec![d]);
        }
        if arch != Variant::Marian {
            // Learned positions with fairseq's offset of 2; Marian's sinusoidal table is not
            // saved.
            add(
                format!("model.{side}.embed_positions.weight"),
                vec![pos + 2, d],
            );
        }
    }
    m
}

#[test]
fn tiny_models_have_the_hf_tensors_and_configs() {
    for arch in Variant::ALL {
        let dir = write(&tiny(arch, 0));
        let cfg = json(&dir.path().join("config.json"));
        assert_eq!(cfg["model_type"], arch.model_type(), "{arch}");
        assert_eq!(cfg["is_encoder_decoder"], true, "{arch}");
        assert_eq!(cfg["dtype"], "float32", "{arch}");
        let d = get(&cfg, "d_model");
        assert!((32..=64).contains(&d), "{arch}: tiny d_model {d}");
        let gen = json(&dir.path().join("generation_config.json"));
        for k in ["decoder_start_token_id", "eos_token_id", "pad_token_id"] {
            assert_eq!(gen[k], cfg[k], "{arch}: {k} in generation_config.json");
        }
        let (shapes, meta) = header(&dir.path().join("model.safetensors"));
        assert_eq!(
            meta.and_then(|m| m.get("format").cloned()).as_deref(),
            Some("pt"),
            "{arch}: transformers needs metadata format=pt"
        );
        let expected = expected_tensors(arch, &cfg);
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !shapes.contains_key(*k))
            .collect();
        let extra: Vec<_> = shapes
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{arch}: missing {missing:?}, unexpected {extra:?}"
        );
        assert_eq!(shapes, expected, "{arch}: shapes");
        let size = fs::metadata(dir.path().join("model.safetensors"))
            .unwrap()
            .len();
        assert!(size < 1_000_000, "{arch}: tiny model is {size} bytes");
        // No tokenizer asked for, none written.
        assert!(!dir.path().join("tokenizer.json").exists());
    }
}

#[test]
fn named_shapes_match_the_real_checkpoints() {
    // Config values of the real Hub models (planned only: writing them takes ~1 GB).
    let cases: [(Shape, &[(&str, u64)]); 5] = [
        (
            Shape::OpusMtViEn,
            &[
                ("d_model", 512),
                ("encoder_layers", 6),
                ("decoder_layers", 6),
                ("encoder_attention_heads", 8),
                ("encoder_ffn_dim", 2048),
                ("max_position_embeddings", 512),
                ("eos_token_id", 0),
            ],
        ),
        (
            Shape::DistilbartCnn12_6,
            &[
                ("d_model", 1024),
                ("encoder_layers", 12),
                ("decoder_layers", 6),
                ("decoder_attention_heads", 16),
                ("decoder_ffn_dim", 4096),
                ("vocab_size", 50264),
                ("max_position_embeddings", 1024),
            ],
        ),
        (
            Shape::BartLargeCnn,
            &[("encoder_layers", 12), ("decoder_layers", 12)],
        ),
        (
            Shape::T5Small,
            &[
                ("d_model", 512),
                ("d_kv", 64),
                ("d_ff", 2048),
                ("num_layers", 6),
                ("num_heads", 8),
                ("vocab_size", 32128),
            ],
        ),
        (
            Shape::FlanT5Base,
            &[
                ("d_model", 768),
                ("d_ff", 2048),
                ("num_layers", 12),
                ("num_decoder_layers", 12),
                ("num_heads", 12),
                ("vocab_size", 32128),
            ],
        ),
    ];
    for (shape, want) in cases {
        let arch = shape.arch().unwrap();
        let p = plan(&RandomSpec::new(arch, shape)).unwrap();
        for (k, v) in want {
            assert_eq!(p.config[*k], *v, "{shape}: {k}");
        }
        let got: Shapes = p
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        assert_eq!(got, expected_tensors(arch, &p.config), "{shape}");
    }
    let opus = plan(&RandomSpec::new(Variant::Marian, Shape::OpusMtViEn)).unwrap();
    let v = get(&opus.config, "vocab_size") as u64;
    assert_eq!(opus.config["pad_token_id"], v - 1);
    assert_eq!(opus.config["decoder_start_token_id"], v - 1);
    assert_eq!(opus.config["activation_function"], "swish");
    assert_eq!(
        opus.generation_config["bad_words_ids"],
        serde_json::json!([[v - 1]])
    );
    assert_eq!(opus.generation_config["num_beams"], 4);
    assert_eq!(opus.generation_config["max_length"], 512);
    let cnn = plan(&RandomSpec::new(Variant::Bart, Shape::DistilbartCnn12_6)).unwrap();
    let g = &cnn.generation_config;
    assert_eq!(g["min_length"], 56);
    assert_eq!(g["max_length"], 142);
    assert_eq!(g["length_penalty"], 2.0);
    assert_eq!(g["no_repeat_ngram_size"], 3);
    assert_eq!(g["forced_bos_token_id"], 0);
    assert_eq!(g["forced_eos_token_id"], 2);
    assert_eq!(g["early_stopping"], true);
    let flan = plan(&RandomSpec::new(Variant::T5v11, Shape::FlanT5Base)).unwrap();
    assert_eq!(flan.config["feed_forward_proj"], "gated-gelu");
    assert_eq!(flan.config["tie_word_embeddings"], false);
    let t5 = plan(&RandomSpec::new(Variant::T5, Shape::T5Small)).unwrap();
    assert_eq!(t5.config["tie_word_embeddings"], true);
    assert_eq!(
        t5.config["task_specific_params"]["summarization"]["prefix"],
        "summarize: "
    );
}

#[test]
fn same_seed_same_bytes_other_seed_other_weights() {
    for arch in [Variant::Marian, Variant::T5v11] {
        let a = write(&tiny(arch, 7));
        let b = write(&tiny(arch, 7));
        let c = write(&tiny(arch, 8));
        for f in ["config.json", "generation_config.json", "model.safetensors"] {
            let fa = fs::read(a.path().join(f)).unwrap();
            assert_eq!(fa, fs::read(b.path().join(f)).unwrap(), "{arch} {f}");
            let fc = fs::read(c.path().join(f)).unwrap();
            if f == "model.safetensors" {
                assert_eq!(fa.len(), fc.len());
                assert_ne!(fa, fc, "{arch}: seed must change the weights");
            } else {
                assert_eq!(fa, fc, "{arch}: {f} does not depend on the seed");
            }
        }
    }
}

#[test]
fn init_is_not_degenerate() {
    let dir = write(&tiny(Variant::Bart, 0));
    let bytes = fs::read(dir.path().join("model.safetensors")).unwrap();
    let cfg = json(&dir.path().join("config.json"));
    let (v, d, pad) = (
        get(&cfg, "vocab_size"),
        get(&cfg, "d_model"),
        get(&cfg, "pad_token_id"),
    );
    let emb = f32s(&bytes, "model.shared.weight");
    assert_eq!(emb.len(), v * d);
    assert!(
        emb[pad * d..(pad + 1) * d].iter().all(|&x| x == 0.0),
        "pad row"
    );
    let std = |xs: &[f32]| {
        let n = xs.len() as f64;
        let m = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        (xs.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
    };
    let e = std(&emb);
    assert!((0.1..1.0).contains(&e), "embedding std {e}");
    assert!(f32s(&bytes, "final_logits_bias").iter().all(|&x| x == 0.0));
    let ln = f32s(&bytes, "model.encoder.layers.0.final_layer_norm.weight");
    assert!(ln.iter().all(|&x| (0.5..=1.5).contains(&x)));
    assert!(std(&ln) > 0.1, "layer norm weights are randomised");
    let q = std(&f32s(
        &bytes,
        "model.encoder.layers.0.self_attn.q_proj.weight",
    ));
    let o = std(&f32s(
        &bytes,
        "model.encoder.layers.0.self_attn.out_proj.weight",
    ));
    assert!(
        q > 2.0 * o,
        "q/k peakier than other projections: {q} vs {o}"
    );
    let b = f32s(&bytes, "model.encoder.layers.0.fc1.bias");
    assert!(std(&b) > 0.0 && std(&b) < 0.1, "small biases");
}

#[test]
fn tokenizer_dir_gives_vocab_ids_and_files() {
    let tok = shared_tokenizer();
    if !tok.is_dir() {
        panic!("{} is missing (needs ../shared)", tok.display());
    }
    let src = json(&tok.join("config.json"));
    let mut spec = tiny(Variant::Marian, 0);
    spec.tokenizer = Some(tok.clone());
    let dir = write(&spec);
    let cfg = json(&dir.path().join("config.json"));
    for k in [
        "vocab_size",
        "pad_token_id",
        "eos_token_id",
        "decoder_start_token_id",
    ] {
        assert_eq!(cfg[k], src[k], "{k}");
    }
    let gen = json(&dir.path().join("generation_config.json"));
    assert_eq!(
        gen["bad_words_ids"],
        serde_json::json!([[src["pad_token_id"]]])
    );
    for f in [
        "source.spm",
        "target.spm",
        "vocab.json",
        "tokenizer_config.json",
    ] {
        assert_eq!(
            fs::read(dir.path().join(f)).unwrap(),
            fs::read(tok.join(f)).unwrap(),
            "{f} copied"
        );
    }
    assert!(
        !dir.path().join("README.md").exists(),
        "only tokenizer files"
    );
    let (shapes, _) = header(&dir.path().join("model.safetensors"));
    assert_eq!(
        shapes["model.shared.weight"],
        vec![get(&src, "vocab_size"), get(&cfg, "d_model")]
    );

    // Vocabulary may grow (padded like real checkpoints), never shrink.
    spec.vocab_size = Some(get(&src, "vocab_size") + 8);
    assert_eq!(
        plan(&spec).unwrap().config["vocab_size"],
        src["vocab_size"].as_u64().unwrap() + 8
    );
    spec.vocab_size = Some(100);
    let e = plan(&spec).unwrap_err().to_string();
    assert!(e.contains("smaller than the vocabulary"), "{e}");

    // A Marian tokenizer is not a T5 one.
    let mut t5 = tiny(Variant::T5, 0);
    t5.tokenizer = Some(tok);
    let e = plan(&t5).unwrap_err().to_string();
    assert!(e.contains("model_type") && e.contains("marian"), "{e}");
}

#[test]
fn tokenizer_without_config_json_is_sized_from_its_vocab() {
    let tok = tempfile::tempdir().unwrap();
    // BART-style vocab.json + merges.txt, ids as in facebook/bart-*.
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<s>", "<pad>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert(t.to_string(), i.into());
    }
    for i in 4..300u32 {
        vocab.insert(format!("w{i}"), i.into());
    }
    vocab.insert("<mask>".into(), 300.into());
    fs::write(
        tok.path().join("vocab.json"),
        Value::Object(vocab).to_string(),
    )
    .unwrap();
    fs::write(tok.path().join("merges.txt"), "#version: 0.2\n").unwrap();
    let mut spec = tiny(Variant::Bart, 0);
    spec.tokenizer = Some(tok.path().to_path_buf());
    let p = plan(&spec).unwrap();
    assert_eq!(p.config["vocab_size"], 301);
    assert_eq!(p.config["pad_token_id"], 1);
    assert_eq!(p.config["eos_token_id"], 2);
    assert_eq!(p.config["decoder_start_token_id"], 2);
    assert_eq!(p.generation_config["forced_bos_token_id"], 0);

    // tokenizer.json (WordLevel with an added token past the model vocabulary), T5 ids.
    let tj = tempfile::tempdir().unwrap();
    let doc = serde_json::json!({
        "added_tokens": [{"id": 120, "content": "<extra_id_0>"}],
        "model": {"type": "WordLevel", "vocab": {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3}}
    });
    fs::write(tj.path().join("tokenizer.json"), doc.to_string()).unwrap();
    let mut spec = tiny(Variant::T5, 0);
    spec.tokenizer = Some(tj.path().to_path_buf());
    let p = plan(&spec).unwrap();
    assert_eq!(p.config["vocab_size"], 121);
    assert_eq!(p.config["pad_token_id"], 0);
    assert_eq!(p.config["eos_token_id"], 1);

    // Nothing to read: a clear error naming the directory.
    let empty = tempfile::tempdir().unwrap();
    spec.tokenizer = Some(empty.path().to_path_buf());
    let e = plan(&spec).unwrap_err().to_string();
    assert!(e.contains("no tokenizer files"), "{e}");
}

#[test]
fn cli_writes_a_model_and_rejects_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let r = tomtat()
        .args([
            "random-model",
            "--arch",
            "t5",
            "--shape",
            "tiny",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let lib = write(&tiny(Variant::T5, 3));
    assert_eq!(
        fs::read(out.join("model.safetensors")).unwrap(),
        fs::read(lib.path().join("model.safetensors")).unwrap(),
        "CLI and library agree"
    );
    assert!(!out.join("model.safetensors.partial").exists());

    let r = tomtat()
        .args([
            "random-model",
            "--arch",
            "t5",
            "--shape",
            "opus-mt-vi-en",
            "--out",
        ])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("marian"));
    assert!(!dir.path().join("x").exists(), "nothing written on error");

    let r = tomtat()
        .args(["random-model", "--shape", "tiny", "--out"])
        .arg(dir.path().join("y"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--arch"));
}

#[test]
fn tokenizer_fixtures_make_model_dirs_tomtat_can_open() {
    // Every tokenizer fixture with a config.json (tests/fixtures/tokenizers/<name>/): the
    // written directory is a complete model dir: tomtat's tokenizer loads it and every id it
    // produces fits the model's embedding; hub::ModelDir opens it and maps its weights.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers");
    let mut seen = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let tok_dir = entry.unwrap().path();
        if !tok_dir.join("config.json").is_file() {
            continue;
        }
        let src = json(&tok_dir.join("config.json"));
        let archs: &[Variant] = match src["model_type"].as_str().unwrap() {
            "marian" => &[Variant::Marian],
            "bart" => &[Variant::Bart],
            "mbart" => &[Variant::Mbart],
            "t5" => &[Variant::T5, Variant::T5v11],
            other => panic!("{}: model_type {other}", tok_dir.display()),
        };
        for &arch in archs {
            let mut spec = tiny(arch, 1);
            spec.tokenizer = Some(tok_dir.clone());
            let out = write(&spec);
            let cfg = json(&out.path().join("config.json"));
            let v = get(&cfg, "vocab_size");
            assert_eq!(
                cfg["vocab_size"],
                src["vocab_size"],
                "{}",
                tok_dir.display()
            );
            for k in ["pad_token_id", "eos_token_id", "decoder_start_token_id"] {
                if !src[k].is_null() {
                    assert_eq!(cfg[k], src[k], "{} {k}", tok_dir.display());
                }
            }
            let (shapes, _) = header(&out.path().join("model.safetensors"));
            assert_eq!(
                shapes,
                expected_tensors(arch, &cfg),
                "{}",
                tok_dir.display()
            );
            let tok = tomtat::tokenize::Tokenizer::from_dir(out.path())
                .unwrap_or_else(|e| panic!("{}: {e}", tok_dir.display()));
            assert!(tok.vocab_size() <= v, "{}", tok_dir.display());
            assert_eq!(tok.pad_id() as usize, get(&cfg, "pad_token_id"));
            assert_eq!(tok.eos_id() as usize, get(&cfg, "eos_token_id"));
            let ids = tok
                .encode("Thời tiết hôm nay đẹp. The weather is nice.")
                .unwrap();
            assert!(
                ids.len() > 3 && ids.iter().all(|&i| (i as usize) < v),
                "{ids:?}"
            );

            // tomtat's hub layer accepts the directory and maps its weights.
            let md = tomtat::hub::ModelDir::open_local(out.path())
                .unwrap_or_else(|e| panic!("{}: {e}", tok_dir.display()));
            let hub_arch = md.config.arch;
            assert_eq!(hub_arch.name(), arch.model_type());
            let vb =
                tomtat::hub::load_weights(&md, candle_core::DType::F32, &candle_core::Device::Cpu)
                    .unwrap();
            let d = get(&cfg, "d_model");
            let emb = if matches!(arch, Variant::T5 | Variant::T5v11) {
                "shared.weight"
            } else {
                "model.shared.weight"
            };
            assert_eq!(vb.get((v, d), emb).unwrap().dims(), &[v, d]);
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "only {seen} tokenizer fixtures found in {}",
        root.display()
    );
}
