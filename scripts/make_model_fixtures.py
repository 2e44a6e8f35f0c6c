#!/usr/bin/env python3
"""Build SMALL random-weight seq2seq models and transformers reference outputs for tomtat's
model parity tests (tests/model_parity.rs) and generation tests (the `generate` module).

Families (one directory each under OUT, default tests/fixtures/models/):
  marian  MarianMTModel, sinusoidal positions, post-LN, swish, tied head, final_logits_bias
  bart    BartForConditionalGeneration, learned positions (+2), post-LN, layernorm_embedding
  mbart   MBartForConditionalGeneration, pre-LN + final layer norms, scale_embedding
  t5      T5 v1.0: relu, tied head (decoder output scaled by d_model^-0.5)
  t5v11   T5 v1.1 / FLAN / mT5: gated-gelu, UNTIED lm_head, inner dim != d_model

Each directory: config.json, generation_config.json, model.safetensors (Hub layout), and
  expected.safetensors: input_ids / attention_mask (padded batch of 4 rows, mixed lengths,
      right padding), decoder_input_ids (teacher forcing, first = decoder_start_token_id),
      encoder_hidden ([4, S, d_model], last encoder hidden state) and logits ([4, T, vocab]),
      all from the float32 model (eager attention).
  generate.json: 32 sources of mixed length (ids incl. the special tokens the HF tokenizer
      adds: EOS, BART's BOS, mBART's language code), and for 4 settings (greedy/beam4 x
      forced length 30 / free-running max_new_tokens 40) the generation parameters and the
      HF generate() output ids without the decoder start token, cut after the first EOS.

Checks (the script fails if one does not hold, so a fixture is never chaotic or degenerate):
  * float64 copies of the models give the same greedy and beam ids as float32,
  * each source generated alone gives the same ids as in the padded batch,
  * outputs are diverse (distinct tokens per output) and free-running outputs end at
    different lengths (EOS is reachable).

Usage: HF_HUB_OFFLINE=1 /work/pyref/bin/python scripts/make_model_fixtures.py [--out DIR]
"""
import argparse
import copy
import json
import os
import random
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (BartConfig, BartForConditionalGeneration, MarianConfig,
                          MarianMTModel, MBartConfig, MBartForConditionalGeneration,
                          T5Config, T5ForConditionalGeneration)

N_SRC = 32
# Init per family (see diversify; tuned so that outputs are diverse, EOS is reachable in
# free-running mode and float32 == float64): embedding std (T5: row norm), q/k std, other
# linear std, EOS boost (final_logits_bias, or T5 head row), T5 relative-bias std.
HP = {
    "marian": dict(emb=0.3, qk=0.4, lin=0.2, eos=2.0),
    "bart": dict(emb=0.3, qk=0.45, lin=0.15, eos=3.5),
    "mbart": dict(emb=0.5, qk=0.45, lin=0.7, eos=3.5),
    "t5": dict(emb=5.0, qk=0.3, lin=1.0, eos=2.0, rel=6.0),
    "t5v11": dict(emb=5.0, qk=0.2, lin=0.7, eos=0.0, rel=6.0),
}
FORCED_LEN = 30
FREE_MAX = 40
DEC_T = 9  # teacher-forced decoder length in expected.safetensors


def diversify(model, emb_std, qk_std, lin_std, bias_std=0.02, rel_std=1.0, row_norm=None):
    """Re-initialise so random models give input-dependent, non-degenerate output (see
    ../shared/reference/make_random_models.py): larger embeddings, moderately peaky q/k,
    small other projections, randomised (layer/RMS)norm affine. Sinusoidal tables untouched."""
    with torch.no_grad():
        for n, mod in model.named_modules():
            cls = type(mod).__name__
            if isinstance(mod, torch.nn.Linear):
                last = n.rsplit(".", 1)[-1]
                if last == "lm_head":
                    continue  # handled by the family builder (tied or not)
                std = qk_std if last in ("q_proj", "k_proj", "q", "k") else lin_std
                mod.weight.normal_(0, std)
                if mod.bias is not None:
                    mod.bias.normal_(0, bias_std)
            elif isinstance(mod, torch.nn.Embedding):
                if "Sinusoidal" in cls:
                    continue
                if n.endswith("relative_attention_bias"):
                    mod.weight.normal_(0, rel_std)
                else:
                    mod.weight.normal_(0, emb_std)
                    if row_norm is not None:  # no token wins by its norm alone (tied heads)
                        mod.weight.mul_(row_norm / mod.weight.norm(dim=1, keepdim=True))
                    if mod.padding_idx is not None:
                        mod.weight[mod.padding_idx].zero_()
            elif isinstance(mod, torch.nn.LayerNorm) or cls.endswith("LayerNorm"):
                mod.weight.uniform_(0.5, 1.5)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.normal_(0, 0.1)


