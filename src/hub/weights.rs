//! Weights into a candle `VarBuilder`: safetensors (single or sharded, read tensor by tensor) or a
//! `pytorch_model.bin` (zip format, or the legacy pre-1.6 pickle format: `legacy_pth`). Every file is checked before candle sees it, so a
//! truncated or corrupt file is an error naming the file, never a panic.

use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use super::{legacy_pth, HubError, ModelDir, WeightFiles};

/// A `VarBuilder` over the model's weights. Tensors are converted to `dtype` on load, so
/// f16/bf16 checkpoints load as f32 on CPU.
pub fn load_weights(
    dir: &ModelDir,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, HubError> {
    let backend: Box<dyn SimpleBackend> = match &dir.files.weights {
        WeightFiles::Safetensors(p) => {
            validate_safetensors(p)?;
            Box::new(Lazy(ReadSafetensors::open(&[p.as_path()])?))
        }
        WeightFiles::ShardedSafetensors { index: _, shards } => {
            for s in shards {
                validate_safetensors(s)?;
            }
            let paths: Vec<&Path> = shards.iter().map(|p| p.as_path()).collect();
            Box::new(Lazy(ReadSafetensors::open(&paths)?))
        }
        WeightFiles::PytorchBin(p) => open_pth(p)?,
    };
    Ok(VarBuilder::from_backend(backend, dtype, device.clone()))
}

/// Safetensors files read one tensor at a time with positioned reads.
///
/// Why not mmap: every mapped page a load touches stays in the process's resident set until
/// the map goes away, so an mmap loader peaks at file size + converted (packed) weights. Read
/// into a buffer, converted and dropped, a tensor costs its own size only while it is made.
struct ReadSafetensors {
    files: Vec<std::fs::File>,
    /// name -> (file index, safetensors dtype, shape, absolute byte range)
    index: std::collections::HashMap<String, (usize, safetensors::Dtype, Vec<usize>, u64, u64)>,
}

impl ReadSafetensors {
    /// `paths` were checked by [`validate_safetensors`].
    fn open(paths: &[&Path]) -> Result<Self, HubError> {
        let mut files = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let bad = |detail: String| HubError::Weights {
                file: path.to_path_buf(),
                detail,
            };
            let mut f = std::fs::File::open(path).map_err(|e| HubError::io(path, e))?;
            let mut n = [0u8; 8];
            f.read_exact(&mut n).map_err(|e| HubError::io(path, e))?;
            let header_len = u64::from_le_bytes(n);
            let mut header = vec![0u8; header_len as usize];
            f.read_exact(&mut header)
                .map_err(|e| HubError::io(path, e))?;
            let meta: safetensors::tensor::Metadata = serde_json::from_slice(&header)
                .map_err(|e| bad(format!("safetensors header: {e}")))?;
            let data_start = 8 + header_len;
            for (name, info) in meta.tensors() {
                let (a, b) = info.data_offsets;
                index.insert(
                    name,
                    (
                        i,
                        info.dtype,
                        info.shape.clone(),
                        data_start + a as u64,
                        data_start + b as u64,
                    ),
                );
            }
            files.push(f);
        }
        Ok(Self { files, index })
    }

    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        use std::os::unix::fs::FileExt;
        let Some((file, dtype, shape, start, end)) = self.index.get(name) else {
            candle_core::bail!("cannot find tensor {name}");
        };
        let nbytes = (end - start) as usize;
        if *dtype == safetensors::Dtype::F32
            && nbytes.is_multiple_of(4)
            && cfg!(target_endian = "little")
        {
            // straight into the tensor's own buffer: no second copy of big matrices
            let mut data = vec![0f32; nbytes / 4];
            // SAFETY: any byte pattern is a valid f32; the slice covers exactly `data`
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr() as *mut u8, nbytes) };
            self.files[*file].read_exact_at(bytes, *start)?;
            return candle_core::Tensor::from_vec(data, shape.as_slice(), dev);
        }
        let mut buf = vec![0u8; nbytes];
        self.files[*file].read_exact_at(&mut buf, *start)?;
        use safetensors::Dtype as S;
        let dt = match dtype {
            S::F64 => DType::F64,
            S::F32 => DType::F32,
            S::F16 => DType::F16,
            S::BF16 => DType::BF16,
            S::I64 => DType::I64,
            S::U32 => DType::U32,
            S::U8 => DType::U8,
            other => candle_core::bail!("tensor {name}: dtype {other:?} is not supported"),
        };
        candle_core::Tensor::from_raw_buffer(&buf, dt, shape, dev)
    }
}

