#!/usr/bin/env python3
"""Writes the tiny PyTorch checkpoints tests/hub_weights.rs loads.

Run from the repo root:  python scripts/make_hub_fixtures.py  (needs torch)
Values are simple functions of the index so the Rust test can check them without
storing expected numbers.
"""
import collections
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hub")
os.makedirs(OUT, exist_ok=True)

state = {
    # f32, contiguous: a[i, j] = 3 * i + j
    "model.a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
    # f16 checkpoint tensor (loads as f32): b[i] = i / 2
    "model.b.bias": (torch.arange(4, dtype=torch.float32) / 2).to(torch.float16),
    # bf16: c[i] = -i
    "model.c.weight": (-torch.arange(3, dtype=torch.float32)).to(torch.bfloat16),
    # column-major (transposed view) storage: t[i, j] = 2 * j + i  (t = arange(6).view(3, 2).T)
    "model.t.weight": torch.arange(6, dtype=torch.float32).reshape(3, 2).t(),
}
torch.save(state, os.path.join(OUT, "pytorch_model.bin"))
# torch < 1.6 format (a bare pickle stream, then the raw storages), as the 2020 Hub
# checkpoints (opus-mt, distilbart) were saved. An OrderedDict with _metadata like
# save_pretrained's, plus what those files hold: two names sharing one storage (tied
# embeddings) and a tensor at an offset inside a bigger storage.
legacy = collections.OrderedDict(state)
shared = torch.arange(8, dtype=torch.float32).reshape(2, 4) / 4
legacy["model.shared.weight"] = shared
legacy["lm_head.weight"] = shared  # same storage, saved once
big = torch.arange(10, dtype=torch.float32)
legacy["model.row.weight"] = big[4:7]  # storage offset 4: values 4, 5, 6
legacy["model.ids"] = torch.arange(3, dtype=torch.int64)
legacy._metadata = collections.OrderedDict({"": {"version": 1}})
torch.save(
    legacy,
    os.path.join(OUT, "legacy_pytorch_model.bin"),
    _use_new_zipfile_serialization=False,
)
for f in sorted(os.listdir(OUT)):
    print(f, os.path.getsize(os.path.join(OUT, f)))
