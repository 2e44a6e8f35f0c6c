//! Search tests against the mock model: batched generate() vs straightforward reference
//! implementations (greedy one source at a time; beam search as a plain-Vec transcription of
//! transformers' `_beam_search` over the whole batch, which keeps finished sources in the
//! batch until the global stop, as transformers does).

use candle_core::Device;

use super::processors::{log_softmax_in_place, Scratch};
use super::*;
use crate::testkit::mock::{mix, MockModel};

const EOS: u32 = 2;
const PAD: u32 = 1;
const START: u32 = 1;

fn base_cfg() -> GenerationConfig {
    GenerationConfig {
        eos_token_id: Some(TokenIds::One(EOS)),
        pad_token_id: Some(PAD),
        decoder_start_token_id: Some(START),
        ..Default::default()
    }
}

fn sources(n: usize, seed: u64, vocab: u32) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            let h = mix(seed ^ i as u64);
            let len = 1 + (h % 13) as usize;
            (0..len)
                .map(|j| 3 + (mix(h ^ j as u64) % (vocab as u64 - 3)) as u32)
                .collect()
        })
        .collect()
}

fn ref_greedy(model: &MockModel, srcs: &[Vec<u32>], r: &Resolved) -> Vec<Vec<u32>> {
    let mut sc = Scratch::default();
    srcs.iter()
        .map(|src| {
            let mut hist = vec![r.decoder_start];
            loop {
                let mut s = (model.logits)(src, &hist);
                r.processors.apply(&hist, &mut s, &mut sc);
                let tok = argmax(&s);
                hist.push(tok);
                if r.eos.contains(&tok) || hist.len() >= r.max_length {
                    break;
                }
            }
            hist[1..].to_vec()
        })
        .collect()
}

/// Stable descending order of `vals`: indices of the `k` best, first index first on ties.
fn topk_idx(vals: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..vals.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (vals[a], vals[b]);
        if ranks_above(x, y) {
            std::cmp::Ordering::Less
        } else if ranks_above(y, x) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    idx.truncate(k);
    idx
}

fn ref_beam(model: &MockModel, srcs: &[Vec<u32>], r: &Resolved) -> Vec<Vec<u32>> {
    let (bsz, k, v) = (srcs.len(), r.num_beams, model.vocab);
    let lp = r.length_penalty;
    let n_keep = 2usize.max(1 + r.eos.len()) * k;
    let mut run_seq = vec![vec![vec![r.decoder_start]; k]; bsz];
    let mut run_score = vec![vec![-1e9f32; k]; bsz];
    for s in &mut run_score {
        s[0] = 0.0;
    }
    let mut seqs = vec![vec![vec![r.decoder_start]; k]; bsz];
    let mut beam_scores = vec![vec![-1e9f32; k]; bsz];
    let mut finished = vec![vec![false; k]; bsz];
    let mut unsat = vec![true; bsz];
    let mut cur_len = 1usize;
    let mut sc = Scratch::default();
    loop {
        let mut all_hits = true;
        for b in 0..bsz {
            let mut acc = Vec::with_capacity(k * v);
            for beam in 0..k {
                let mut s = (model.logits)(&srcs[b], &run_seq[b][beam]);
                log_softmax_in_place(&mut s);
                r.processors.apply(&run_seq[b][beam], &mut s, &mut sc);
                acc.extend(s.iter().map(|x| x + run_score[b][beam]));
            }
            let top = topk_idx(&acc, n_keep);
            let vals: Vec<f32> = top.iter().map(|&i| acc[i]).collect();
            let cand_seq: Vec<Vec<u32>> = top
                .iter()
                .map(|&i| {
                    let mut s = run_seq[b][i / v].clone();
                    s.push((i % v) as u32);
                    s
                })
                .collect();
            let hits: Vec<bool> = top
                .iter()
                .map(|&i| cur_len + 1 >= r.max_length || r.eos.contains(&((i % v) as u32)))
                .collect();
            all_hits &= hits.iter().all(|&h| h);
            let keys: Vec<f32> = vals
                .iter()
                .zip(&hits)
                .map(|(&x, &h)| x + if h { -1e9 } else { 0.0 })
                .collect();
            let next = topk_idx(&keys, k);
            let new_run_seq: Vec<Vec<u32>> = next.iter().map(|&i| cand_seq[i].clone()).collect();
            let new_run_score: Vec<f32> = next.iter().map(|&i| keys[i]).collect();

            let full = r.early_stopping == EarlyStopping::True && finished[b].iter().all(|&f| f);
            let denom = (cur_len as f64).powf(lp) as f32;
            let mut m_scores = beam_scores[b].clone();
            let mut m_seqs = seqs[b].clone();
            let mut m_fin = finished[b].clone();
            for i in 0..n_keep {
                let did = hits[i] && i < k;
                let mut s = vals[i] / denom;
                s += if full { -1e9 } else { 0.0 };
                s += if unsat[b] { 0.0 } else { -1e9 };
                s += if did { 0.0 } else { -1e9 };
                m_scores.push(s);
                m_seqs.push(cand_seq[i].clone());
                m_fin.push(did);
            }
            let best = topk_idx(&m_scores, k);
            seqs[b] = best.iter().map(|&i| m_seqs[i].clone()).collect();
            beam_scores[b] = best.iter().map(|&i| m_scores[i]).collect();
            finished[b] = best.iter().map(|&i| m_fin[i]).collect();
            run_seq[b] = new_run_seq;
            run_score[b] = new_run_score;
        }
        cur_len += 1;
        for b in 0..bsz {
            let hyp = if r.early_stopping == EarlyStopping::Never && lp > 0.0 {
                r.max_length - 1
            } else {
                cur_len - 1
            };
            let best = run_score[b][0] / (hyp as f64).powf(lp) as f32;
            let worst = beam_scores[b].iter().copied().fold(f32::INFINITY, f32::min);
            unsat[b] &= finished[b]
                .iter()
                .any(|&f| best > if f { worst } else { -1e9 });
        }
        let improvement = unsat.iter().any(|&u| u);
        let open = !(finished.iter().all(|f| f.iter().all(|&x| x))
            && r.early_stopping == EarlyStopping::True);
        if !(improvement && open && !all_hits) {
            break;
        }
    }
    seqs.iter().map(|s| s[0][1..].to_vec()).collect()
}

