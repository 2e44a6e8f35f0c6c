#!/usr/bin/env python3
"""transformers generate() timing for scripts/gpu_check.sh (also runs on CPU for a dry run).

Same workload as `tomtat bench`: BATCH sources of SRC_LEN tokens (SRC_LEN - 1 seeded random
non-special ids, then EOS), each decoded to exactly NEW tokens (min_new_tokens =
max_new_tokens, no forced BOS/EOS, no n-gram blocking, length_penalty 1, early_stopping off).
One warm-up call, then RUNS timed calls (torch.cuda.synchronize around each); the median is
reported with the peak of torch.cuda.max_memory_allocated / max_memory_reserved.

  python scripts/gpu_bench_hf.py MODEL_DIR --batch 64 --src-len 30 --new 30 --beams 1 \
      [--runs 3] [--device cuda] [--dtype fp16] [--attn sdpa]

Prints one JSON line: {"engine": "transformers", "median_s", "tokens_per_s", ...}.
"""
import argparse
import json
import os
import random
import statistics
import sys
import time


def special_ids(cfg):
    ids = set()
    for key in ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id"):
        v = getattr(cfg, key, None)
        if isinstance(v, list):
            ids.update(int(x) for x in v)
        elif v is not None:
            ids.add(int(v))
    return ids


def sources(cfg, batch, src_len, seed):
    """Random non-special ids + EOS; the low ids and the last row (Marian pad, BART mask) are
    avoided, as tomtat bench does."""
    eos = cfg.eos_token_id[0] if isinstance(cfg.eos_token_id, list) else cfg.eos_token_id
    sp = special_ids(cfg)
    low = max([v for v in sp if v < 16] + [3]) + 1
    high = cfg.vocab_size - 1
    if getattr(cfg, "model_type", "") == "t5":
        high = min(high, 32000)
    rng = random.Random(seed)
    return [[rng.randrange(low, high) for _ in range(src_len - 1)] + [eos] for _ in range(batch)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--src-len", type=int, default=30)
    ap.add_argument("--new", type=int, default=30)
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa or eager)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForSeq2SeqLM

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_compare import forced_generation_config

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[a.dtype]
    cuda = a.device.startswith("cuda")
    t0 = time.perf_counter()
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(
            a.model, dtype=dtype, attn_implementation=a.attn)
    except TypeError:  # transformers 4.x spells it torch_dtype
        model = AutoModelForSeq2SeqLM.from_pretrained(
            a.model, torch_dtype=dtype, attn_implementation=a.attn)
    model = model.to(a.device).eval()
    load_s = time.perf_counter() - t0
    ids = torch.tensor(sources(model.config, a.batch, a.src_len, a.seed), dtype=torch.long,
                       device=a.device)
    mask = torch.ones_like(ids)
    gc = forced_generation_config(model, a.beams, a.new)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        for i in range(1 + a.runs):
            sync()
            t = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
            sync()
            if i > 0:
                times.append(time.perf_counter() - t)
    new = out.shape[1] - 1
    if new != a.new:
        print(f"warning: generated {new} tokens, expected {a.new}", file=sys.stderr)
    med = statistics.median(times)
    row = {
        "engine": "transformers",
        "model": a.model,
        "device": a.device,
        "dtype": a.dtype,
        "attn": a.attn,
        "beams": a.beams,
        "batch": a.batch,
        "src_len": a.src_len,
        "new_tokens": a.new,
        "runs_s": times,
        "median_s": med,
        "tokens_per_s": a.batch * a.new / med if med > 0 else 0.0,
        "load_s": load_s,
        "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
