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
use tomtat::device::DTypeArg;
use tomtat::generate::{generate, GenerationConfig};
use tomtat::model::{Seq2SeqModel, Transformer};
use tomtat::pipeline::engine::load_transformer;

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
    let arg = match dtype {
        DType::F16 => DTypeArg::F16,
        DType::BF16 => DTypeArg::Bf16,
        DType::F32 => DTypeArg::F32,
        other => panic!("no --dtype for {other:?}"),
    };
    load_transformer(&dir(family), arg, dev).unwrap_or_else(|e| panic!("{family} {dtype:?}: {e}"))
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

/// tomtat's own kernels (src/kernels/cuda.rs) against candle's ops / a host reference, f32, on
/// shapes with a tail, beams sharing sources, a padding bias, ties and a NaN row.
#[test]
fn own_kernels_match_candle_ops() {
    use candle_core::Tensor;
    use tomtat::kernels::cuda::{self, BiasStrides, KvStrides, Query};
    use tomtat::model::config::Activation;
    let Some(dev) = gpu() else { return };
    if dev.is_cpu() || !cuda::enabled() {
        eprintln!("gpu: own kernels not checked (cpu, or TOMTAT_CUDA_KERNELS=0)");
        return;
    }
    let diff = |a: &Tensor, b: &Tensor| max_abs(&(a - b).unwrap());
    // bias + activation
    let x = Tensor::randn(0f32, 2.0, (37, 300), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, 300, &dev).unwrap();
    for act in [
        None,
        Some(Activation::Gelu),
        Some(Activation::Relu),
        Some(Activation::Silu),
    ] {
        let got = cuda::bias_act(&x, &b, act)
            .unwrap()
            .expect("bias_act applies");
        let mut want = x.broadcast_add(&b).unwrap();
        if let Some(a) = act {
            want = tomtat::model::layers::activate(&want, a).unwrap();
        }
        let d = diff(&got, &want);
        println!("gpu: kernel bias_act {act:?} max|diff| {d:.2e}");
        assert!(d < 1e-5, "bias_act {act:?}: {d}");
    }
    // one-query attention: cross layout [sources, h, s, dh], beams per source (3: one row per
    // block; 2, 4, 8: a source's beams in one block), padding bias on source 0
    let (heads, s, dh) = (4usize, 37usize, 64usize);
    for (src, group) in [(3usize, 3usize), (3, 2), (2, 4), (2, 8)] {
        let rows = src * group;
        let q = Tensor::randn(0f32, 0.3, (rows, 1, heads * dh), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (src, heads, s, dh), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (src, heads, s, dh), &dev).unwrap();
        let mut mask = vec![0f32; src * s];
        mask[s - 5..s].fill(f32::MIN); // source 0: 5 padded keys
        let bias = Tensor::from_vec(mask, (src, 1, 1, s), &dev).unwrap();
        let kv = KvStrides {
            src: heads * s * dh,
            head: s * dh,
            key: dh,
        };
        let bs = BiasStrides {
            bias: &bias,
            src: s,
            head: 0,
        };
        let query = Query {
            q: &q,
            row: heads * dh,
            heads,
            dh,
        };
        let got = cuda::attend_one(query, &k, &v, s, group, kv, Some(bs))
            .unwrap()
            .expect("applies");
        let qh = q
            .reshape((src, group, heads, dh))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        let sc = qh
            .matmul(&k.t().unwrap())
            .unwrap()
            .broadcast_add(&bias)
            .unwrap();
        let p = candle_nn::ops::softmax_last_dim(&sc).unwrap();
        let want = p
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((rows, heads * dh))
            .unwrap();
        let d = diff(&got, &want);
        println!("gpu: kernel attend_one (cross, {group} beams, padding) max|diff| {d:.2e}");
        assert!(d < 1e-5, "attend_one cross: {d}");
    }
    // self-attention cache [max_len, rows, h, dh], keys 0..=pos
    let (max_len, pos, rows) = (20usize, 12usize, 5usize);
    let kc = Tensor::randn(0f32, 1.0, (max_len, rows, heads, dh), &dev).unwrap();
    let vc = Tensor::randn(0f32, 1.0, (max_len, rows, heads, dh), &dev).unwrap();
    // this step's fused projection [rows, 1, q | k | v]: k and v written at `pos` by
    // write_rows, q read in place
    let inner = heads * dh;
    let y = Tensor::randn(0f32, 0.3, (rows, 1, 3 * inner), &dev).unwrap();
    let at = pos * rows * inner;
    let others = |t: &Tensor| {
        let a = t.narrow(0, 0, pos).unwrap().flatten_all().unwrap();
        let b = t
            .narrow(0, pos + 1, max_len - pos - 1)
            .unwrap()
            .flatten_all()
            .unwrap();
        Tensor::cat(&[a, b], 0).unwrap()
    };
    let before = others(&kc);
    assert!(cuda::write_rows(&kc, at, &y, inner, 3 * inner, inner).unwrap());
    assert!(cuda::write_rows(&vc, at, &y, 2 * inner, 3 * inner, inner).unwrap());
    for (cache, third) in [(&kc, 1usize), (&vc, 2)] {
        let got = cache
            .narrow(0, pos, 1)
            .unwrap()
            .reshape((rows, inner))
            .unwrap();
        let want = y
            .narrow(2, third * inner, inner)
            .unwrap()
            .reshape((rows, inner))
            .unwrap();
        assert_eq!(diff(&got, &want), 0.0, "write_rows third {third}");
    }
    let q = y.narrow(2, 0, inner).unwrap().contiguous().unwrap();
    let kv = KvStrides {
        src: inner,
        head: dh,
        key: rows * inner,
    };
    let query = Query {
        q: &y,
        row: 3 * inner,
        heads,
        dh,
    };
    let got = cuda::attend_one(query, &kc, &vc, pos + 1, 1, kv, None)
        .unwrap()
        .expect("applies");
    assert_eq!(
        diff(&others(&kc), &before),
        0.0,
        "write_rows wrote outside its rows"
    );
    let view = |t: &Tensor| {
        t.narrow(0, 0, pos + 1)
            .unwrap()
            .permute((1, 2, 0, 3))
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let qh = q.reshape((rows, heads, 1, dh)).unwrap();
    let sc = qh.matmul(&view(&kc).t().unwrap()).unwrap();
    let p = candle_nn::ops::softmax_last_dim(&sc).unwrap();
    let want = p
        .matmul(&view(&vc))
        .unwrap()
        .reshape((rows, heads * dh))
        .unwrap();
    let d = diff(&got, &want);
    println!("gpu: kernel attend_one (self cache, fused q) max|diff| {d:.2e}; write_rows exact");
    assert!(d < 1e-5, "attend_one self: {d}");
    // post-norm residual: LayerNorm(a + b)
    let a = Tensor::randn(0f32, 1.0, (7, 1000), &dev).unwrap();
    let b2 = Tensor::randn(3f32, 2.0, (7, 1000), &dev).unwrap();
    let w = Tensor::randn(1f32, 0.2, 1000, &dev).unwrap();
    let beta = Tensor::randn(0f32, 0.2, 1000, &dev).unwrap();
    let got = cuda::add_layer_norm(&a, &b2, &w, &beta, 1e-5)
        .unwrap()
        .expect("applies");
    let want = candle_nn::ops::layer_norm(&(&a + &b2).unwrap(), &w, &beta, 1e-5).unwrap();
    let d = diff(&got, &want);
    println!("gpu: kernel add_layer_norm max|diff| {d:.2e}");
    assert!(d < 1e-4, "add_layer_norm: {d}");
    // top-n: values on a coarse grid (many ties), a masked token, per-row additions, a NaN row
    let (rows, vocab) = (6usize, 1000usize);
    let mut data: Vec<f32> = (0..rows * vocab)
        .map(|i| ((i * 7919) % 13) as f32 * 0.5)
        .collect();
    data[5 * vocab + 17] = f32::NAN;
    let scores = Tensor::from_vec(data.clone(), (rows, vocab), &dev).unwrap();
    let mut mrow = vec![0f32; vocab];
    mrow[3] = f32::NEG_INFINITY;
    let mask = Tensor::from_vec(mrow.clone(), (1, vocab), &dev).unwrap();
    let add_host: Vec<f32> = (0..rows).map(|r| r as f32 * -0.25).collect();
    let add = Tensor::from_slice(&add_host, (rows, 1), &dev).unwrap();
    for n in [1usize, 3, 8, 16] {
        let out = cuda::topk(&scores, Some(&mask), Some(&add), n)
            .unwrap()
            .expect("applies");
        for r in 0..rows {
            let o = &out[r * (2 * n + 1)..(r + 1) * (2 * n + 1)];
            assert_eq!(o[2 * n], u32::from(r == 5), "row {r}: NaN flag");
            if r == 5 {
                continue;
            }
            let mut want: Vec<(f32, u32)> = (0..vocab)
                .map(|i| ((data[r * vocab + i] + mrow[i]) + add_host[r], i as u32))
                .collect();
            want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let got: Vec<(f32, u32)> = (0..n).map(|j| (f32::from_bits(o[j]), o[n + j])).collect();
            assert_eq!(got, want[..n].to_vec(), "row {r}, n {n}");
        }
    }
    println!("gpu: kernel topk n 1/3/8/16 = host order (ties, mask, additions, NaN flag)");
}