fn cfg_variants() -> Vec<(&'static str, GenerationConfig)> {
    let b = base_cfg();
    let with = |f: &dyn Fn(&mut GenerationConfig)| {
        let mut c = b.clone();
        f(&mut c);
        c
    };
    vec![
        ("default", with(&|c| c.max_new_tokens = Some(25))),
        (
            "forced length",
            with(&|c| {
                c.min_new_tokens = Some(12);
                c.max_new_tokens = Some(12);
            }),
        ),
        (
            "lp2 es-true",
            with(&|c| {
                c.length_penalty = Some(2.0);
                c.early_stopping = Some(EarlyStopping::True);
                c.max_length = Some(30);
            }),
        ),
        (
            "lp0.6 never",
            with(&|c| {
                c.length_penalty = Some(0.6);
                c.early_stopping = Some(EarlyStopping::Never);
                c.max_new_tokens = Some(20);
            }),
        ),
        (
            "lp-0.5 never",
            with(&|c| {
                c.length_penalty = Some(-0.5);
                c.early_stopping = Some(EarlyStopping::Never);
                c.max_new_tokens = Some(20);
            }),
        ),
        (
            "lp0 processors",
            with(&|c| {
                c.length_penalty = Some(0.0);
                c.no_repeat_ngram_size = Some(2);
                c.repetition_penalty = Some(1.3);
                c.bad_words_ids = Some(vec![vec![PAD], vec![5, 6]]);
                c.forced_bos_token_id = Some(4);
                c.forced_eos_token_id = Some(TokenIds::One(EOS));
                c.min_length = Some(4);
                c.max_length = Some(18);
            }),
        ),
        (
            "two eos",
            with(&|c| {
                c.eos_token_id = Some(TokenIds::Many(vec![EOS, 7]));
                c.max_new_tokens = Some(22);
            }),
        ),
    ]
}

#[test]
fn greedy_matches_reference_and_batch_equals_single() {
    let model = MockModel::hashed(40, PAD, EOS, 11);
    let srcs = sources(23, 5, 40);
    for (name, cfg) in cfg_variants() {
        let r = cfg.resolve(40).unwrap();
        let want = ref_greedy(&model, &srcs, &r);
        let got = generate(&model, &srcs, &cfg, &Device::Cpu).unwrap();
        assert_eq!(got, want, "{name}");
        for (i, s) in srcs.iter().enumerate() {
            let one = generate(&model, std::slice::from_ref(s), &cfg, &Device::Cpu).unwrap();
            assert_eq!(one[0], want[i], "{name} source {i}");
        }
        assert!(want.iter().all(|w| !w.is_empty() && w.len() < r.max_length));
    }
}