def save_hub(model, d, state=None, config_patch=None):
    """save_pretrained (config.json, generation_config.json, model.safetensors); optionally
    overwrite the weights with `state` and patch config.json to look like the real Hub file."""
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    if state is not None:
        save_file({k: v.contiguous() for k, v in state.items()},
                  os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    if config_patch:
        p = os.path.join(d, "config.json")
        cfg = json.load(open(p))
        for k, v in config_patch.items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        json.dump(cfg, open(p, "w"), indent=2, sort_keys=True)


# ----------------------------------------------------------------------------- families
# Each builder returns (model, info) where info carries the special ids and how sources are
# framed; the model is then saved and reloaded with from_pretrained (the reference is computed
# on the reloaded model, so what is on disk is what is checked).

def build_marian():
    V, pad, eos = 320, 319, 0
    cfg = MarianConfig(
        vocab_size=V, decoder_vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, activation_function="swish", max_position_embeddings=64,
        scale_embedding=True, share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
        pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=eos, bos_token_id=0,
        forced_eos_token_id=eos, architectures=["MarianMTModel"])
    m = MarianMTModel(cfg).eval()
    h = HP["marian"]
    diversify(m, emb_std=h["emb"], qk_std=h["qk"], lin_std=h["lin"])
    with torch.no_grad():
        m.final_logits_bias.normal_(0, 0.1)
        m.final_logits_bias[0, eos] += h["eos"]  # make EOS reachable
    gc = m.generation_config
    gc.bad_words_ids = [[pad]]  # opus-mt generation_config.json
    gc.num_beams = 4
    gc.max_length = 512
    gc.forced_eos_token_id = eos
    return m, dict(pad=pad, eos=eos, start=pad, first_id=2, last_id=V - 2,
                   prefix=[], suffix=[eos], max_src=64)


def build_bart():
    V = 288
    cfg = BartConfig(
        vocab_size=V, d_model=32, encoder_layers=3, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
        activation_function="gelu", max_position_embeddings=64, scale_embedding=False,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        forced_eos_token_id=2, architectures=["BartForConditionalGeneration"])
    m = BartForConditionalGeneration(cfg).eval()
    h = HP["bart"]
    diversify(m, emb_std=h["emb"], qk_std=h["qk"], lin_std=h["lin"])
    with torch.no_grad():
        m.final_logits_bias.normal_(0, 0.1)
        m.final_logits_bias[0, 2] += h["eos"]
    gc = m.generation_config  # bart-large-cnn style
    gc.num_beams = 4
    gc.length_penalty = 2.0
    gc.no_repeat_ngram_size = 3
    gc.early_stopping = True
    gc.forced_bos_token_id = 0
    gc.forced_eos_token_id = 2
    gc.min_length = 8
    gc.max_length = 142
    return m, dict(pad=1, eos=2, start=2, first_id=4, last_id=V - 2,
                   prefix=[0], suffix=[2], max_src=64)


def build_mbart():
    V = 300
    vi_VN, en_XX = 298, 299  # language codes at the end of the vocab, as in mBART-50
    cfg = MBartConfig(
        vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
        activation_function="gelu", max_position_embeddings=128, scale_embedding=True,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=en_XX,
        forced_eos_token_id=2, architectures=["MBartForConditionalGeneration"])
    m = MBartForConditionalGeneration(cfg).eval()
    h = HP["mbart"]
    diversify(m, emb_std=h["emb"], qk_std=h["qk"], lin_std=h["lin"])
    with torch.no_grad():
        m.final_logits_bias.normal_(0, 0.1)
        m.final_logits_bias[0, 2] += h["eos"]
    gc = m.generation_config  # vinai-translate style: decoder starts from the target lang code
    gc.decoder_start_token_id = en_XX
    gc.num_beams = 4
    gc.early_stopping = True
    gc.forced_eos_token_id = 2
    gc.max_length = 128
    return m, dict(pad=1, eos=2, start=en_XX, first_id=4, last_id=V - 3,
                   prefix=[], suffix=[2, vi_VN], max_src=128)


def build_t5():
    V = 256
    cfg = T5Config(vocab_size=V, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                   relative_attention_max_distance=20, feed_forward_proj="relu",
                   tie_word_embeddings=True, pad_token_id=0, eos_token_id=1,
                   decoder_start_token_id=0, architectures=["T5ForConditionalGeneration"])
    m = T5ForConditionalGeneration(cfg).eval()
    h = HP["t5"]
    diversify(m, emb_std=1.0, qk_std=h["qk"], lin_std=h["lin"], rel_std=h["rel"],
              row_norm=h["emb"])
    with torch.no_grad():
        m.shared.weight[1] *= h["eos"]  # make EOS reachable
    return m, dict(pad=0, eos=1, start=0, first_id=3, last_id=V - 1,
                   prefix=[], suffix=[1], max_src=None)


def build_t5v11():
    V = 272
    cfg = T5Config(vocab_size=V, d_model=32, d_kv=16, d_ff=48, num_layers=2,
                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=16,
                   relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
                   tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                   decoder_start_token_id=0, architectures=["T5ForConditionalGeneration"])
    m = T5ForConditionalGeneration(cfg).eval()
    h = HP["t5v11"]
    diversify(m, emb_std=1.0, qk_std=h["qk"], lin_std=h["lin"], rel_std=h["rel"],
              row_norm=h["emb"])
    # transformers 5.x always ties T5's lm_head at construction; real v1.1/FLAN/mT5
    # checkpoints have their own lm_head.weight, which from_pretrained keeps untied when it
    # differs from shared.weight. Give the head its own weights.
    with torch.no_grad():
        m.lm_head.weight = torch.nn.Parameter(torch.randn(V, 32) * 0.3)
        m.lm_head.weight[1] += h["eos"] * m.lm_head.weight[1].sign()
    return m, dict(pad=0, eos=1, start=0, first_id=3, last_id=V - 1,
                   prefix=[], suffix=[1], max_src=None,
                   config_patch={"tie_word_embeddings": False, "scale_decoder_outputs": None,
                                 "is_gated_act": None, "dense_act_fn": None})


FAMILIES = {"marian": build_marian, "bart": build_bart, "mbart": build_mbart,
            "t5": build_t5, "t5v11": build_t5v11}


# ----------------------------------------------------------------------------- reference
def make_sources(rng, info, n, lo, hi):
    out = []
    for i in range(n):
        L = lo + (i * 7919 + rng.randrange(hi - lo + 1)) % (hi - lo + 1)
        body = [rng.randint(info["first_id"], info["last_id"]) for _ in range(L)]
        out.append(info["prefix"] + body + info["suffix"])
    return out


def pad_batch(rows, pad):
    S = max(len(r) for r in rows)
    ids = torch.full((len(rows), S), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), S), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def settings(model):
    base = copy.deepcopy(model.generation_config)
    base.do_sample = False
    base.num_return_sequences = 1
    out = {}
    for beams in (1, 4):
        g = copy.deepcopy(base)
        g.num_beams = beams
        g.min_new_tokens = FORCED_LEN
        g.max_new_tokens = FORCED_LEN
        g.max_length = None
        g.min_length = 0
        g.forced_eos_token_id = None
        g.forced_bos_token_id = None
        g.early_stopping = False
        g.length_penalty = 1.0
        out[("greedy" if beams == 1 else "beam4") + "_forced"] = g
        g = copy.deepcopy(base)
        g.num_beams = beams
        g.max_new_tokens = FREE_MAX
        g.max_length = None
        out[("greedy" if beams == 1 else "beam4") + "_free"] = g
    return out


