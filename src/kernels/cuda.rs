//! tomtat's own CUDA kernels (`cuda/kernels.cu`, compiled to PTX by build.rs): fused bias +
//! activation, one-query attention for decoding steps, and per-row top-n candidate selection.
//!
//! Why: on the GPU measured (benches/RESULTS.md) a decoding step took 3.3 ms whether it had
//! 8 or 64 rows, i.e. the host's cost of ~200 small candle ops per step (launch, allocation,
//! a parameter upload for every strided op), not GPU work; and broadcast bias adds were a
//! third of the encoder's kernel time. Each function here returns `Ok(None)` when it does not apply (CPU tensors, a build
//! without `cuda`, a layout or size it does not handle, or `TOMTAT_CUDA_KERNELS=0`), and the
//! caller then takes the candle path, which stays the reference.

use candle_core::Tensor;

use crate::model::Activation;

/// Element strides of keys/values for [`attend_one`]: element (row r, head h, key j, dim d)
/// sits at `(r / group) * src + h * head + j * key + d`.
#[derive(Debug, Clone, Copy)]
pub struct KvStrides {
    pub src: usize,
    pub head: usize,
    pub key: usize,
}

/// The query of [`attend_one`]: row r of `q` starts at element `r * row`; its `heads * dh`
/// elements are the heads in order (`row` > `heads * dh` when `q` is a slice of a fused
/// QKV projection).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub q: &'a Tensor,
    pub row: usize,
    pub heads: usize,
    pub dh: usize,
}

/// An additive attention bias for [`attend_one`]: element (source, head, key) at
/// `source * src + head * head + key` from the tensor's own start offset.
#[derive(Debug, Clone, Copy)]
pub struct BiasStrides<'a> {
    pub bias: &'a Tensor,
    pub src: usize,
    pub head: usize,
}

/// Whether the kernels may be used (`TOMTAT_CUDA_KERNELS=0` turns them off, for A/B timing
/// and to compare against candle's ops).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub fn enabled() -> bool {
    crate::knobs::knobs().cuda_kernels
}

/// The activation code of `bias_act` in kernels.cu.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn act_code(act: Option<Activation>) -> Option<i32> {
    match act {
        None => Some(0),
        Some(Activation::Gelu) => Some(1),
        Some(Activation::Relu) => Some(2),
        Some(Activation::Silu) => Some(3),
        Some(_) => None,
    }
}

/// Shared memory of `attend_one`: scores for every key, 32 floats for reductions, one float
/// per thread for the partial weighted sums. 48 KiB is what every CUDA GPU gives a block.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const ATTEND_THREADS: usize = 256;
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const ATTEND_MAX_KEYS: usize = 48 * 1024 / 4 - 32 - ATTEND_THREADS;
/// Widest row [`add_layer_norm`] takes (its row lives in 48 KiB of shared memory).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const LN_MAX_D: usize = 48 * 1024 / 4;
/// Most candidates per row a [`topk`] returns (beam search takes 2 x beams).
pub const TOPK_MAX: usize = 16;