#[test]
fn beam_matches_transformers_transcription() {
    let mut differs_from_greedy = 0;
    for (seed, vocab) in [(3u64, 40usize), (17, 25), (99, 64)] {
        let model = MockModel::hashed(vocab, PAD, EOS, seed);
        let srcs = sources(19, seed, vocab as u32);
        for (name, cfg) in cfg_variants() {
            for k in [2usize, 3, 4] {
                let cfg = GenerationConfig {
                    num_beams: Some(k),
                    ..cfg.clone()
                };
                let r = cfg.resolve(vocab).unwrap();
                let want = ref_beam(&model, &srcs, &r);
                let got = generate(&model, &srcs, &cfg, &Device::Cpu).unwrap();
                assert_eq!(got, want, "{name} beams {k} seed {seed}");
                let g = GenerationConfig {
                    num_beams: Some(1),
                    ..cfg.clone()
                };
                let greedy = generate(&model, &srcs, &g, &Device::Cpu).unwrap();
                differs_from_greedy += got.iter().zip(&greedy).filter(|(a, b)| a != b).count();
            }
        }
    }
    // The mock is not degenerate: beam search must find other sequences than greedy.
    assert!(differs_from_greedy > 50, "{differs_from_greedy}");
}

#[test]
fn beam_batch_equals_one_by_one() {
    let model = MockModel::hashed(50, PAD, EOS, 7);
    let srcs = sources(16, 8, 50);
    for (name, cfg) in cfg_variants() {
        let cfg = GenerationConfig {
            num_beams: Some(4),
            ..cfg
        };
        let batch = generate(&model, &srcs, &cfg, &Device::Cpu).unwrap();
        for (i, s) in srcs.iter().enumerate() {
            let one = generate(&model, std::slice::from_ref(s), &cfg, &Device::Cpu).unwrap();
            assert_eq!(one[0], batch[i], "{name} source {i}");
        }
    }
}

#[test]
fn finished_sources_leave_the_batch() {
    let model = MockModel::hashed(40, PAD, EOS, 1);
    let srcs = sources(12, 2, 40);
    for k in [1usize, 4] {
        let cfg = GenerationConfig {
            num_beams: Some(k),
            max_new_tokens: Some(30),
            ..base_cfg()
        };
        model.step_rows.lock().unwrap().clear();
        let out = generate(&model, &srcs, &cfg, &Device::Cpu).unwrap();
        let rows = model.step_rows.lock().unwrap().clone();
        // the first step runs one row per source (its beams are still identical)
        assert_eq!(rows[0], 12);
        let beams = &rows[1..];
        assert!(beams
            .first()
            .is_some_and(|&n| n <= 12 * k && n > 12 * (k - 1)));
        assert!(beams.windows(2).all(|w| w[1] <= w[0]), "{rows:?}");
        assert!(beams.iter().all(|&n| n % k == 0));
        assert!(*rows.last().unwrap() < 12 * k, "{rows:?}");
        // Greedy: every step feeds exactly the rows of unfinished sources.
        if k == 1 {
            let total: usize = rows.iter().sum();
            assert_eq!(total, out.iter().map(Vec::len).sum::<usize>());
        }
    }
}

/// History -> (token, logit) entries.
type Table = Vec<(Vec<u32>, Vec<(u32, f32)>)>;

/// Logits from a table keyed by decoder history; everything else strongly prefers EOS.
fn table_model(vocab: usize, table: Table) -> MockModel {
    MockModel::new(
        vocab,
        PAD,
        Box::new(move |_src, hist| {
            let mut out = vec![-20.0f32; vocab];
            match table.iter().find(|(h, _)| h == hist) {
                Some((_, entries)) => {
                    for &(t, x) in entries {
                        out[t as usize] = x;
                    }
                }
                None => out[EOS as usize] = 0.0,
            }
            out
        }),
    )
}

fn probs(p: &[(u32, f32)]) -> Vec<(u32, f32)> {
    p.iter().map(|&(t, x)| (t, x.ln())).collect()
}