PARAM_KEYS = ["num_beams", "do_sample", "max_new_tokens", "min_new_tokens", "min_length",
              "length_penalty", "early_stopping", "no_repeat_ngram_size",
              "encoder_no_repeat_ngram_size", "repetition_penalty", "bad_words_ids",
              "forced_bos_token_id", "forced_eos_token_id", "decoder_start_token_id",
              "eos_token_id", "pad_token_id", "bos_token_id", "num_return_sequences"]


def gen_ids(model, ids, mask, gc, eos):
    model.generation_config = gc  # transformers 5.x: see ../shared/reference/bench_hf.py
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc,
                             return_dict_in_generate=True, output_scores=gc.num_beams > 1)
    seqs = []
    for row in out.sequences[:, 1:].tolist():
        if eos in row:
            row = row[: row.index(eos) + 1]
        seqs.append(row)
    scores = out.sequences_scores.tolist() if gc.num_beams > 1 else None
    return seqs, scores


def build_family(name, root, seed, check_single, dry=False):
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model, info = FAMILIES[name]()
    model.eval()
    d = os.path.join(root, name)
    state = None
    if name == "t5v11":
        state = {k: v for k, v in model.state_dict().items()
                 if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    if not dry:
        save_hub(model, d, state=state, config_patch=info.get("config_patch"))
        model = type(model).from_pretrained(d, attn_implementation="eager").eval()
    if name == "t5v11" and not dry:
        assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr(), "head tied"
        assert not model.config.scale_decoder_outputs
    cfg = model.config
    eos, pad = info["eos"], info["pad"]

    # ---- teacher-forced padded batch
    lens = [3, 20, 11, 7]
    rows = [info["prefix"] + [rng.randint(info["first_id"], info["last_id"])
                              for _ in range(L - len(info["prefix"]) - len(info["suffix"]))]
            + info["suffix"] for L in lens]
    ids, mask = pad_batch(rows, pad)
    dec = torch.tensor([[info["start"]] + [rng.randint(info["first_id"], info["last_id"])
                                           for _ in range(DEC_T - 1)] for _ in rows])
    with torch.inference_mode():
        o = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        m64 = copy.deepcopy(model).double()
        o64 = m64(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
    tf_diff = (o.logits.double() - o64.logits).abs().max().item()
    if not dry:
        save_file({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec,
                   "encoder_hidden": o.encoder_last_hidden_state.contiguous(),
                   "logits": o.logits.contiguous()},
                  os.path.join(d, "expected.safetensors"))

    # ---- generation
    lo, hi = 2, 40
    srcs = make_sources(rng, info, N_SRC, lo, hi)
    sids, smask = pad_batch(srcs, pad)
    res = {"family": name, "model_type": cfg.model_type, "pad_token_id": pad,
           "eos_token_id": eos, "decoder_start_token_id": info["start"],
           "transformers": transformers.__version__, "torch": torch.__version__,
           "sources": srcs, "settings": {}}
    stats = {}
    for sname, gc in settings(model).items():
        seqs, scores = gen_ids(model, sids, smask, gc, eos)
        seqs64, _ = gen_ids(m64, sids, smask, copy.deepcopy(gc), eos)
        if seqs64 != seqs:
            bad = [i for i in range(N_SRC) if seqs[i] != seqs64[i]]
            if dry:
                print(f"   {sname}: f32 != f64 on rows {bad}")
                continue
            sys.exit(f"{name}/{sname}: float32 and float64 differ on rows {bad}: chaotic")
        if check_single:
            for i, s in enumerate(srcs):
                one, _ = gen_ids(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long),
                                 copy.deepcopy(gc), eos)
                if one[0] != seqs[i]:
                    sys.exit(f"{name}/{sname}: row {i} alone differs from the padded batch")
        params = {k: getattr(gc, k, None) for k in PARAM_KEYS}
        entry = {"params": params, "output_ids": seqs}
        if scores is not None:
            entry["sequences_scores"] = scores
        res["settings"][sname] = entry
        lens_ = [len(s) for s in seqs]
        stats[sname] = (sum(len(set(s)) for s in seqs) / N_SRC, min(lens_), max(lens_),
                        sum(1 for s in seqs if s and s[-1] == eos))
    size = 0
    if not dry:
        with open(os.path.join(d, "generate.json"), "w") as f:
            json.dump(res, f, indent=None, separators=(",", ":"))
            f.write("\n")
        size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"{name}: tf f32-vs-f64 max|dlogit|={tf_diff:.2e} max|logit|="
          f"{o.logits.abs().max().item():.1f} size={size/1024:.0f} KiB")
    for k, (dist, mn, mx, ne) in stats.items():
        print(f"   {k:13s} distinct/out={dist:5.1f} len {mn}..{mx} ended_with_eos={ne}/{N_SRC}")
    return stats