impl LazyTensors for ReadSafetensors {
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<candle_core::Tensor> {
        ReadSafetensors::load(self, name, dev)
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// A checkpoint whose tensors are read from disk when asked for.
pub(crate) trait LazyTensors: Send + Sync {
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<candle_core::Tensor>;
    fn contains(&self, name: &str) -> bool;
}

/// A [`LazyTensors`] as candle's backend: dtype conversion and the shape check.
pub(crate) struct Lazy<T>(pub T);

impl<T: LazyTensors> SimpleBackend for Lazy<T> {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        let t = self.0.load(name, dev)?.to_dtype(dtype)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            });
        }
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        self.0.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// Checks a safetensors file: header length, JSON header, every tensor's dtype, shape and
/// offsets, and that the data section is exactly as long as the header says (so a
/// truncated download is caught).
pub fn validate_safetensors(path: &Path) -> Result<(), HubError> {
    let bad = |detail: String| HubError::Weights {
        file: path.to_path_buf(),
        detail,
    };
    let mut f = std::fs::File::open(path).map_err(|e| HubError::io(path, e))?;
    let len = f.metadata().map_err(|e| HubError::io(path, e))?.len();
    if len < 8 {
        return Err(bad(format!(
            "truncated safetensors file: {len} bytes, not even the 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| HubError::io(path, e))?;
    let header_len = u64::from_le_bytes(n);
    // safetensors caps headers at 100 MB; anything bigger is garbage, not a header.
    if header_len > 100_000_000 || header_len > len - 8 {
        return Err(bad(format!(
            "not a safetensors file or truncated: header length {header_len} but the file \
             has {len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)
        .map_err(|e| HubError::io(path, e))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("safetensors header is not valid JSON: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad("safetensors header is not a JSON object".into()))?;
    let data_len = len - 8 - header_len;
    let mut spans: Vec<(u64, u64, &str)> = Vec::new();
    for (name, info) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad(format!("tensor {name}: no dtype")))?;
        let elem = dtype_size(dtype).ok_or_else(|| {
            bad(format!(
                "tensor {name}: unsupported dtype {dtype} (supported: F64, F32, F16, BF16, \
                 I64, I32, I16, U32, U8, F8_E4M3)"
            ))
        })?;
        let shape: Vec<u64> = info
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .ok_or_else(|| bad(format!("tensor {name}: bad shape")))?;
        let offs: Vec<u64> = info
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .ok_or_else(|| bad(format!("tensor {name}: bad data_offsets")))?;
        let [start, end] = offs[..] else {
            return Err(bad(format!("tensor {name}: data_offsets needs 2 numbers")));
        };
        let numel = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor {name}: shape {shape:?} overflows")))?;
        let nbytes = numel
            .checked_mul(elem)
            .ok_or_else(|| bad(format!("tensor {name}: shape {shape:?} overflows")))?;
        if end < start || end - start != nbytes {
            return Err(bad(format!(
                "tensor {name}: data_offsets [{start}, {end}] do not match shape {shape:?} \
                 of {dtype}"
            )));
        }
        if end > data_len {
            return Err(bad(format!(
                "truncated: tensor {name} ends at byte {end} of the data section but the file \
                 only has {data_len} data bytes ({len} in all)"
            )));
        }
        spans.push((start, end, name));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(format!("tensors {} and {} overlap", w[0].2, w[1].2)));
        }
    }
    Ok(())
}

/// Bytes per element of a safetensors dtype that candle can load.
fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" => 2,
        "U8" | "F8_E4M3" => 1,
        _ => return None,
    })
}

/// A PyTorch checkpoint, zip format or legacy (pre-1.6), its tensor table read up front
/// (data stays on disk until a tensor is asked for).
fn open_pth(path: &Path) -> Result<Box<dyn SimpleBackend>, HubError> {
    let bad = |detail: String| HubError::Weights {
        file: path.to_path_buf(),
        detail,
    };
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).map_err(|e| HubError::io(path, e))?;
    let got = read_up_to(&mut f, &mut head).map_err(|e| HubError::io(path, e))?;
    if legacy_pth::is_legacy(&head[..got]) {
        return Ok(Box::new(Lazy(
            legacy_pth::LegacyPth::open(path)
                .map_err(|e| bad(format!("legacy PyTorch checkpoint: {e}")))?,
        )));
    }
    if got < 4 || &head[..4] != b"PK\x03\x04" {
        return Err(bad(
            "not a PyTorch checkpoint (neither the zip nor the legacy pickle format; \
             truncated or corrupt?)"
                .into(),
        ));
    }
    // The pickle reader is third-party code parsing untrusted bytes: contain any panic.
    let p = path.to_path_buf();
    let res = std::panic::catch_unwind(move || candle_core::pickle::PthTensors::new(&p, None));
    let pth = match res {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(bad(format!("cannot read PyTorch checkpoint: {e}"))),
        Err(_) => {
            return Err(bad(
                "PyTorch checkpoint reader crashed (corrupt file?)".into()
            ))
        }
    };
    if pth.tensor_infos().is_empty() {
        return Err(bad(
            "no tensors found (expected a state dict saved with torch.save)".into(),
        ));
    }
    Ok(Box::new(pth))
}

/// `read` until `buf` is full or the file ends; the byte count.
fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn write_st(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, dt, shape, data)| {
                (
                    n.to_string(),
                    safetensors::tensor::TensorView::new(*dt, shape.clone(), data).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
    }

    #[test]
    fn validates_good_and_rejects_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.safetensors");
        let data: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        write_st(&p, &[("a", safetensors::Dtype::F32, vec![2, 3], data)]);
        validate_safetensors(&p).unwrap();
        let full = std::fs::read(&p).unwrap();
        for cut in [0, 5, 8, 12, full.len() - 1] {
            std::fs::write(&p, &full[..cut]).unwrap();
            let e = validate_safetensors(&p).unwrap_err().to_string();
            assert!(e.contains("model.safetensors"), "{e}");
            assert!(
                e.contains("truncated") || e.contains("JSON"),
                "cut {cut}: {e}"
            );
        }
        let mut garbage = full.clone();
        garbage[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&p, &garbage).unwrap();
        assert!(validate_safetensors(&p).is_err());
    }

    #[test]
    fn rejects_unknown_dtype_and_bad_offsets() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.safetensors");
        let write_header = |h: &str, data_len: usize| {
            let mut b = (h.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(h.as_bytes());
            b.extend(std::iter::repeat_n(0u8, data_len));
            std::fs::write(&p, b).unwrap();
        };
        write_header(
            r#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
            8,
        );
        let e = validate_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains("C64"), "{e}");
        write_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            8,
        );
        let e = validate_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains("data_offsets"), "{e}");
        write_header(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            12,
        );
        let e = validate_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains("overlap"), "{e}");
    }
}