#[test]
fn beam_finds_the_better_sequence_greedy_misses() {
    // greedy: 3 (0.5) then 5/6 (0.4 each) -> 0.2; beam: 4 (0.4) then 7 (0.9) -> 0.36.
    let model = table_model(
        10,
        vec![
            (vec![START], probs(&[(3, 0.5), (4, 0.4), (9, 0.1)])),
            (vec![START, 3], probs(&[(5, 0.4), (6, 0.4), (9, 0.2)])),
            (vec![START, 4], probs(&[(7, 0.9), (9, 0.1)])),
        ],
    );
    let src = vec![vec![8u32]];
    let greedy = generate(&model, &src, &base_cfg(), &Device::Cpu).unwrap();
    assert_eq!(greedy[0], vec![3, 5, EOS]);
    let cfg = GenerationConfig {
        num_beams: Some(2),
        ..base_cfg()
    };
    let beam = generate(&model, &src, &cfg, &Device::Cpu).unwrap();
    assert_eq!(beam[0], vec![4, 7, EOS]);
}

#[test]
fn length_penalty_trades_length_for_probability() {
    // Short: 3 EOS with p = 0.5 * 0.9 (2 tokens). Long: 4 5 6 EOS with p = 0.45 * 0.9^3
    // (4 tokens). lp 0: sum of log-probs -> short. lp 2: divided by len^2 -> long.
    let model = table_model(
        10,
        vec![
            (vec![START], probs(&[(3, 0.5), (4, 0.45), (9, 0.05)])),
            (vec![START, 3], probs(&[(EOS, 0.9), (9, 0.1)])),
            (vec![START, 4], probs(&[(5, 0.9), (9, 0.1)])),
            (vec![START, 4, 5], probs(&[(6, 0.9), (9, 0.1)])),
            (vec![START, 4, 5, 6], probs(&[(EOS, 0.9), (9, 0.1)])),
        ],
    );
    let src = vec![vec![8u32]];
    let run = |lp: f64, es: EarlyStopping| {
        let cfg = GenerationConfig {
            num_beams: Some(2),
            length_penalty: Some(lp),
            early_stopping: Some(es),
            ..base_cfg()
        };
        generate(&model, &src, &cfg, &Device::Cpu).unwrap()[0].clone()
    };
    assert_eq!(run(0.0, EarlyStopping::Heuristic), vec![3, EOS]);
    assert_eq!(run(2.0, EarlyStopping::Heuristic), vec![4, 5, 6, EOS]);
    assert_eq!(run(2.0, EarlyStopping::Never), vec![4, 5, 6, EOS]);
    // early_stopping=true stops as soon as 2 hypotheses are finished: after step 3 (the
    // short one and a poor "3 9 EOS"), one step before the long one would finish.
    assert_eq!(run(2.0, EarlyStopping::True), vec![3, EOS]);
}

#[test]
fn max_length_ends_without_eos() {
    let model = table_model(10, vec![]);
    let cfg = GenerationConfig {
        bad_words_ids: Some(vec![vec![EOS]]),
        eos_token_id: Some(TokenIds::One(9)),
        max_new_tokens: Some(5),
        ..base_cfg()
    };
    // EOS (2) is not the EOS id here, so nothing stops the decoder before max length.
    for k in [1, 3] {
        let cfg = GenerationConfig {
            num_beams: Some(k),
            ..cfg.clone()
        };
        let out = generate(&model, &[vec![4u32]], &cfg, &Device::Cpu).unwrap();
        assert_eq!(out[0].len(), 5, "beams {k}: {:?}", out[0]);
    }
}

#[test]
fn empty_batch_and_empty_source() {
    let model = MockModel::hashed(20, PAD, EOS, 0);
    assert!(generate(&model, &[], &base_cfg(), &Device::Cpu)
        .unwrap()
        .is_empty());
    assert!(matches!(
        generate(&model, &[vec![3], vec![]], &base_cfg(), &Device::Cpu),
        Err(GenerateError::Source { index: 1, .. })
    ));
}