def write_t5_buckets(root):
    """transformers' T5 relative position buckets for a few (num_buckets, max_distance)
    settings, both directions, relative positions -300..300 (checks the float32 log path)."""
    from transformers.models.t5.modeling_t5 import T5Attention
    rel = torch.arange(-300, 301)
    out = {"relative_positions": rel.tolist(), "cases": []}
    for nb, md in [(32, 128), (8, 20), (16, 32), (32, 64)]:
        for bi in (True, False):
            b = T5Attention._relative_position_bucket(rel, bidirectional=bi, num_buckets=nb,
                                                      max_distance=md)
            out["cases"].append({"num_buckets": nb, "max_distance": md, "bidirectional": bi,
                                 "buckets": b.tolist()})
    with open(os.path.join(root, "t5_buckets.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "models"))
    ap.add_argument("--only", default=",".join(FAMILIES))
    ap.add_argument("--no-single", action="store_true", help="skip the row-alone check")
    a = ap.parse_args()
    torch.set_num_threads(1)
    print("transformers", transformers.__version__, "torch", torch.__version__)
    os.makedirs(a.out, exist_ok=True)
    write_t5_buckets(a.out)
    for i, name in enumerate(FAMILIES):
        if name in a.only.split(","):
            st = build_family(name, a.out, 1000 + i, not a.no_single)
            free = st["greedy_free"]
            if free[0] < 4:
                sys.exit(f"{name}: degenerate output ({free[0]:.1f} distinct tokens/output)")


if __name__ == "__main__":
    main()
