//! Loading weights from local model directories: safetensors (f32/f16/bf16, sharded),
//! pytorch_model.bin in the zip and the legacy (pre-1.6) formats, and bad inputs that must give clear errors, not panics.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use tomtat::hub::{self, HubError, ModelDir};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hub");

/// A local model dir with a T5 config and tokenizer, weights added by the test.
fn model_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("config.json"),
        r#"{"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}"#,
    )
    .unwrap();
    std::fs::write(d.path().join("spiece.model"), b"not read here").unwrap();
    d
}

fn write_st(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dt, s, d)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*dt, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

fn values(dir: &ModelDir, name: &str) -> Vec<f32> {
    let vb = hub::load_weights(dir, DType::F32, &Device::Cpu).unwrap();
    let t = vb.get_unchecked(name).unwrap();
    assert_eq!(t.dtype(), DType::F32);
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn half_precision_safetensors_load_as_f32() {
    let d = model_dir();
    let a = [0.5f32, -1.25, 3.0, 65504.0];
    let b = [1.0f32, -2.0, 0.0078125];
    // Saved by candle itself in half precision, as a converted checkpoint would be.
    let cpu = Device::Cpu;
    let tensors: HashMap<String, candle_core::Tensor> = [
        (
            "enc.a".to_string(),
            candle_core::Tensor::new(&a, &cpu)
                .unwrap()
                .reshape((2, 2))
                .unwrap()
                .to_dtype(DType::F16)
                .unwrap(),
        ),
        (
            "enc.b".to_string(),
            candle_core::Tensor::new(&b, &cpu)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    candle_core::safetensors::save(&tensors, d.path().join("model.safetensors")).unwrap();
    let header = std::fs::read(d.path().join("model.safetensors")).unwrap();
    let header = String::from_utf8_lossy(&header[..header.len().min(200)]);
    assert!(
        header.contains("F16") && header.contains("BF16"),
        "{header}"
    );
    let dir = ModelDir::open_local(d.path()).unwrap();
    assert_eq!(values(&dir, "enc.a"), a.to_vec());
    assert_eq!(values(&dir, "enc.b"), b.to_vec());
    // Shape checks go through the VarBuilder as usual.
    let vb = hub::load_weights(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(vb.get((2, 2), "enc.a").is_ok());
    assert!(vb.get((4,), "enc.a").is_err());
    assert!(vb.get_unchecked("enc.missing").is_err());
}

#[test]
fn sharded_local_dir_and_missing_shard() {
    let d = model_dir();
    let one = |v: f32| v.to_le_bytes().to_vec();
    write_st(
        &d.path().join("s1.safetensors"),
        &[("x", safetensors::Dtype::F32, vec![1], one(1.5))],
    );
    write_st(
        &d.path().join("s2.safetensors"),
        &[("y", safetensors::Dtype::F32, vec![1], one(-2.5))],
    );
    std::fs::write(
        d.path().join("model.safetensors.index.json"),
        r#"{"metadata":{},"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}}"#,
    )
    .unwrap();
    let dir = ModelDir::open_local(d.path()).unwrap();
    assert_eq!(values(&dir, "x"), vec![1.5]);
    assert_eq!(values(&dir, "y"), vec![-2.5]);
    std::fs::remove_file(d.path().join("s2.safetensors")).unwrap();
    let msg = ModelDir::open_local(d.path()).unwrap_err().to_string();
    assert!(msg.contains("s2.safetensors"), "{msg}");
}

#[test]
fn truncated_safetensors_is_an_error_naming_the_file() {
    let d = model_dir();
    let p = d.path().join("model.safetensors");
    let data: Vec<u8> = (0..64u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    write_st(&p, &[("w", safetensors::Dtype::F32, vec![8, 8], data)]);
    let full = std::fs::read(&p).unwrap();
    for cut in [3, 8, 40, full.len() - 4] {
        std::fs::write(&p, &full[..cut]).unwrap();
        let dir = ModelDir::open_local(d.path()).unwrap();
        let e = hub::load_weights(&dir, DType::F32, &Device::Cpu)
            .err()
            .expect("truncated file loaded");
        let msg = e.to_string();
        assert!(matches!(e, HubError::Weights { .. }), "{msg}");
        assert!(msg.contains("model.safetensors"), "{msg}");
    }
    // Random bytes: also an error.
    std::fs::write(&p, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    let dir = ModelDir::open_local(d.path()).unwrap();
    assert!(hub::load_weights(&dir, DType::F32, &Device::Cpu).is_err());
}

#[test]
fn zip_pytorch_bin_loads_with_dtype_conversion_and_strides() {
    let d = model_dir();
    std::fs::copy(
        Path::new(FIXTURES).join("pytorch_model.bin"),
        d.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let dir = ModelDir::open_local(d.path()).unwrap();
    assert_fixture_values(&dir);
}

/// The tensors both PyTorch fixtures hold (scripts/make_hub_fixtures.py): f32, f16 and bf16
/// values, and a transposed (column-major) view.
fn assert_fixture_values(dir: &ModelDir) {
    // Values are those scripts/make_hub_fixtures.py writes.
    assert_eq!(
        values(dir, "model.a.weight"),
        (0..6).map(|i| i as f32).collect::<Vec<_>>()
    );
    assert_eq!(values(dir, "model.b.bias"), vec![0.0, 0.5, 1.0, 1.5]);
    assert_eq!(values(dir, "model.c.weight"), vec![0.0, -1.0, -2.0]);
    // t = arange(6).view(3, 2).T  ->  t[i][j] = 2 * j + i
    let vb = hub::load_weights(dir, DType::F32, &Device::Cpu).unwrap();
    let t = vb.get((2, 3), "model.t.weight").unwrap();
    assert_eq!(
        t.to_vec2::<f32>().unwrap(),
        vec![vec![0.0, 2.0, 4.0], vec![1.0, 3.0, 5.0]]
    );
}

#[test]
fn legacy_pytorch_bin_loads_like_the_zip_one() {
    let d = model_dir();
    std::fs::copy(
        Path::new(FIXTURES).join("legacy_pytorch_model.bin"),
        d.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let dir = ModelDir::open_local(d.path()).unwrap();
    assert_fixture_values(&dir);
    let vb = hub::load_weights(&dir, DType::F32, &Device::Cpu).unwrap();
    // tied: two names, one storage
    let shared: Vec<f32> = (0..8).map(|i| i as f32 / 4.0).collect();
    assert_eq!(values(&dir, "model.shared.weight"), shared);
    assert_eq!(values(&dir, "lm_head.weight"), shared);
    // a slice at storage offset 4
    assert_eq!(values(&dir, "model.row.weight"), vec![4.0, 5.0, 6.0]);
    let ids = vb.get_unchecked_dtype("model.ids", DType::I64).unwrap();
    assert_eq!(ids.to_vec1::<i64>().unwrap(), vec![0, 1, 2]);
    // _metadata is not a tensor
    assert!(!vb.contains_tensor("_metadata"));
}

#[test]
fn truncated_or_corrupt_pytorch_bins_are_clear_errors() {
    let d = model_dir();
    let p = d.path().join("pytorch_model.bin");
    let dir = || ModelDir::open_local(d.path()).unwrap();
    for fixture in ["pytorch_model.bin", "legacy_pytorch_model.bin"] {
        let good = std::fs::read(Path::new(FIXTURES).join(fixture)).unwrap();
        for cut in [
            0,
            3,
            14,
            40,
            100,
            good.len() / 2,
            good.len() - 10,
            good.len() - 1,
        ] {
            std::fs::write(&p, &good[..cut]).unwrap();
            let e = hub::load_weights(&dir(), DType::F32, &Device::Cpu);
            let msg = e.err().expect("corrupt file loaded").to_string();
            assert!(
                msg.contains("pytorch_model.bin"),
                "{fixture} cut {cut}: {msg}"
            );
        }
    }
    // a legacy file whose storage data was overwritten with garbage counts
    let mut bad = std::fs::read(Path::new(FIXTURES).join("legacy_pytorch_model.bin")).unwrap();
    let n = bad.len();
    bad[n - 200..].fill(0xff);
    std::fs::write(&p, &bad).unwrap();
    let e = hub::load_weights(&dir(), DType::F32, &Device::Cpu);
    let msg = e.err().expect("corrupt file loaded").to_string();
    assert!(msg.contains("legacy") && msg.contains("storage"), "{msg}");
}

#[test]
fn missing_files_in_a_local_dir() {
    let d = tempfile::tempdir().unwrap();
    let msg = ModelDir::open_local(d.path()).unwrap_err().to_string();
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::write(d.path().join("config.json"), r#"{"model_type": "marian"}"#).unwrap();
    let msg = ModelDir::open_local(d.path()).unwrap_err().to_string();
    assert!(
        msg.contains("source.spm") && msg.contains("marian"),
        "{msg}"
    );
    std::fs::write(d.path().join("tokenizer.json"), "{}").unwrap();
    let msg = ModelDir::open_local(d.path()).unwrap_err().to_string();
    assert!(msg.contains("no usable weights"), "{msg}");
    std::fs::write(d.path().join("config.json"), "{ broken").unwrap();
    let msg = ModelDir::open_local(d.path()).unwrap_err().to_string();
    assert!(msg.contains("config.json") && msg.contains("JSON"), "{msg}");
    // The same dir through resolve(): a spec naming an existing directory.
    let msg = hub::resolve(d.path().to_str().unwrap(), &hub::HubOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("config.json"), "{msg}");
}
