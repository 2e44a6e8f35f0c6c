//! Token-id parity of `generate` with transformers' `generate()` on the committed random
//! models (tests/fixtures/models/<family>/generate.json, made by
//! scripts/make_model_fixtures.py): greedy and beam 4, forced length (min = max = 30 new
//! tokens) and free-running (max 40 new tokens), the 32 sources as ONE padded batch and
//! each source alone. Run with `--nocapture` to see the per-family counts.

mod common;

use candle_core::Device;
use common::{fixture_dir, FAMILIES};
use serde_json::Value;
use tomtat::generate::{generate, GenerationConfig};
use tomtat::model::Seq2SeqModel;
use tomtat::pipeline::engine::{load_model, EngineOptions};

struct Setting {
    name: String,
    cfg: GenerationConfig,
    expected: Vec<Vec<u32>>,
}

struct Fixture {
    sources: Vec<Vec<u32>>,
    settings: Vec<Setting>,
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).expect("id lists")
}

fn load_fixture(family: &str) -> Fixture {
    let path = fixture_dir(family).join("generate.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("generate.json");
    let settings = doc["settings"]
        .as_object()
        .expect("settings")
        .iter()
        .map(|(name, s)| {
            // `params` are the effective values transformers used (None = its default), so
            // they make a complete config on their own.
            let cfg: GenerationConfig =
                serde_json::from_value(s["params"].clone()).expect("params");
            Setting {
                name: name.clone(),
                cfg,
                expected: ids(&s["output_ids"]),
            }
        })
        .collect();
    Fixture {
        sources: ids(&doc["sources"]),
        settings,
    }
}

fn model(family: &str) -> Box<dyn Seq2SeqModel> {
    let dir = fixture_dir(family);
    let spec = dir.to_str().expect("UTF-8 path");
    let m = load_model(spec, &EngineOptions::default(), false)
        .unwrap_or_else(|e| panic!("{family}: {e}"));
    assert!(m.device.is_cpu());
    m.model
}

fn count_same(got: &[Vec<u32>], want: &[Vec<u32>]) -> usize {
    got.iter().zip(want).filter(|(a, b)| a == b).count()
}

#[test]
fn batch_matches_transformers() {
    let mut failures = Vec::new();
    for family in FAMILIES {
        let fx = load_fixture(family);
        let m = model(family);
        assert_eq!(fx.settings.len(), 4, "{family}: 4 settings expected");
        for s in &fx.settings {
            let got = generate(m.as_ref(), &fx.sources, &s.cfg, &Device::Cpu)
                .unwrap_or_else(|e| panic!("{family} {}: {e}", s.name));
            let same = count_same(&got, &s.expected);
            println!(
                "{family:7} {:14} batch of {}: {same}/{} identical",
                s.name,
                fx.sources.len(),
                s.expected.len()
            );
            for (i, (g, w)) in got.iter().zip(&s.expected).enumerate() {
                if g != w {
                    failures.push(format!(
                        "{family} {} source {i}:\n  got  {g:?}\n  want {w:?}",
                        s.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_by_one_matches_transformers() {
    let mut failures = Vec::new();
    for family in FAMILIES {
        let fx = load_fixture(family);
        let m = model(family);
        for s in &fx.settings {
            let mut same = 0;
            for (i, src) in fx.sources.iter().enumerate() {
                let got = generate(m.as_ref(), std::slice::from_ref(src), &s.cfg, &Device::Cpu)
                    .unwrap_or_else(|e| panic!("{family} {} source {i}: {e}", s.name));
                if got[0] == s.expected[i] {
                    same += 1;
                } else {
                    failures.push(format!("{family} {} source {i} alone", s.name));
                }
            }
            println!(
                "{family:7} {:14} one by one: {same}/{} identical",
                s.name,
                fx.sources.len()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The free-running settings are the model's own generation_config.json plus num_beams and
/// max_new_tokens: reading the model directory must give the same parameters.
#[test]
fn model_dir_config_reproduces_free_settings() {
    for family in FAMILIES {
        let fx = load_fixture(family);
        let m = model(family);
        for s in fx.settings.iter().filter(|s| s.name.ends_with("_free")) {
            let mut cfg = GenerationConfig::from_model_dir(&fixture_dir(family)).expect("config");
            cfg.num_beams = s.cfg.num_beams;
            cfg.max_new_tokens = s.cfg.max_new_tokens;
            let a = cfg.resolve(m.vocab_size()).expect("resolve");
            let b = s.cfg.resolve(m.vocab_size()).expect("resolve");
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{family} {}", s.name);
        }
    }
}