#[cfg(feature = "cuda")]
mod imp {
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
    };
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::op::BackpropOp;
    use candle_core::{
        CudaDevice, CudaStorage, DType, Device, Layout, Result, Storage, StorageRef, Tensor,
    };
    use half::{bf16, f16};

    use super::ATTEND_THREADS;
    use super::LN_MAX_D;
    use super::{act_code, enabled, BiasStrides, KvStrides, Query, ATTEND_MAX_KEYS};
    use super::{Activation, TOPK_MAX};

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/kernels.ptx"));
    const MODULE: &str = "tomtat_kernels";

    fn cuda_dev(t: &Tensor) -> Option<&CudaDevice> {
        match t.device() {
            Device::Cuda(d) if enabled() => Some(d),
            _ => None,
        }
    }

    /// The tensor's elements from its start offset.
    fn view<'a, T: CudaDType>(s: &'a Storage, l: &Layout) -> Result<CudaView<'a, T>> {
        match s {
            Storage::Cuda(c) => Ok(c.as_cuda_slice::<T>()?.slice(l.start_offset()..)),
            _ => candle_core::bail!("tomtat kernel: tensor is not on the GPU"),
        }
    }

    /// [`view`] of an optional tensor (its storage guard and layout).
    fn opt_view<'a, T: CudaDType>(
        g: &'a Option<(StorageRef<'_>, &Layout)>,
    ) -> Result<Option<CudaView<'a, T>>> {
        g.as_ref().map(|(s, l)| view::<T>(s, l)).transpose()
    }

    fn wrap<T: CudaDType>(out: CudaSlice<T>, dev: &CudaDevice, shape: &[usize]) -> Tensor {
        let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(out, dev.clone()));
        Tensor::from_storage(storage, shape, BackpropOp::none(), false)
    }

    fn u32_of(x: usize) -> Option<u32> {
        u32::try_from(x).ok()
    }

    pub fn bias_act(x: &Tensor, b: &Tensor, act: Option<Activation>) -> Result<Option<Tensor>> {
        let Some(dev) = cuda_dev(x) else {
            return Ok(None);
        };
        let n = b.elem_count();
        let (Some(code), Some(&last)) = (act_code(act), x.dims().last()) else {
            return Ok(None);
        };
        if n == 0 || last != n || !x.is_contiguous() || !b.is_contiguous() || x.dtype() != b.dtype()
        {
            return Ok(None);
        }
        let rows = x.elem_count() / n;
        let (Some(rows32), Some(n32)) = (u32_of(rows), u32_of(n)) else {
            return Ok(None);
        };
        fn run<T: CudaDType + DeviceRepr>(
            dev: &CudaDevice,
            name: &str,
            x: &Tensor,
            b: &Tensor,
            dims: (u32, u32, i32),
        ) -> Result<Tensor> {
            let (rows, n, code) = dims;
            let (xs, xl) = x.storage_and_layout();
            let (bs, bl) = b.storage_and_layout();
            let (xv, bv) = (view::<T>(&xs, xl)?, view::<T>(&bs, bl)?);
            // SAFETY: every element is written by the kernel.
            let out = unsafe { dev.alloc::<T>(x.elem_count())? };
            let f = dev.get_or_load_custom_func(name, MODULE, PTX)?;
            let mut lb = f.builder();
            lb.arg(&xv).arg(&bv).arg(&out).arg(&rows).arg(&n).arg(&code);
            let cfg = LaunchConfig {
                grid_dim: (n.div_ceil(256), rows.clamp(1, 4096), 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: argument types and order match tt_bias_act_* in kernels.cu; x and the
            // output hold rows * n elements, b holds n.
            unsafe { lb.launch(cfg) }.w()?;
            Ok(wrap(out, dev, x.dims()))
        }
        let dims = (rows32, n32, code);
        Ok(Some(match x.dtype() {
            DType::F32 => run::<f32>(dev, "tt_bias_act_f32", x, b, dims)?,
            DType::F16 => run::<f16>(dev, "tt_bias_act_f16", x, b, dims)?,
            DType::BF16 => run::<bf16>(dev, "tt_bias_act_bf16", x, b, dims)?,
            _ => return Ok(None),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn attend_one(
        query: Query,
        k: &Tensor,
        v: &Tensor,
        keys: usize,
        group: usize,
        kv: KvStrides,
        bias: Option<BiasStrides>,
    ) -> Result<Option<Tensor>> {
        let Query { q, row, heads, dh } = query;
        let Some(dev) = cuda_dev(q) else {
            return Ok(None);
        };
        if heads == 0 || group == 0 || row < heads * dh || q.elem_count() % row.max(1) != 0 {
            return Ok(None);
        }
        let rows = q.elem_count() / row.max(1);
        let dt = q.dtype();
        let same = |t: &Tensor| t.dtype() == dt && t.is_contiguous();
        if dh == 0
            || dh > 256
            || keys == 0
            || keys > ATTEND_MAX_KEYS
            || rows == 0
            || rows % group != 0
            || heads > 65535
            || !same(q)
            || !same(k)
            || !same(v)
            || bias.is_some_and(|b| b.bias.dtype() != dt)
        {
            return Ok(None);
        }
        // the last key/value element any row reads must exist
        let last = (rows / group - 1) * kv.src + (heads - 1) * kv.head + (keys - 1) * kv.key + dh;
        if last > k.elem_count() || last > v.elem_count() {
            return Ok(None);
        }
        let (Some(rows32), Some(keys32), Some(group32)) =
            (u32_of(rows), u32_of(keys), u32_of(group))
        else {
            return Ok(None);
        };
        // beams of one source in one block (keys and values read once for all of them)
        let fits = |r: usize| (r * (keys + ATTEND_THREADS) + 32) * 4 <= 48 * 1024;
        let per_block = [8usize, 4, 2]
            .into_iter()
            .find(|&r| group % r == 0 && fits(r))
            .unwrap_or(1);
        #[allow(clippy::too_many_arguments)]
        fn run<T: CudaDType + DeviceRepr>(
            dev: &CudaDevice,
            name: &str,
            q: &Tensor,
            k: &Tensor,
            v: &Tensor,
            bias: Option<BiasStrides>,
            grid: (u32, u32),
            sizes: (u32, u32, u32, u32, u64),
            kv: KvStrides,
        ) -> Result<Tensor> {
            let (keys, dh, group, per_block, q_row) = sizes;
            let (qs, ql) = q.storage_and_layout();
            let (ks, kl) = k.storage_and_layout();
            let (vs, vl) = v.storage_and_layout();
            let (qv, kvw, vv) = (
                view::<T>(&qs, ql)?,
                view::<T>(&ks, kl)?,
                view::<T>(&vs, vl)?,
            );
            let bguard = bias.map(|b| b.bias.storage_and_layout());
            let bview = opt_view::<T>(&bguard)?;
            let (b_src, b_head) = bias.map_or((0u64, 0u64), |b| (b.src as u64, b.head as u64));
            // SAFETY: every element is written by the kernel.
            let inner = grid.1 as usize * dh as usize;
            let rows = grid.0 as usize * per_block as usize;
            let out = unsafe { dev.alloc::<T>(rows * inner)? };
            let f = dev.get_or_load_custom_func(name, MODULE, PTX)?;
            let null = 0u64;
            let (s_src, s_head, s_key) = (kv.src as u64, kv.head as u64, kv.key as u64);
            let mut lb = f.builder();
            lb.arg(&qv).arg(&q_row).arg(&kvw).arg(&vv);
            match &bview {
                Some(b) => lb.arg(b),
                None => lb.arg(&null),
            };
            lb.arg(&out).arg(&keys).arg(&dh).arg(&group);
            lb.arg(&s_src)
                .arg(&s_head)
                .arg(&s_key)
                .arg(&b_src)
                .arg(&b_head);
            let cfg = LaunchConfig {
                grid_dim: (grid.0, grid.1, 1),
                block_dim: (ATTEND_THREADS as u32, 1, 1),
                shared_mem_bytes: (per_block * (keys + ATTEND_THREADS as u32) + 32) * 4,
            };
            // SAFETY: argument types and order match tt_attend_one_* in kernels.cu; the caller
            // checked that the last element read lies inside k and v, and the bias strides
            // come from the caller's layout.
            unsafe { lb.launch(cfg) }.w()?;
            Ok(wrap(out, dev, &[rows, inner]))
        }
        let grid = (rows32 / per_block as u32, heads as u32);
        let sizes = (keys32, dh as u32, group32, per_block as u32, row as u64);
        let name = |t: &str| format!("tt_attend_one_r{per_block}_{t}");
        Ok(Some(match dt {
            DType::F32 => run::<f32>(dev, &name("f32"), q, k, v, bias, grid, sizes, kv)?,
            DType::F16 => run::<f16>(dev, &name("f16"), q, k, v, bias, grid, sizes, kv)?,
            DType::BF16 => run::<bf16>(dev, &name("bf16"), q, k, v, bias, grid, sizes, kv)?,
            _ => return Ok(None),
        }))
    }

    /// The copy of [`super::write_rows`] (see there).
    struct CopyRows {
        /// Element offset of the first row in the source, elements between source rows.
        src_off: usize,
        src_row: usize,
        /// Destination element offset, rows, row width.
        dst_off: usize,
        rows: u32,
        n: u32,
    }

    impl candle_core::InplaceOp2 for CopyRows {
        fn name(&self) -> &'static str {
            "tomtat-copy-rows"
        }

        fn cpu_fwd(
            &self,
            _: &mut candle_core::CpuStorage,
            _: &Layout,
            _: &candle_core::CpuStorage,
            _: &Layout,
        ) -> Result<()> {
            candle_core::bail!("tomtat-copy-rows runs on the GPU only")
        }

        fn cuda_fwd(
            &self,
            dst: &mut CudaStorage,
            dl: &Layout,
            src: &CudaStorage,
            sl: &Layout,
        ) -> Result<()> {
            fn run<T: CudaDType + DeviceRepr>(
                op: &CopyRows,
                name: &str,
                dst: &mut CudaStorage,
                dl: &Layout,
                src: &CudaStorage,
                sl: &Layout,
            ) -> Result<()> {
                let dev = src.device.clone();
                let sv = src
                    .as_cuda_slice::<T>()?
                    .slice(sl.start_offset() + op.src_off..);
                let start = dl.start_offset() + op.dst_off;
                let mut dv = dst.as_cuda_slice_mut::<T>()?.slice_mut(start..);
                let f = dev.get_or_load_custom_func(name, MODULE, PTX)?;
                let src_row = op.src_row as u64;
                let mut lb = f.builder();
                lb.arg(&sv)
                    .arg(&mut dv)
                    .arg(&op.rows)
                    .arg(&op.n)
                    .arg(&src_row);
                let cfg = LaunchConfig {
                    grid_dim: (op.n.div_ceil(256), op.rows.clamp(1, 4096), 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: argument types and order match tt_copy_rows_* in kernels.cu;
                // `write_rows` checked both extents.
                unsafe { lb.launch(cfg) }.w()?;
                Ok(())
            }
            use candle_core::backend::BackendStorage;
            match (dst.dtype(), src.dtype()) {
                (DType::F32, DType::F32) => run::<f32>(self, "tt_copy_rows_f32", dst, dl, src, sl),
                (DType::F16, DType::F16) => run::<f16>(self, "tt_copy_rows_f16", dst, dl, src, sl),
                (DType::BF16, DType::BF16) => {
                    run::<bf16>(self, "tt_copy_rows_bf16", dst, dl, src, sl)
                }
                _ => candle_core::bail!("tomtat-copy-rows: dtypes differ or are not floats"),
            }
        }
    }

    pub fn write_rows(
        dst: &Tensor,
        dst_off: usize,
        src: &Tensor,
        src_off: usize,
        src_row: usize,
        n: usize,
    ) -> Result<bool> {
        if cuda_dev(src).is_none()
            || !dst.is_contiguous()
            || !src.is_contiguous()
            || dst.dtype() != src.dtype()
            || n == 0
            || src_row < n
        {
            return Ok(false);
        }
        let rows = src.elem_count() / src_row;
        let (Some(rows32), Some(n32)) = (u32_of(rows), u32_of(n)) else {
            return Ok(false);
        };
        let src_fits = rows > 0 && src_off + (rows - 1) * src_row + n <= src.elem_count();
        if !src_fits || dst_off + rows * n > dst.elem_count() {
            return Ok(false);
        }
        let op = CopyRows {
            src_off,
            src_row,
            dst_off,
            rows: rows32,
            n: n32,
        };
        dst.inplace_op2(src, &op)?;
        Ok(true)
    }

    pub fn add_layer_norm(
        a: &Tensor,
        b: &Tensor,
        w: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<Option<Tensor>> {
        let Some(dev) = cuda_dev(a) else {
            return Ok(None);
        };
        let d = w.elem_count();
        let dt = a.dtype();
        let ok = |t: &Tensor| t.dtype() == dt && t.is_contiguous();
        if d == 0
            || a.dims() != b.dims()
            || a.dims().last() != Some(&d)
            || beta.elem_count() != d
            || d > LN_MAX_D
            || !(ok(a) && ok(b) && ok(w) && ok(beta))
        {
            return Ok(None);
        }
        let rows = a.elem_count() / d;
        let (Some(rows32), Some(d32)) = (u32_of(rows), u32_of(d)) else {
            return Ok(None);
        };
        if rows == 0 {
            return Ok(None);
        }
        fn run<T: CudaDType + DeviceRepr>(
            dev: &CudaDevice,
            name: &str,
            t: [&Tensor; 4],
            rows: u32,
            d: u32,
            eps: f32,
        ) -> Result<Tensor> {
            let g: Vec<_> = t.iter().map(|x| x.storage_and_layout()).collect();
            let v = g
                .iter()
                .map(|(s, l)| view::<T>(s, l))
                .collect::<Result<Vec<_>>>()?;
            // SAFETY: every element is written by the kernel.
            let out = unsafe { dev.alloc::<T>(t[0].elem_count())? };
            let f = dev.get_or_load_custom_func(name, MODULE, PTX)?;
            let mut lb = f.builder();
            lb.arg(&v[0])
                .arg(&v[1])
                .arg(&v[2])
                .arg(&v[3])
                .arg(&out)
                .arg(&d)
                .arg(&eps);
            let cfg = LaunchConfig {
                grid_dim: (rows, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: d * 4,
            };
            // SAFETY: argument types and order match tt_add_layernorm_* in kernels.cu; a and
            // b hold rows x d elements, w and beta d.
            unsafe { lb.launch(cfg) }.w()?;
            Ok(wrap(out, dev, t[0].dims()))
        }
        let t = [a, b, w, beta];
        let eps = eps as f32;
        Ok(Some(match dt {
            DType::F32 => run::<f32>(dev, "tt_add_layernorm_f32", t, rows32, d32, eps)?,
            DType::F16 => run::<f16>(dev, "tt_add_layernorm_f16", t, rows32, d32, eps)?,
            DType::BF16 => run::<bf16>(dev, "tt_add_layernorm_bf16", t, rows32, d32, eps)?,
            _ => return Ok(None),
        }))
    }

    pub fn topk(
        scores: &Tensor,
        mask: Option<&Tensor>,
        add: Option<&Tensor>,
        n: usize,
    ) -> Result<Option<Vec<u32>>> {
        let Some(dev) = cuda_dev(scores) else {
            return Ok(None);
        };
        let Ok((rows, vocab)) = scores.dims2() else {
            return Ok(None);
        };
        let f32c = |t: &Tensor, len: usize| {
            t.dtype() == DType::F32 && t.is_contiguous() && t.elem_count() == len
        };
        if n == 0
            || n > TOPK_MAX
            || rows == 0
            || vocab == 0
            || !f32c(scores, rows * vocab)
            || mask.is_some_and(|m| !f32c(m, vocab))
            || add.is_some_and(|a| !f32c(a, rows))
        {
            return Ok(None);
        }
        let (Some(rows32), Some(vocab32)) = (u32_of(rows), u32_of(vocab)) else {
            return Ok(None);
        };
        let width = [1usize, 4, 8, 16]
            .into_iter()
            .find(|&w| w >= n)
            .unwrap_or(TOPK_MAX);
        let name = format!("tt_topk_{width}");
        let (ss, sl) = scores.storage_and_layout();
        let sv = view::<f32>(&ss, sl)?;
        let mguard = mask.map(|m| m.storage_and_layout());
        let mview = opt_view::<f32>(&mguard)?;
        let aguard = add.map(|a| a.storage_and_layout());
        let aview = opt_view::<f32>(&aguard)?;
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<u32>(rows * (2 * n + 1))? };
        let f = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
        let null = 0u64;
        let n32 = n as u32;
        let mut lb = f.builder();
        lb.arg(&sv);
        match &mview {
            Some(m) => lb.arg(m),
            None => lb.arg(&null),
        };
        match &aview {
            Some(a) => lb.arg(a),
            None => lb.arg(&null),
        };
        lb.arg(&out).arg(&vocab32).arg(&n32);
        let cfg = LaunchConfig {
            grid_dim: (rows32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument types and order match tt_topk_* in kernels.cu; scores hold rows x
        // vocab f32, mask vocab, add rows, the output rows x (2n + 1).
        unsafe { lb.launch(cfg) }.w()?;
        Ok(Some(dev.clone_dtoh(&out)?))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::{Activation, BiasStrides, KvStrides, Query};
    use candle_core::{Result, Tensor};

    pub fn bias_act(_: &Tensor, _: &Tensor, _: Option<Activation>) -> Result<Option<Tensor>> {
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn attend_one(
        _: Query,
        _: &Tensor,
        _: &Tensor,
        _: usize,
        _: usize,
        _: KvStrides,
        _: Option<BiasStrides>,
    ) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn write_rows(
        _: &Tensor,
        _: usize,
        _: &Tensor,
        _: usize,
        _: usize,
        _: usize,
    ) -> Result<bool> {
        Ok(false)
    }

    pub fn add_layer_norm(
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: &Tensor,
        _: f64,
    ) -> Result<Option<Tensor>> {
        Ok(None)
    }

    pub fn topk(
        _: &Tensor,
        _: Option<&Tensor>,
        _: Option<&Tensor>,
        _: usize,
    ) -> Result<Option<Vec<u32>>> {
        Ok(None)
    }
}

/// `act(x + b)` for `x` `[.., n]` and bias `[n]`, in one pass (`act` None: the bias only).
pub use imp::bias_act;

/// Attention of one query per row (a decoding step), heads merged: `[rows, heads * dh]`;
/// keys/values addressed by `kv` from their start offsets, rows in groups of `group` sharing
/// one source's keys (beams).
pub use imp::attend_one;

/// `dst[dst_off + r * n + c] = src[src_off + r * src_row + c]` for the `src.elem_count() /
/// src_row` rows, in place in `dst` (a decoding step's keys or values into the cache).
/// `Ok(false)`: not applicable (not a GPU, layouts, extents), nothing written.
pub use imp::write_rows;

/// Post-norm residual in one pass: `LayerNorm(a + b)` with weight `w` and bias `beta`.
pub use imp::add_layer_norm;

/// Per row of f32 `scores` `[rows, vocab]`: the `n` best of `(scores + mask) + add[row]`
/// (value descending, index ascending) as `rows x (2n + 1)` u32: `n` value bit patterns, `n`
/// indices, a flag (1: the row holds NaN or +inf).
pub use imp::topk;