/// transformers' own generate() on the same hashed mock (scripts/make_generate_mock_fixture.py
/// computes the mock's logits bit for bit like `MockModel::hashed`): ids must be identical,
/// for the whole batch and for each source alone.
#[test]
fn matches_transformers_on_the_hashed_mock() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/generate_mock_fixture.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let (mut total, mut same, mut failures) = (0, 0, Vec::new());
    for m in doc["models"].as_array().expect("models") {
        let seed = m["seed"].as_u64().expect("seed");
        let vocab = m["vocab"].as_u64().expect("vocab") as usize;
        let srcs: Vec<Vec<u32>> = serde_json::from_value(m["sources"].clone()).expect("sources");
        let model = MockModel::hashed(vocab, PAD, EOS, seed);
        for case in m["cases"].as_array().expect("cases") {
            let cfg: GenerationConfig =
                serde_json::from_value(case["params"].clone()).expect("params");
            let want: Vec<Vec<u32>> =
                serde_json::from_value(case["output_ids"].clone()).expect("ids");
            let got = generate(&model, &srcs, &cfg, &Device::Cpu).expect("generate");
            for (i, src) in srcs.iter().enumerate() {
                total += 1;
                let one = generate(&model, std::slice::from_ref(src), &cfg, &Device::Cpu)
                    .expect("generate one");
                if got[i] == want[i] && one[0] == want[i] {
                    same += 1;
                } else {
                    failures.push(format!(
                        "seed {seed} {} beams {}: source {i}\n  batch {:?}\n  alone {:?}\n  hf    {:?}",
                        case["name"], case["params"]["num_beams"], got[i], one[0], want[i]
                    ));
                }
            }
        }
    }
    println!("hashed mock vs transformers: {same}/{total} identical (batch and alone)");
    assert!(total > 1000);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Host-side cost of a search step at a realistic vocabulary size (mock logits are a
/// rotated table): `cargo test --lib bench_host_side -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_host_side() {
    let vocab = 60000usize;
    let table: Vec<f32> = (0..vocab as u64)
        .map(|v| ((mix(v) >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0)
        .collect();
    let model = MockModel::new(
        vocab,
        PAD,
        Box::new(move |src, hist| {
            let off = (mix(src[0] as u64 ^ hist.len() as u64 ^ *hist.last().unwrap() as u64)
                % vocab as u64) as usize;
            let mut v = Vec::with_capacity(vocab);
            v.extend_from_slice(&table[off..]);
            v.extend_from_slice(&table[..off]);
            v
        }),
    );
    let srcs = sources(64, 1, 1000);
    let t = std::time::Instant::now();
    for _ in 0..5 {
        let mut data = Vec::new();
        for r in 0..256u32 {
            data.extend((model.logits)(&[r], &[1, 2]));
        }
        let _ = candle_core::Tensor::from_vec(data, (256, vocab), &Device::Cpu).unwrap();
    }
    println!(
        "mock alone: {:.1} ms per 256-row step",
        t.elapsed().as_secs_f64() * 1000.0 / 5.0
    );
    for k in [1usize, 4] {
        let cfg = GenerationConfig {
            num_beams: Some(k),
            min_new_tokens: Some(20),
            max_new_tokens: Some(20),
            bad_words_ids: Some(vec![vec![PAD]]),
            ..base_cfg()
        };
        let t = std::time::Instant::now();
        generate(&model, &srcs, &cfg, &Device::Cpu).unwrap();
        println!(
            "k={k}: {:.1} ms per step (64 sources, vocab {vocab})",
            t.elapsed().as_secs_f64() * 1000.0 / 20.0
        );
    }
}

/// Device-side candidate selection (select.rs), forced on the CPU: the same ids as the host
/// path for every config variant and every case of the transformers mock fixture.
#[test]
fn device_selection_matches_host_path() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/generate_mock_fixture.json"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let mut runs: Vec<(MockModel, Vec<Vec<u32>>, GenerationConfig)> = Vec::new();
    for m in doc["models"].as_array().expect("models") {
        let seed = m["seed"].as_u64().expect("seed");
        let vocab = m["vocab"].as_u64().expect("vocab") as usize;
        let srcs: Vec<Vec<u32>> = serde_json::from_value(m["sources"].clone()).expect("sources");
        for case in m["cases"].as_array().expect("cases") {
            let cfg: GenerationConfig =
                serde_json::from_value(case["params"].clone()).expect("params");
            runs.push((MockModel::hashed(vocab, PAD, EOS, seed), srcs.clone(), cfg));
        }
    }
    for (_, c) in cfg_variants() {
        for beams in [1, 3, 4] {
            let mut c = c.clone();
            c.num_beams = Some(beams);
            runs.push((MockModel::hashed(40, PAD, EOS, 7), sources(9, 3, 40), c));
        }
    }
    let n = runs.len();
    for (model, srcs, cfg) in runs {
        let host = generate(&model, &srcs, &cfg, &Device::Cpu).expect("host");
        super::select::force_on_cpu(true);
        let dev = generate(&model, &srcs, &cfg, &Device::Cpu);
        super::select::force_on_cpu(false);
        assert_eq!(dev.expect("device"), host, "{cfg:?}");
    }
    assert!(n > 60, "{n} runs");
}
