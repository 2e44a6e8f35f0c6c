//! PyTorch's legacy checkpoint format (`torch.save` before PyTorch 1.6, or later with
//! `_use_new_zipfile_serialization=False`): the format of many 2020 Hub repos'
//! `pytorch_model.bin` (opus-mt, distilbart).
//!
//! The file is five things back to back: a pickled magic number, a pickled protocol version,
//! a pickled `sys_info` dict, the pickled object (a state dict whose tensors point at storages
//! through persistent ids `('storage', StorageType, key, location, numel, view_metadata)`),
//! a pickled list of storage keys, then each storage in that order as an 8-byte
//! little-endian element count followed by its raw little-endian elements.
//!
//! Pickles are parsed with candle's pickle VM; the tensor table and storage offsets are read
//! up front and each tensor's bytes only when it is asked for (positioned reads, no mmap).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use super::weights::LazyTensors;

/// The magic number pickle: PROTO 2, LONG1 of 10 bytes (0x1950a86a20f9469cfc6c), STOP.
const MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// Whether `head` (the first bytes of a file) starts a legacy PyTorch checkpoint.
pub(crate) fn is_legacy(head: &[u8]) -> bool {
    head.starts_with(&MAGIC_PICKLE)
}

/// A storage type: element size, and the dtype candle loads it as (None: not loadable,
/// but its size still places the storages after it).
fn storage_type(class: &str) -> Option<(usize, Option<DType>)> {
    Some(match class {
        "FloatStorage" => (4, Some(DType::F32)),
        "DoubleStorage" => (8, Some(DType::F64)),
        "HalfStorage" => (2, Some(DType::F16)),
        "BFloat16Storage" => (2, Some(DType::BF16)),
        "LongStorage" => (8, Some(DType::I64)),
        "ByteStorage" => (1, Some(DType::U8)),
        "IntStorage" => (4, None),
        "ShortStorage" => (2, None),
        "CharStorage" | "BoolStorage" => (1, None),
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct Storage {
    class: String,
    elem: usize,
    dtype: Option<DType>,
    numel: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    storage_key: String,
    /// Elements from the start of the root storage to the tensor's first element.
    offset: u64,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// A legacy checkpoint's tensor table over the open file.
pub(crate) struct LegacyPth {
    file: std::fs::File,
    storages: HashMap<String, Storage>,
    /// storage key -> absolute byte offset of its first element
    data_at: HashMap<String, u64>,
    tensors: HashMap<String, Entry>,
}

fn pickle<R: BufRead>(r: &mut R, what: &str) -> Result<Object, String> {
    let mut stack = Stack::empty();
    stack
        .read_loop(r)
        .map_err(|e| format!("reading the {what} pickle: {e}"))?;
    stack
        .finalize()
        .map_err(|e| format!("reading the {what} pickle: {e}"))
}

fn int(o: Object, what: &str) -> Result<i64, String> {
    o.int_or_long()
        .map_err(|o| format!("{what}: expected an integer, got {o:?}"))
}

fn ints(o: Object, what: &str) -> Result<Vec<usize>, String> {
    let items = o
        .tuple()
        .map_err(|o| format!("{what}: expected a tuple, got {o:?}"))?;
    items
        .into_iter()
        .map(|v| {
            let n = int(v, what)?;
            usize::try_from(n).map_err(|_| format!("{what}: negative value {n}"))
        })
        .collect()
}

/// `('storage', torch.XStorage, key, location, numel, view_metadata)` of a persistent id.
fn parse_storage(pid: Object) -> Result<(String, Storage, u64), String> {
    let mut t = pid
        .persistent_load()
        .and_then(|o| o.tuple())
        .map_err(|o| format!("expected a storage reference, got {o:?}"))?;
    if t.len() != 6 {
        return Err(format!(
            "storage reference has {} fields, the legacy format has 6 (a zip-format entry?)",
            t.len()
        ));
    }
    let view = t.pop().unwrap_or(Object::None);
    let numel = int(t.remove(4), "storage size")?;
    let key = t
        .remove(2)
        .unicode()
        .map_err(|o| format!("storage key: {o:?}"))?;
    let (_, class) = t
        .remove(1)
        .class()
        .map_err(|o| format!("storage type: {o:?}"))?;
    let (elem, dtype) =
        storage_type(&class).ok_or_else(|| format!("unknown storage type {class}"))?;
    // An old-style storage view (view_key, offset, size) of the root storage `key`.
    let view_offset = match view {
        Object::None => 0,
        v => {
            let mut v = v
                .tuple()
                .map_err(|o| format!("storage view: expected a tuple, got {o:?}"))?;
            if v.len() != 3 {
                return Err(format!("storage view has {} fields, not 3", v.len()));
            }
            u64::try_from(int(v.remove(1), "storage view offset")?)
                .map_err(|_| "negative storage view offset".to_string())?
        }
    };
    let numel = u64::try_from(numel).map_err(|_| format!("negative storage size {numel}"))?;
    Ok((
        key,
        Storage {
            class,
            elem,
            dtype,
            numel,
        },
        view_offset,
    ))
}

/// A state-dict value: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`, possibly
/// wrapped in `_rebuild_parameter`. Anything else (e.g. `_metadata`) is `Ok(None)`.
fn parse_tensor(value: Object) -> Result<Option<(Entry, Storage)>, String> {
    let Ok((callable, args)) = value.reduce() else {
        return Ok(None);
    };
    let (callable, args) = match callable.clone().class() {
        Ok((m, c)) if m == "torch._utils" && c == "_rebuild_parameter" => {
            let mut a = args
                .tuple()
                .map_err(|o| format!("_rebuild_parameter args: {o:?}"))?;
            if a.is_empty() {
                return Err("_rebuild_parameter without arguments".into());
            }
            a.remove(0)
                .reduce()
                .map_err(|o| format!("parameter data: {o:?}"))?
        }
        _ => (callable, args),
    };
    match callable.class() {
        Ok((m, c)) if m == "torch._utils" && c == "_rebuild_tensor_v2" => {}
        _ => return Ok(None),
    }
    let mut a = args
        .tuple()
        .map_err(|o| format!("_rebuild_tensor_v2 args: {o:?}"))?;
    if a.len() < 4 {
        return Err(format!(
            "_rebuild_tensor_v2 has {} arguments, not >= 4",
            a.len()
        ));
    }
    let stride = ints(a.remove(3), "stride")?;
    let shape = ints(a.remove(2), "size")?;
    let offset = int(a.remove(1), "storage offset")?;
    let offset = u64::try_from(offset).map_err(|_| format!("negative storage offset {offset}"))?;
    let (key, storage, view_offset) = parse_storage(a.remove(0))?;
    if shape.len() != stride.len() {
        return Err(format!(
            "size {shape:?} and stride {stride:?} differ in rank"
        ));
    }
    Ok(Some((
        Entry {
            storage_key: key,
            offset: view_offset + offset,
            shape,
            stride,
        },
        storage,
    )))
}

impl LegacyPth {
    /// Reads the tensor table and places every storage; checks that each tensor lies inside
    /// its storage and the file holds every storage whole (a truncated download fails here).
    pub(crate) fn open(path: &Path) -> Result<LegacyPth, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut r = BufReader::new(file.try_clone().map_err(|e| e.to_string())?);
        let mut magic = [0u8; MAGIC_PICKLE.len()];
        r.read_exact(&mut magic)
            .map_err(|_| "truncated: shorter than the magic number".to_string())?;
        if magic != MAGIC_PICKLE {
            return Err("not a legacy PyTorch checkpoint (bad magic number)".into());
        }
        let proto = int(pickle(&mut r, "protocol version")?, "protocol version")?;
        if proto != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {proto}, expected {PROTOCOL_VERSION}"
            ));
        }
        let sys_info = pickle(&mut r, "sys_info")?;
        if let Object::Dict(items) = sys_info {
            for (k, v) in items {
                if k == Object::Unicode("little_endian".into()) && v == Object::Bool(false) {
                    return Err("saved on a big-endian machine: not supported".into());
                }
            }
        }
        let state = pickle(&mut r, "state dict")?;
        let Object::Dict(items) = state else {
            return Err("the checkpoint is not a state dict (expected a dict of tensors)".into());
        };
        let mut tensors = HashMap::new();
        let mut storages: HashMap<String, Storage> = HashMap::new();
        for (name, value) in items {
            let Ok(name) = name.unicode() else { continue };
            let Some((entry, storage)) =
                parse_tensor(value).map_err(|e| format!("tensor {name}: {e}"))?
            else {
                continue;
            };
            if let Some(prev) = storages.get(&entry.storage_key) {
                if prev.class != storage.class || prev.numel != storage.numel {
                    return Err(format!(
                        "tensor {name}: storage {} is both {} x{} and {} x{}",
                        entry.storage_key, prev.class, prev.numel, storage.class, storage.numel
                    ));
                }
            }
            check_bounds(&name, &entry, &storage)?;
            storages.insert(entry.storage_key.clone(), storage);
            tensors.insert(name, entry);
        }
        if tensors.is_empty() {
            return Err("no tensors found (expected a state dict saved with torch.save)".into());
        }
        let keys = match pickle(&mut r, "storage keys")? {
            Object::List(k) => k,
            o => return Err(format!("storage keys: expected a list, got {o:?}")),
        };
        let mut at = r.stream_position().map_err(|e| e.to_string())?;
        let mut data_at = HashMap::new();
        for k in keys {
            let k = k
                .unicode()
                .map_err(|o| format!("storage key: expected a string, got {o:?}"))?;
            let s = storages
                .get(&k)
                .ok_or_else(|| format!("storage {k} is listed but no tensor uses it"))?;
            let mut n = [0u8; 8];
            file.read_exact_at(&mut n, at).map_err(|_| {
                format!("truncated: storage {k} starts at byte {at} of a {len}-byte file")
            })?;
            let numel = u64::from_le_bytes(n);
            if numel != s.numel {
                return Err(format!(
                    "storage {k}: the data says {numel} elements, the tensor table {}",
                    s.numel
                ));
            }
            let end = numel
                .checked_mul(s.elem as u64)
                .and_then(|b| b.checked_add(at + 8))
                .ok_or_else(|| format!("storage {k}: size overflows"))?;
            if end > len {
                return Err(format!(
                    "truncated: storage {k} ends at byte {end} but the file has {len} bytes"
                ));
            }
            data_at.insert(k, at + 8);
            at = end;
        }
        if let Some(k) = storages.keys().find(|k| !data_at.contains_key(*k)) {
            return Err(format!("storage {k} is used by a tensor but has no data"));
        }
        Ok(LegacyPth {
            file,
            storages,
            data_at,
            tensors,
        })
    }

    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(e) = self.tensors.get(name) else {
            candle_core::bail!("cannot find tensor {name}");
        };
        let s = &self.storages[&e.storage_key];
        let Some(dtype) = s.dtype else {
            candle_core::bail!("tensor {name}: storage type {} is not supported", s.class);
        };
        let base = self.data_at[&e.storage_key];
        let elem = s.elem;
        let numel: usize = e.shape.iter().product();
        let mut out = vec![0u8; numel * elem];
        if numel > 0 {
            let start = base + e.offset * elem as u64;
            if is_contiguous(&e.shape, &e.stride) {
                self.file.read_exact_at(&mut out, start)?;
            } else {
                // Strided (e.g. a transposed view was saved): read the span, gather.
                let span = 1 + e
                    .shape
                    .iter()
                    .zip(&e.stride)
                    .map(|(&d, &st)| (d - 1) * st)
                    .sum::<usize>();
                let mut buf = vec![0u8; span * elem];
                self.file.read_exact_at(&mut buf, start)?;
                let mut idx = vec![0usize; e.shape.len()];
                for chunk in out.chunks_exact_mut(elem) {
                    let src: usize = idx.iter().zip(&e.stride).map(|(i, s)| i * s).sum();
                    chunk.copy_from_slice(&buf[src * elem..(src + 1) * elem]);
                    for d in (0..idx.len()).rev() {
                        idx[d] += 1;
                        if idx[d] < e.shape[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
            }
        }
        Tensor::from_raw_buffer(&out, dtype, &e.shape, dev)
    }
}

fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expect = 1;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect *= d;
    }
    true
}

fn check_bounds(name: &str, e: &Entry, s: &Storage) -> Result<(), String> {
    if e.shape.contains(&0) {
        return Ok(());
    }
    let last = e
        .shape
        .iter()
        .zip(&e.stride)
        .try_fold(e.offset, |acc, (&d, &st)| {
            ((d - 1) as u64)
                .checked_mul(st as u64)
                .and_then(|x| acc.checked_add(x))
        });
    match last {
        Some(l) if l < s.numel => Ok(()),
        _ => Err(format!(
            "tensor {name}: size {:?} stride {:?} offset {} reaches past its storage of {} \
             elements",
            e.shape, e.stride, e.offset, s.numel
        )),
    }
}

impl LazyTensors for LegacyPth {
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        LegacyPth::load(self, name, dev)
    }

    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[], &[]));
    }

    #[test]
    fn magic_detection() {
        assert!(is_legacy(&MAGIC_PICKLE));
        assert!(!is_legacy(&MAGIC_PICKLE[..4]));
        assert!(!is_legacy(b"PK\x03\x04 and more bytes"));
    }
}
