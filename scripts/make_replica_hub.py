#!/usr/bin/env python3
"""Write SMALL replicas of the seven Hugging Face Hub repositories that tomtat's built-in model
manifests (models/*.toml) point to, plus transformers reference outputs, for tomtat's fake-Hub
tests.

A replica has the real repository's file names (per commit), the real config.json /
generation_config.json / tokenizer_config.json / special_tokens_map.json values, random weights
with the real state-dict KEY NAMES, and the real SERIALIZATION (legacy pre-1.6 torch pickle, zip
torch pickle, or safetensors) of the real file at the revision. Only SIZE values are shrunk
(d_model, layers, heads, ffn dims, vocab sizes and the ids that depend on the tokenizer): every
such value is marked `SMALL` below, next to its real value. Sources of every value are the
research notes (docs/hub-replicas/sources-opus-bart-flan.md = "G1",
docs/hub-replicas/sources-vietai-vinai.md = "G2"; they cite the Hub pages);
"inferred" = not seen directly (as the notes say).

Tokenizers are NOT copied: a replica references the small real-format tokenizers committed under
tests/fixtures/tokenizers/ (hub.json maps the repo file name to that path), so tokenizer-dependent
ids (vocab_size, pad / decoder start, language codes) are those of the small tokenizers.

Output (default: tests/fixtures/replicas/, paths in hub.json relative to tests/fixtures/):
  hub.json       {repo: {"revisions": {name: sha}, "commits": {sha: {file: path}}}}
  expected.json  {manifest name: {repo, revision, texts, prefix, source_ids, generated_ids,
                  generate_kwargs, effective_generation}}
  <owner>--<name>/<sha7>/...  the files first written at that commit (later commits reference
                  the earlier path when the file is unchanged)

Small shapes (all models): d_model 6, 2 heads (head dim 3; T5 d_kv 3), ffn 24 (4 x d_model as in
the real models), 2 encoder + 2 decoder layers (distilbart 2 + 1, mirroring its 12 + 6).
d_model 6 (not 16/32) because the committed fixture tree must stay under 1.0 MB: the embedding
tables of the fixed small tokenizers (1,000-1,900 ids) in 8 weight files would be ~820 KB alone at
d_model 16, and d_model 8 came to 1.04 MB. max_position_embeddings / n_positions /
relative-attention buckets keep their REAL values (1026-row learned position tables for BART /
mBART, 512-row sinusoidal table for Marian).
Random init: diversify() from scripts/make_model_fixtures.py plus a boosted EOS logit (bias or
head row); the per-model seeds / scales were searched so that the outputs are diverse, end with a
natural EOS and pass the checks below.

Left out of every replica (huge and irrelevant to tomtat): tf_model.h5, flax_model.msgpack,
rust_model.ot. Also left out: tokenizer.json of flan-t5-base / envit5 / vit5 (no small T5
tokenizer.json fixture exists and no new tokenizer files are created here), facebook/bart-large-cnn
pytorch_model.bin (size budget; its model.safetensors is served), README.md contents (placeholders;
the real text was not captured by the research).

Checks (the script exits non-zero if one fails):
  * AutoModelForSeq2SeqLM.from_pretrained(<resolved replica dir>) loads every weight with no
    missing / unexpected keys (the key names are right); reference outputs come from that model;
  * float64 copies generate the same ids as float32; each text generated alone gives the same ids
    as in the padded batch; outputs are not degenerate;
  * legacy files start with 0x80 0x02 0x8a 0x0a (pickle protocol 2 + torch magic), zip ones b"PK";
  * (if a built tomtat binary exists under target/release or target/debug; never built here)
    `tomtat tokenize --model <resolved dir>` ids == the reference ids (reported, not fatal).

Usage:
  HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error python scripts/make_replica_hub.py
  (python with torch, transformers, sentencepiece, safetensors: shared/reference/README.md)
  ... make_replica_hub.py --full --out /tmp/replicas-full --only opus-mt-vi-en
      (real shapes: d_model / layers / heads / ffn / vocab sizes as published; the tokenizers stay
      the small fixtures, so their ids only use the first rows of the embeddings; writes
      OUT/replicas/hub.json + OUT/tokenizers/ copies; only the load check + a short generate)
"""
import argparse
import collections
import copy
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import diversify  # noqa: E402  (the parity fixtures' re-initialisation)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
DATA = os.environ.get("TOMTAT_DATA", os.path.join(ROOT, "..", "shared", "data"))

FULL = False  # set by --full


def sz(real, small):
    """A size value: the real one with --full, else the small one (every call site is a value
    the small variant changes)."""
    return real if FULL else small


# Small shapes (see the module docstring).
D, H, FF, L = 6, 2, 24, 2

# ----------------------------------------------------------------------------- file contents
# .gitattributes: G1 "Standard 2020 .gitattributes (345 bytes, 8 lines), byte-checked"; +msgpack
# line = 391 B ("add flax model"); +model.safetensors line = 445 B (SFconvertbot).
GITATTR_2020 = (
    "*.bin.* filter=lfs diff=lfs merge=lfs -text\n"
    "*.lfs.* filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    "*.tflite filter=lfs diff=lfs merge=lfs -text\n"
    "*.tar.gz filter=lfs diff=lfs merge=lfs -text\n"
    "*.ot filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n")
GITATTR_FLAX = GITATTR_2020 + "*.msgpack filter=lfs diff=lfs merge=lfs -text\n"
GITATTR_SF = GITATTR_FLAX + "model.safetensors filter=lfs diff=lfs merge=lfs -text\n"
# The 2022/2023 Hub default template (flan 1.43 kB, VietAI 1.38 kB, vinai 1.52 kB in G1/G2):
# content inferred (the standard template of the time; not byte-checked).
_TPL = ["*.7z", "*.arrow", "*.bin", "*.bz2", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet",
        "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "saved_model/**/*", "*.tar.*",
        "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*"]
GITATTR_2022 = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _TPL)
GITATTR_2023 = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n"
                       for p in _TPL[:1] + ["*.ckpt"] + _TPL[1:23] + ["*.safetensors"] + _TPL[23:])


def readme(repo, real_size):
    # README.md: the real text was not captured (G1 gap 7 / G2); placeholder of any size.
    return (f"# {repo} (tomtat test replica)\n\nPlaceholder: the real README.md ({real_size}) is "
            "not reproduced. Random weights; see scripts/make_replica_hub.py.\n")


def jdump(obj, sort=True):
    """transformers' serialisation (G1/G2: `json.dumps(d, indent=2, sort_keys=True) + "\\n"`,
    which reproduced the Hub byte sizes)."""
    return json.dumps(obj, indent=2, sort_keys=sort, ensure_ascii=False) + "\n"


def extra_ids(n):
    return [f"<extra_id_{i}>" for i in range(n)]


TOK = "tokenizers"  # under tests/fixtures/


def sha_of(label):
    """A made-up 40-hex commit sha (real one unknown / not recorded)."""
    return hashlib.sha1(f"tomtat replica commit: {label}".encode()).hexdigest()


# ----------------------------------------------------------------------------- repo specs
# Each spec: repo, manifest name, arch, manifest revision, commits (ordered oldest first) with
# file name -> content (str), ("tok", path under tests/fixtures/tokenizers), or ("weights", fmt),
# revisions (name -> commit key), and how the reference inputs / generate kwargs are made.

def spec_opus():
    V = sz(53739, 1886)  # SMALL: vocab.json of tokenizers/marian-vi-en has 1886 entries (real 53,739, G1)
    PAD = V - 1          # SMALL: <pad> is the last id (Marian converter appends it; G1), real 53738
    cfg = {  # G1 "config.json at 480a394 — RECONSTRUCTED, byte-checked to 1,394 B" (sorted)
        "_name_or_path": "/tmp/Helsinki-NLP/opus-mt-vi-en",  # G1 (pattern of joaogante's TF commits)
        "activation_dropout": 0.0,
        "activation_function": "swish",
        "add_bias_logits": False,
        "add_final_layer_norm": False,
        "architectures": ["MarianMTModel"],
        "attention_dropout": 0.0,
        "bad_words_ids": [[PAD]],  # SMALL (real [[53738]]; Eugenememe/mix-vi-en-4m, G1)
        "bos_token_id": 0,
        "classif_dropout": 0.0,
        "classifier_dropout": 0.0,
        "d_model": sz(512, D),  # SMALL
        "decoder_attention_heads": sz(8, H),  # SMALL
        "decoder_ffn_dim": sz(2048, FF),  # SMALL
        "decoder_layerdrop": 0.0,
        "decoder_layers": sz(6, L),  # SMALL
        "decoder_start_token_id": PAD,  # SMALL (real 53738)
        "decoder_vocab_size": V,  # SMALL (real 53739)
        "dropout": 0.1,
        "encoder_attention_heads": sz(8, H),  # SMALL
        "encoder_ffn_dim": sz(2048, FF),  # SMALL
        "encoder_layerdrop": 0.0,
        "encoder_layers": sz(6, L),  # SMALL
        "eos_token_id": 0,
        "extra_pos_embeddings": V,  # SMALL (real 53739 = vocab size, 2020 converter quirk)
        "forced_eos_token_id": 0,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
        "max_length": 512,
        "max_position_embeddings": 512,  # real (sinusoidal table 512 rows)
        "model_type": "marian",
        "normalize_before": False,
        "normalize_embedding": False,
        "num_beams": 6,  # G1: inferred (no "Changed num_beams to 4" commit on vi-en; 4 vs 6 same bytes)
        "num_hidden_layers": sz(6, L),  # SMALL
        "pad_token_id": PAD,  # SMALL (real 53738)
        "scale_embedding": True,
        "share_encoder_decoder_embeddings": True,
        "static_position_embeddings": True,
        "transformers_version": "4.22.0.dev0",
        "use_cache": True,
        "vocab_size": V,  # SMALL (real 53739)
    }
    # generation_config.json added to main later (joaogante 2023 batch), 293 B shape seen on other
    # opus repos (G1, https://huggingface.co/Helsinki-NLP/opus-mt-urj-en/blob/4b0433f.../generation_config.json)
    gen_main = {"_from_model_config": True, "bad_words_ids": [[PAD]], "bos_token_id": 0,
                "decoder_start_token_id": PAD, "eos_token_id": 0, "forced_eos_token_id": 0,
                "max_length": 512, "num_beams": 6, "pad_token_id": PAD,  # PAD: SMALL
                "transformers_version": "4.27.0.dev0"}
    # metadata.json: G1 gives only some fields (commit bd78196); the rest is inferred.
    meta = {"release": "opus-2020-06-17.zip", "prepro": " normalization + SentencePiece (spm32k,spm32k)",
            "src_alpha2": "vi", "tgt_alpha2": "en", "src_constituents": ["vie"],
            "tgt_constituents": ["eng"], "short_pair": "vi-en", "long_pair": "vie-eng",
            "BLEU": 42.8, "transformers_git_sha": "6bdf998dffa70030e42f512a586f33a15e648edd",
            "port_machine": "brutasse", "port_time": "2020-08-19-00:09"}
    pinned = "480a394bf32c980feb80b58ae04ea95897a2bf82"
    files = {  # G1 "File list at 480a394"; left out: tf_model.h5 (289 MB)
        ".gitattributes": GITATTR_2020,
        "README.md": readme("Helsinki-NLP/opus-mt-vi-en", "2.08 kB"),
        "config.json": jdump(cfg),
        "metadata.json": jdump(meta),
        "pytorch_model.bin": ("weights", "legacy"),  # G1: Aug 19 2020 upload; format 50-50 in G1, legacy per the brief
        "source.spm": ("tok", "marian-vi-en/source.spm"),
        "target.spm": ("tok", "marian-vi-en/target.spm"),
        # G1: 44 B, no trailing newline, inferred from size + en-vi derivatives
        "tokenizer_config.json": '{"target_lang": "eng", "source_lang": "vie"}',
        "vocab.json": ("tok", "marian-vi-en/vocab.json"),
    }
    main = dict(files)
    main["generation_config.json"] = jdump(gen_main)
    return dict(
        name="opus-mt-vi-en", repo="Helsinki-NLP/opus-mt-vi-en", arch="marian",
        manifest_rev=pinned,
        commits=[(pinned, files), (sha_of("Helsinki-NLP/opus-mt-vi-en main"), main)],
        revisions={pinned: pinned, "main": sha_of("Helsinki-NLP/opus-mt-vi-en main")},
        texts="vi", prefix="", gen_kwargs={}, eos=0,
        hp=dict(emb=0.3, qk=0.6, lin=0.4, eos=2.0), seed=2)


def bart_layer_cfg(enc, dec):
    return dict(d_model=sz(1024, D), heads=sz(16, H), ffn=sz(4096, FF), enc=enc, dec=dec)


def spec_distilbart():
    V = sz(50264, 1500)  # SMALL: real 50264 = tokenizer size 50,265 - 1 (<mask> has no row: the CNN quirk, G1); small 1501 - 1
    enc, dec = sz(12, L), sz(6, 1)  # SMALL (12 + 6 real; 2 + 1 keeps encoder != decoder)
    d, h, f = sz(1024, D), sz(16, H), sz(4096, FF)
    # G1 "config.json at 383e433 — RECONSTRUCTED, byte-checked to 1,649 B"; order NOT sorted
    # (sgugger hand-inserted forced_bos_token_id before force_bos_token_to_be_generated).
    cfg = collections.OrderedDict([
        ("_num_labels", 3), ("activation_dropout", 0.0), ("activation_function", "gelu"),
        ("add_bias_logits", False), ("add_final_layer_norm", False),
        ("architectures", ["BartForConditionalGeneration"]), ("attention_dropout", 0.0),
        ("bos_token_id", 0), ("classif_dropout", 0.0),
        ("d_model", d),  # SMALL
        ("decoder_attention_heads", h),  # SMALL
        ("decoder_ffn_dim", f),  # SMALL
        ("decoder_layerdrop", 0.0),
        ("decoder_layers", dec),  # SMALL
        ("decoder_start_token_id", 2), ("dropout", 0.1), ("early_stopping", True),
        ("encoder_attention_heads", h),  # SMALL
        ("encoder_ffn_dim", f),  # SMALL
        ("encoder_layerdrop", 0.0),
        ("encoder_layers", enc),  # SMALL
        ("eos_token_id", 2), ("extra_pos_embeddings", 2),
        ("forced_bos_token_id", 0),  # G1: added by 383e433 (commit diff seen)
        ("force_bos_token_to_be_generated", True),
        ("id2label", {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}), ("init_std", 0.02),
        ("is_encoder_decoder", True), ("label2id", {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}),
        ("length_penalty", 2.0), ("max_length", 142),
        ("max_position_embeddings", 1024),  # real
        ("min_length", 56), ("model_type", "bart"), ("no_repeat_ngram_size", 3),
        ("normalize_before", False), ("normalize_embedding", True), ("num_beams", 4),
        ("num_hidden_layers", enc),  # SMALL (real 12)
        ("output_past", True), ("pad_token_id", 1), ("prefix", " "), ("replacing_rate", 0),
        ("scale_embedding", False), ("static_position_embeddings", False),
        ("student_decoder_layers", None), ("student_encoder_layers", None),  # G1: null (byte count)
        ("task_specific_params", {"summarization": {
            "early_stopping": True, "length_penalty": 2.0, "max_length": 142, "min_length": 56,
            "no_repeat_ngram_size": 3, "num_beams": 4}}),
        ("vocab_size", V),  # SMALL
    ])
    # G1 "config.json on main / refs/pr/18 (after "add flax model") — byte-checked to 1,802 B":
    # sorted, + classifier_dropout, forced_eos_token_id 2, gradient_checkpointing false,
    # transformers_version "4.7.0.dev0" (inferred string), use_cache true.
    cfg_main = dict(cfg)
    cfg_main.update({"classifier_dropout": 0.0, "forced_eos_token_id": 2,
                     "gradient_checkpointing": False, "transformers_version": "4.7.0.dev0",
                     "use_cache": True})
    pinned = "383e433c11aa7e021031350ab8d42abe8b2ecbcd"
    base = {  # G1 "File list at 383e433"; left out: rust_model.ot (1.63 GB)
        ".gitattributes": GITATTR_2020,
        "README.md": readme("sshleifer/distilbart-cnn-12-6", "1.71 kB"),
        "config.json": jdump(cfg, sort=False),
        "merges.txt": ("tok", "bart-bpe/merges.txt"),
        "pytorch_model.bin": ("weights", "legacy"),  # G1: legacy (torch <= 1.5), medium-high confidence
        "tokenizer_config.json": '{"model_max_length": 1024}',  # G1: 26 B, no newline, inferred
        "vocab.json": ("tok", "bart-bpe/vocab.json"),
    }
    # main = a4f8f3e "add flax model" (valhalla; full sha unknown -> made up); left out flax_model.msgpack
    main = dict(base, **{".gitattributes": GITATTR_FLAX, "config.json": jdump(cfg_main)})
    # refs/pr/18 = 6c1a5ba SFconvertbot (full sha unknown -> made up): + model.safetensors (same weights)
    pr18 = dict(main, **{".gitattributes": GITATTR_SF, "model.safetensors": ("weights", "safetensors")})
    s_main, s_pr = sha_of("sshleifer/distilbart-cnn-12-6 main"), sha_of("sshleifer/distilbart-cnn-12-6 refs/pr/18")
    return dict(
        name="distilbart-cnn-12-6", repo="sshleifer/distilbart-cnn-12-6", arch="bart",
        manifest_rev=pinned, commits=[(pinned, base), (s_main, main), (s_pr, pr18)],
        revisions={pinned: pinned, "main": s_main, "refs/pr/18": s_pr},
        texts="en", prefix=" ", gen_kwargs={}, eos=2,
        hp=dict(emb=0.3, qk=0.6, lin=0.3, eos=3.5), seed=1)


def spec_bart_large_cnn():
    V = sz(50264, 1500)  # SMALL: same CNN quirk as distilbart (G1: 50264 vs 50,265 tokenizer entries)
    d, h, f, n = sz(1024, D), sz(16, H), sz(4096, FF), sz(12, L)
    cfg = {  # G1 "config.json (main) — RECONSTRUCTED, byte-checked to 1,585 B" (sorted)
        "_num_labels": 3, "activation_dropout": 0.0, "activation_function": "gelu",
        "add_final_layer_norm": False, "architectures": ["BartForConditionalGeneration"],
        "attention_dropout": 0.0, "bos_token_id": 0, "classif_dropout": 0.0,
        "classifier_dropout": 0.0,
        "d_model": d,  # SMALL
        "decoder_attention_heads": h,  # SMALL
        "decoder_ffn_dim": f,  # SMALL
        "decoder_layerdrop": 0.0,
        "decoder_layers": n,  # SMALL
        "decoder_start_token_id": 2, "dropout": 0.1, "early_stopping": True,
        "encoder_attention_heads": h,  # SMALL
        "encoder_ffn_dim": f,  # SMALL
        "encoder_layerdrop": 0.0,
        "encoder_layers": n,  # SMALL
        "eos_token_id": 2, "force_bos_token_to_be_generated": True, "forced_bos_token_id": 0,
        "forced_eos_token_id": 2, "gradient_checkpointing": False,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}, "init_std": 0.02,
        "is_encoder_decoder": True, "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
        "length_penalty": 2.0, "max_length": 142,
        "max_position_embeddings": 1024,  # real
        "min_length": 56, "model_type": "bart", "no_repeat_ngram_size": 3,
        "normalize_before": False, "num_beams": 4,
        "num_hidden_layers": n,  # SMALL
        "output_past": True, "pad_token_id": 1, "prefix": " ", "scale_embedding": False,
        "task_specific_params": {"summarization": {
            "early_stopping": True, "length_penalty": 2.0, "max_length": 142, "min_length": 56,
            "no_repeat_ngram_size": 3, "num_beams": 4}},
        "transformers_version": "4.7.0.dev0",  # G1: inferred string (length matches)
        "use_cache": True,
        "vocab_size": V,  # SMALL
    }
    gen = {  # G1 "generation_config.json (363 B) — reconstructed from fine-tune copies, byte-checked"
        "_from_model_config": True, "bos_token_id": 0, "decoder_start_token_id": 2,
        "early_stopping": True, "eos_token_id": 2, "forced_bos_token_id": 0,
        "forced_eos_token_id": 2, "length_penalty": 2.0, "max_length": 142, "min_length": 56,
        "no_repeat_ngram_size": 3, "num_beams": 4, "pad_token_id": 1,
        "transformers_version": "4.27.0.dev0"}  # version string inferred (G1)
    s_main = sha_of("facebook/bart-large-cnn main")  # real main ~ ca09a92 (full sha unknown)
    files = {  # G1 "File list (main ≈ ca09a92)"; NO tokenizer_config.json / special_tokens_map.json on main
        # left out: flax_model.msgpack, rust_model.ot, tf_model.h5 (huge) and pytorch_model.bin
        # (1.63 GB real, legacy-era; left out for the fixture size budget: model.safetensors is served)
        ".gitattributes": GITATTR_SF,  # G1: 445 B SFconvertbot version
        "README.md": readme("facebook/bart-large-cnn", "6.01 kB"),
        "config.json": jdump(cfg),
        "generation_config.json": jdump(gen),
        # G1: 363 B too, presumably identical (CostaDelSol's later edit not seen) -> inferred copy
        "generation_config_for_summarization.json": jdump(gen),
        "merges.txt": ("tok", "bart-bpe/merges.txt"),
        "model.safetensors": ("weights", "safetensors"),  # G1: SFconvertbot #63
        "tokenizer.json": ("tok", "bart-tokjson/tokenizer.json"),  # same vocab/merges as bart-bpe
        "vocab.json": ("tok", "bart-bpe/vocab.json"),
    }
    return dict(
        name="bart-large-cnn", repo="facebook/bart-large-cnn", arch="bart", manifest_rev="main",
        commits=[(s_main, files)], revisions={"main": s_main},
        texts="en", prefix=" ", gen_kwargs={}, eos=2,
        hp=dict(emb=0.3, qk=0.6, lin=0.3, eos=3.5), seed=5)


def t5_tok_files(n_extra, tok_cfg):
    """tokenizer_config.json / special_tokens_map.json as in the real repos (sorted, indent 2)."""
    stm = {"additional_special_tokens": extra_ids(n_extra), "eos_token": "</s>",
           "pad_token": "<pad>", "unk_token": "<unk>"}
    return jdump(tok_cfg), jdump(stm)


def spec_flan():
    V = sz(32128, 1128)  # SMALL: real 32128 = 32,100 tokenizer ids rounded up (+28); small 1,100 + 28
    cfg = {  # G1 "config.json — RECONSTRUCTED, byte-checked to 1,404 B" (no dense_act_fn / is_gated_act)
        "architectures": ["T5ForConditionalGeneration"],
        "d_ff": sz(2048, FF),  # SMALL
        "d_kv": sz(64, D // H),  # SMALL
        "d_model": sz(768, D),  # SMALL
        "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0, "is_encoder_decoder": True,
        "layer_norm_epsilon": 1e-06, "model_type": "t5",
        "n_positions": 512,  # real
        "num_decoder_layers": sz(12, L),  # SMALL
        "num_heads": sz(12, H),  # SMALL
        "num_layers": sz(12, L),  # SMALL
        "output_past": True, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,  # real
        "task_specific_params": {
            "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200,
                              "min_length": 30, "no_repeat_ngram_size": 3, "num_beams": 4,
                              "prefix": "summarize: "},
            "translation_en_to_de": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                     "prefix": "translate English to German: "},
            "translation_en_to_fr": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                     "prefix": "translate English to French: "},
            "translation_en_to_ro": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                     "prefix": "translate English to Romanian: "}},
        "tie_word_embeddings": False,
        "transformers_version": "4.23.1",  # G1: inferred string (6 chars)
        "use_cache": True,
        "vocab_size": V,  # SMALL
    }
    gen = {"_from_model_config": True, "decoder_start_token_id": 0, "eos_token_id": 1,
           "pad_token_id": 0, "transformers_version": "4.26.0.dev0"}  # G1: byte-checked 147 B
    # G1 "tokenizer_config.json (2.54 kB) — reconstructed, byte-checked to 2,537 B".
    # All keys kept: special_tokens_map_file points to a path that does not exist (as on the real
    # Hub); transformers ignores it. extra_ids 100 matches the small spiece (1,000 pieces + 100).
    tok_cfg = {"additional_special_tokens": extra_ids(100), "eos_token": "</s>", "extra_ids": 100,
               "model_max_length": 512, "name_or_path": "google/t5-v1_1-base",  # G1: inferred
               "pad_token": "<pad>", "sp_model_kwargs": {},
               "special_tokens_map_file": "/home/younes_huggingface_co/.cache/huggingface/hub/models--google--t5-v1_1-base/snapshots/650d7745bf1e502d6949b22cc19155cd656d3d4e/special_tokens_map.json",
               "tokenizer_class": "T5Tokenizer", "unk_token": "<unk>"}
    tc, stm = t5_tok_files(100, tok_cfg)  # special_tokens_map: G1 byte-checked 2,201 B
    pinned = "c782cba52f8ea6a704240578055cf1c3fc2f2ca9"
    files = {  # G1 "File list at c782cba"; left out: flax_model.msgpack, tf_model.h5,
        # pytorch_model.bin (990 MB zip, T5X conversion; model.safetensors is served),
        # tokenizer.json (2.42 MB; no small T5 tokenizer.json fixture)
        ".gitattributes": GITATTR_2022,
        "README.md": readme("google/flan-t5-base", "13.3 kB"),
        "config.json": jdump(cfg),
        "generation_config.json": jdump(gen),
        "model.safetensors": ("weights", "safetensors"),  # G1: SFconvertbot #9 (drops tied embed_tokens)
        "special_tokens_map.json": stm,
        "spiece.model": ("tok", "t5-spiece/spiece.model"),
        "tokenizer_config.json": tc,
    }
    s_main = sha_of("google/flan-t5-base main")  # later commits only touch README (manifest note)
    files_main = dict(files, **{"README.md": readme("google/flan-t5-base", "main")})
    summ = dict(cfg["task_specific_params"]["summarization"])
    prefix = summ.pop("prefix")
    return dict(
        name="flan-t5-base", repo="google/flan-t5-base", arch="t5", manifest_rev=pinned,
        commits=[(pinned, files), (s_main, files_main)],
        revisions={pinned: pinned, "main": s_main},
        texts="en", prefix=prefix, prefix_file="summarize.txt", gen_kwargs=summ, eos=1,
        untied=True, hp=dict(emb=5.0, qk=0.2, lin=0.7, eos=1.0, rel=6.0), seed=2)


def spec_envit5():
    V = sz(50048, 1048)  # SMALL: real 50000 spm pieces + 48 extra ids (G2); small 1000 + 48
    cfg = {  # G2 "config.json (721 bytes)" reconstruction (byte-exact with a 6-char version)
        "architectures": ["T5ForConditionalGeneration"],
        "d_ff": sz(2048, FF),  # SMALL
        "d_kv": sz(64, D // H),  # SMALL
        "d_model": sz(768, D),  # SMALL
        "decoder_start_token_id": 0, "dense_act_fn": "gelu_new", "dropout_rate": 0.1,
        "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
        "is_encoder_decoder": True, "is_gated_act": True, "layer_norm_epsilon": 1e-06,
        "model_type": "t5",
        "num_decoder_layers": sz(12, L),  # SMALL
        "num_heads": sz(12, H),  # SMALL
        "num_layers": sz(12, L),  # SMALL
        "output_past": True, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,  # real
        "tie_word_embeddings": False, "torch_dtype": "float32",
        "transformers_version": "4.22.0",  # G2: placeholder of the right length (unknown)
        "use_cache": True,
        "vocab_size": V,  # SMALL
    }
    # G2 1.3: tokenizer_config.json best fit (1189 B) / special_tokens_map.json (1109 B), 48 extra ids
    tok_cfg = {"additional_special_tokens": extra_ids(48), "eos_token": "</s>", "extra_ids": 48,
               "pad_token": "<pad>", "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer",
               "unk_token": "<unk>"}
    tc, stm = t5_tok_files(48, tok_cfg)
    s_main = sha_of("VietAI/envit5-translation main")  # real main 840bc88 (full sha only partly known)
    files = {  # G2 1.1 (main); NO generation_config.json; left out flax_model.msgpack, tf_model.h5,
        # tokenizer.json (3.49 MB; no small T5 tokenizer.json fixture)
        ".gitattributes": GITATTR_2022,
        "README.md": readme("VietAI/envit5-translation", "3.68 kB"),
        "config.json": jdump(cfg),
        "pytorch_model.bin": ("weights", "zip"),  # G2: 2022 save -> zip, almost certainly
        "special_tokens_map.json": stm,
        "spiece.model": ("tok", "t5-spiece/spiece.model"),
        "tokenizer_config.json": tc,
    }
    return dict(
        name="envit5-translation", repo="VietAI/envit5-translation", arch="t5",
        manifest_rev="main", commits=[(s_main, files)], revisions={"main": s_main},
        texts="vi", prefix_file="envit5-vi.txt",
        gen_kwargs={"num_beams": 1, "max_length": 512}, eos=1,  # model card (G2 1.6)
        untied=True, hp=dict(emb=5.0, qk=0.2, lin=0.7, eos=1.0, rel=6.0), seed=28)


def spec_vit5():
    V = sz(36096, 1096)  # SMALL: real 36000 pieces + 96 extra ids (G2 2.3); small 1000 + 96
    cfg = {  # G2 "config.json (702 bytes)" reconstruction; no tie_word_embeddings key (tied)
        "architectures": ["T5ForConditionalGeneration"],
        "d_ff": sz(3072, FF),  # SMALL
        "d_kv": sz(64, D // H),  # SMALL
        "d_model": sz(768, D),  # SMALL
        "decoder_start_token_id": 0, "dense_act_fn": "relu", "dropout_rate": 0.1,
        "eos_token_id": 1, "feed_forward_proj": "relu", "initializer_factor": 1.0,
        "is_encoder_decoder": True, "is_gated_act": False, "layer_norm_epsilon": 1e-06,
        "model_type": "t5",
        "n_positions": 512,  # real (legacy key)
        "num_decoder_layers": sz(12, L),  # SMALL
        "num_heads": sz(12, H),  # SMALL
        "num_layers": sz(12, L),  # SMALL
        "output_past": True, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,  # real
        "torch_dtype": "float32",
        "transformers_version": "4.22.0",  # G2: placeholder of the right length
        "use_cache": True,
        "vocab_size": V,  # SMALL
    }
    tok_cfg = {"additional_special_tokens": extra_ids(96), "eos_token": "</s>", "extra_ids": 96,
               "pad_token": "<pad>", "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer",
               "unk_token": "<unk>"}  # G2 2.3 best fit (2197 B); special_tokens_map 2117 B
    tc, stm = t5_tok_files(96, tok_cfg)
    s_main = sha_of("VietAI/vit5-base-vietnews-summarization main")  # real main a54febd (full sha unknown)
    files = {  # G2 2.1; left out flax_model.msgpack, tf_model.h5, tokenizer.json (2.4 MB)
        ".gitattributes": GITATTR_2022,
        "README.md": readme("VietAI/vit5-base-vietnews-summarization", "2.56 kB"),
        "config.json": jdump(cfg),
        "pytorch_model.bin": ("weights", "zip"),
        "special_tokens_map.json": stm,
        "spiece.model": ("tok", "t5-spiece/spiece.model"),
        "tokenizer_config.json": tc,
    }
    return dict(
        name="vit5-base-vietnews-summarization", repo="VietAI/vit5-base-vietnews-summarization",
        arch="t5", manifest_rev="main", commits=[(s_main, files)], revisions={"main": s_main},
        # No prefix: the model card's title says "(No prefix needed)" and VietAI's fine-tuning
        # and evaluation code give the base model none (G2 2.6); models/*.toml agrees.
        texts="vinews", prefix="",
        gen_kwargs={"max_length": 256, "early_stopping": True}, eos=1,  # model card (G2 2.7)
        untied=False, hp=dict(emb=5.0, qk=0.3, lin=1.0, eos=2.0, rel=6.0), seed=2)


MBART_LANGS = ["ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN",
               "hi_IN", "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP",
               "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN"]


def spec_vinai():
    N = spm.SentencePieceProcessor(
        model_file=os.path.join(FIXTURES, TOK, "mbart-spm/sentencepiece.bpe.model")).get_piece_size()
    # SMALL: vocab_size = spm pieces + 27 (fairseq layout, G2 3.4). Real: 5 digits, ~66,900 +- 200
    # (G2: inferred from file sizes); --full uses 66900 (inferred).
    V = sz(66900, N + 27)
    d, h, f, n = sz(1024, D), sz(16, H), sz(4096, FF), sz(12, L)
    cfg = {  # G2 3.2 reconstruction (1.41 kB; en2vi-v2 twin re-saved by a fine-tune)
        "_num_labels": 3, "activation_dropout": 0.0, "activation_function": "gelu",
        "add_bias_logits": False, "add_final_layer_norm": True,
        "architectures": ["MBartForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": 0, "classif_dropout": 0.0, "classifier_dropout": 0.0,
        "d_model": d,  # SMALL
        "decoder_attention_heads": h,  # SMALL
        "decoder_ffn_dim": f,  # SMALL
        "decoder_layerdrop": 0.0,
        "decoder_layers": n,  # SMALL
        "dropout": 0.1,
        "encoder_attention_heads": h,  # SMALL
        "encoder_ffn_dim": f,  # SMALL
        "encoder_layerdrop": 0.0,
        "encoder_layers": n,  # SMALL
        "eos_token_id": 2, "forced_eos_token_id": 2, "gradient_checkpointing": False,
        "id2label": {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}, "init_std": 0.02,
        "is_encoder_decoder": True, "label2id": {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
        "max_length": 1024,
        "max_position_embeddings": 1024,  # real
        "model_type": "mbart", "normalize_before": True, "normalize_embedding": True,
        "num_beams": 5,
        "num_hidden_layers": n,  # SMALL
        "output_past": True, "pad_token_id": 1, "scale_embedding": True,
        "static_position_embeddings": False,
        # G2: vestige of mbart-large-cc25 (250020 = cc25's ro_RO); kept verbatim, it is not an id
        # of this vocabulary in the real file either
        "task_specific_params": {"translation_en_to_ro": {"decoder_start_token_id": 250020}},
        "tokenizer_class": "MBartTokenizer", "torch_dtype": "float32",
        "transformers_version": "4.33.2",  # G2: 6-char, most likely 4.33.2
        "use_cache": True,
        "vocab_size": V,  # SMALL
    }
    gen = {"_from_model_config": True, "bos_token_id": 0, "eos_token_id": 2,
           "forced_eos_token_id": 2, "max_length": 1024, "num_beams": 5, "pad_token_id": 1,
           "transformers_version": "4.33.2"}  # G2 3.3 (200 B, byte-exact)
    s_main = sha_of("vinai/vinai-translate-vi2en-v2 main")  # real main probably ae7baa8... (G2, inferred)
    files = {  # G2 3.1: NO tokenizer_config / special_tokens_map / tokenizer.json / tf / flax
        ".gitattributes": GITATTR_2023,
        "README.md": readme("vinai/vinai-translate-vi2en-v2", "1.33 kB"),
        "config.json": jdump(cfg),
        "generation_config.json": jdump(gen),
        "pytorch_model.bin": ("weights", "zip"),  # G2: Nov 2023 (torch 2.x) -> zip
        "sentencepiece.bpe.model": ("tok", "mbart-spm/sentencepiece.bpe.model"),
    }
    n_pieces = N  # small tokenizer's pieces (ids below depend on the small tokenizer, not on V)
    en_xx = n_pieces + 1 + MBART_LANGS.index("en_XX")
    return dict(
        name="vinai-translate-vi2en-v2", repo="vinai/vinai-translate-vi2en-v2", arch="mbart",
        manifest_rev="main", commits=[(s_main, files)], revisions={"main": s_main},
        texts="vi", prefix="", n_pieces=n_pieces,
        # model card (G2 3.6): decoder_start en_XX, num_return_sequences 1, 5 beams, early stopping
        gen_kwargs={"decoder_start_token_id": en_xx, "num_return_sequences": 1, "num_beams": 5,
                    "early_stopping": True}, eos=2,
        hp=dict(emb=0.5, qk=0.8, lin=1.2, eos=2.5), seed=19)


SPECS = [spec_opus, spec_distilbart, spec_bart_large_cnn, spec_flan, spec_envit5, spec_vit5,
         spec_vinai]


# ----------------------------------------------------------------------------- texts
def texts_for(kind):
    if kind == "vi":  # first tst2012.vi lines of 5..20 words
        out = []
        for line in open(os.path.join(DATA, "iwslt15", "tst2012.vi"), encoding="utf-8"):
            w = line.split()
            if 5 <= len(w) <= 20:
                out.append(" ".join(w))
            if len(out) == 4:
                return out
    if kind == "en":  # 2-3 first sentences (of >= 6 words) of CNN/DM articles 1..3
        import re
        rows = list(csv.DictReader(open(os.path.join(DATA, "cnndm", "cnndm-100.csv"), encoding="utf-8")))
        out = []
        for r, k in zip(rows[1:4], (2, 3, 2)):
            sents = [s for s in re.split(r"(?<=[.!?])\s+", r["article"]) if len(s.split()) >= 6]
            out.append(" ".join(sents[:k]))
        return out
    if kind == "vinews":  # first 2 body sentences of VietNews val records 0..2
        out = []
        for line in open(os.path.join(DATA, "vietnews", "val300.jsonl"), encoding="utf-8"):
            out.append(" ".join(json.loads(line)["body_sentences"][:2]))
            if len(out) == 3:
                return out
    raise ValueError(kind)


# ----------------------------------------------------------------------------- weights
def make_model(spec, cfg_dir):
    cfg = AutoConfig.from_pretrained(cfg_dir)
    torch.manual_seed(spec["seed"])
    m = AutoModelForSeq2SeqLM.from_config(cfg).eval()
    hp, eos = spec["hp"], spec["eos"]
    with torch.no_grad():
        if spec["arch"] == "t5":
            diversify(m, 1.0, hp["qk"], hp["lin"], rel_std=hp["rel"], row_norm=hp["emb"])
            if spec["untied"]:
                V, d = m.shared.weight.shape
                m.lm_head.weight = torch.nn.Parameter(torch.randn(V, d) * 0.3)
                m.lm_head.weight[eos] += hp["eos"] * m.lm_head.weight[eos].sign()
            else:
                m.shared.weight[eos] *= hp["eos"]
        else:
            diversify(m, hp["emb"], hp["qk"], hp["lin"])
            m.final_logits_bias.normal_(0, 0.1)
            m.final_logits_bias[0, eos] += hp["eos"]
    return m


# Tied alias names (all share model.shared's storage) per family, and the module before which a
# missing alias is inserted (the order of the 2020 / 2022 state_dict()).
ALIASES = {
    "marian": {"model.encoder.embed_tokens.weight": "model.encoder.",
               "model.decoder.embed_tokens.weight": "model.decoder.", "lm_head.weight": None},
    "bart": {"model.encoder.embed_tokens.weight": "model.encoder.",
             "model.decoder.embed_tokens.weight": "model.decoder.", "lm_head.weight": None},
    "mbart": {"model.encoder.embed_tokens.weight": "model.encoder.",
              "model.decoder.embed_tokens.weight": "model.decoder.", "lm_head.weight": None},
    "t5": {"encoder.embed_tokens.weight": "encoder.", "decoder.embed_tokens.weight": "decoder.",
           "lm_head.weight": None},
}


def full_state_dict(model, spec):
    """state_dict with every tied alias present (sharing the embedding's storage), in module
    order: what save_pretrained's torch.save wrote in transformers 3.x / 4.2x."""
    sd = model.state_dict()
    meta = sd._metadata
    arch = spec["arch"]
    shared_key = "shared.weight" if arch == "t5" else "model.shared.weight"
    shared = sd[shared_key]
    keys = [k for k in sd if k not in ALIASES[arch]]
    for alias, before in ALIASES[arch].items():
        if alias == "lm_head.weight":
            keys.append(alias)
            continue
        i = next(j for j, k in enumerate(keys) if k.startswith(before))
        keys.insert(i, alias)
    out = collections.OrderedDict()
    for k in keys:
        if k == "lm_head.weight" and spec.get("untied"):
            out[k] = sd[k]
            assert out[k].data_ptr() != shared.data_ptr()
        elif k in ALIASES[arch]:
            out[k] = shared
        else:
            out[k] = sd[k]
    out._metadata = meta
    return out


def weights_for(fmt, full_sd, spec):
    arch = spec["arch"]
    if fmt == "legacy":
        # 2020 (transformers 3.x) Bart-based checkpoints: no lm_head.weight (logits computed with
        # F.linear on the shared weight); embed_tokens saved under both names (one storage),
        # positions (learned or sinusoidal) and final_logits_bias saved (G1).
        sd = collections.OrderedDict((k, v) for k, v in full_sd.items() if k != "lm_head.weight")
    elif fmt == "zip":
        # transformers 4.18+ save_pretrained: shard_checkpoint() copies the state dict into a
        # plain dict (no _metadata) that torch.save writes; every name kept (inferred from the
        # 4.22 / 4.33 code)
        return dict(full_sd)
    elif fmt == "safetensors":
        # SFconvertbot de-duplicates shared tensors, dropping the tied alias names (keeps
        # [model.]shared.weight; an untied T5 lm_head stays) (G1, inferred).
        drop = set(ALIASES[arch])
        if spec.get("untied"):
            drop.discard("lm_head.weight")
        return collections.OrderedDict((k, v.contiguous().clone()) for k, v in full_sd.items()
                                       if k not in drop)
    else:
        raise ValueError(fmt)
    # keep the _metadata of the modules that own a saved tensor (and their parents)
    meta = collections.OrderedDict()
    for p, v in full_sd._metadata.items():
        if p == "" or any(k.startswith(p + ".") for k in sd):
            meta[p] = v
    sd._metadata = meta
    return sd


def legacy_save(obj, path):
    """torch.save(obj, path, _use_new_zipfile_serialization=False), made deterministic: torch's
    legacy writer names each storage by its memory address (str(storage._cdata)); here the names
    are fake 14-digit addresses in first-use order (so the storages are also written in that
    order). Otherwise byte-for-byte the same stream (torch/serialization.py _legacy_save)."""
    import pickle
    from torch import serialization as ser
    keys, storages = {}, {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, torch.storage.TypedStorage):
                st = o._untyped_storage
                key = keys.setdefault(st._cdata, str(94_000_000_000_000 + 65_536 * len(keys)))
                storages.setdefault(key, (st, o.dtype))
                return ("storage", getattr(torch, o._pickle_storage_type()), key,
                        ser.location_tag(st), o._size(), None)
            if torch.is_storage(o):
                raise TypeError("untyped storage")
            return None

    sys_info = {"protocol_version": ser.PROTOCOL_VERSION,
                "little_endian": sys.byteorder == "little",
                "type_sizes": {"short": ser.SHORT_SIZE, "int": ser.INT_SIZE,
                               "long": ser.LONG_SIZE}}
    with open(path, "wb") as f:
        pickle.dump(ser.MAGIC_NUMBER, f, protocol=2)
        pickle.dump(ser.PROTOCOL_VERSION, f, protocol=2)
        pickle.dump(sys_info, f, protocol=2)
        Pickler(f, protocol=2).dump(obj)
        order = sorted(storages)
        pickle.dump(order, f, protocol=2)
        f.flush()
        for k in order:
            st, dtype = storages[k]
            st._write_file(f, ser._should_read_directly(f), True,
                           torch._utils._element_size(dtype))


def write_weights(path, fmt, sd):
    if fmt == "safetensors":
        save_file(dict(sd), path, metadata={"format": "pt"})
        return
    if fmt == "legacy":
        legacy_save(sd, path)
    else:
        torch.save(sd, path)
    head = open(path, "rb").read(4)
    if fmt == "legacy" and head != b"\x80\x02\x8a\x0a":
        sys.exit(f"{path}: not a legacy torch file (starts {head!r})")
    if fmt == "zip" and head[:2] != b"PK":
        sys.exit(f"{path}: not a zip torch file (starts {head!r})")


# ----------------------------------------------------------------------------- reference
def source_ids(spec, tok, texts):
    if spec["arch"] == "mbart":
        # transformers 5.x re-models the BPE file wrongly: fairseq layout by hand (G2 3.4):
        # spm id + 1 (but spm's <unk>/<s>/</s> map to 3/0/2), then </s> = 2, then vi_VN.
        sp = spm.SentencePieceProcessor(
            model_file=os.path.join(FIXTURES, TOK, "mbart-spm/sentencepiece.bpe.model"))
        special = {sp.unk_id(): 3, sp.bos_id(): 0, sp.eos_id(): 2}
        vi_vn = spec["n_pieces"] + 1 + MBART_LANGS.index("vi_VN")
        return [[special.get(i, i + 1) for i in sp.encode(t)] + [2, vi_vn] for t in texts]
    return [tok(spec["prefix"] + t).input_ids for t in texts]


def pad_batch(rows, pad):
    S = max(len(r) for r in rows)
    ids = torch.full((len(rows), S), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), S), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def generate(model, rows, pad, eos, kwargs):
    ids, mask = pad_batch(rows, pad)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, **copy.deepcopy(kwargs))
    seqs = []
    for row in out[:, 1:].tolist():  # without the decoder start token
        if eos in row:
            row = row[:row.index(eos) + 1]
        else:  # no EOS (max length): strip padding after the end, if any
            while row and row[-1] == pad and pad != eos:
                row.pop()
        seqs.append(row)
    return seqs


GEN_KEYS = ["num_beams", "max_length", "min_length", "length_penalty", "no_repeat_ngram_size",
            "early_stopping", "bad_words_ids", "forced_bos_token_id", "forced_eos_token_id",
            "decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id",
            "num_return_sequences", "do_sample"]


def effective_generation(model, kwargs):
    gc = copy.deepcopy(model.generation_config)
    gc.update(**copy.deepcopy(kwargs))
    return {k: getattr(gc, k, None) for k in GEN_KEYS}


def tomtat_ids(dirname, lines):
    """ids from a built tomtat binary (never built here), or None."""
    for b in ("release", "debug"):
        exe = os.path.join(ROOT, "target", b, "tomtat")
        if os.path.exists(exe):
            try:
                r = subprocess.run([exe, "tokenize", "-q", "--ids-only", "--model", dirname],
                                   input="\n".join(lines) + "\n", capture_output=True, text=True,
                                   timeout=120)
            except Exception as e:  # noqa: BLE001
                return f"error: {e}"
            if r.returncode != 0:
                return f"error: {r.stderr.strip()[:300]}"
            return [json.loads(x)["ids"] for x in r.stdout.splitlines() if x.strip()]
    return None


# ----------------------------------------------------------------------------- driver
def resolve_dir(files_map, fix_root, dst):
    os.makedirs(dst, exist_ok=True)
    for name, rel in files_map.items():
        shutil.copyfile(os.path.join(fix_root, rel), os.path.join(dst, name))
    return dst


def read_prefix(spec):
    if "prefix_file" in spec:
        return open(os.path.join(ROOT, "prompts", spec["prefix_file"]), encoding="utf-8").read()
    return spec["prefix"]


def build(spec, fix_root, hub, expected, check_single, tmp):
    repo, arch = spec["repo"], spec["arch"]
    rdir = repo.replace("/", "--")
    written = {}  # content key -> path (a file unchanged at a later commit is referenced)
    model = None
    full_sd = None
    commits = {}
    cfg_probe = os.path.join(tmp, rdir + "-cfg")
    first_files = spec["commits"][0][1]
    os.makedirs(cfg_probe, exist_ok=True)
    with open(os.path.join(cfg_probe, "config.json"), "w", encoding="utf-8") as f:
        f.write(first_files["config.json"])
    model = make_model(spec, cfg_probe)
    full_sd = full_state_dict(model, spec)
    for sha, files in spec["commits"]:
        cdir = os.path.join("replicas", rdir, sha[:7])
        fm = {}
        for name, content in sorted(files.items()):
            if isinstance(content, tuple) and content[0] == "tok":
                fm[name] = f"{TOK}/{content[1]}"
                continue
            key = (name, content if isinstance(content, str) else content[1])
            if key not in written:
                rel = f"{cdir}/{name}"
                path = os.path.join(fix_root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if isinstance(content, str):
                    with open(path, "w", encoding="utf-8", newline="") as f:
                        f.write(content)
                else:
                    write_weights(path, content[1], weights_for(content[1], full_sd, spec))
                written[key] = rel.replace(os.sep, "/")
            fm[name] = written[key]
        commits[sha] = fm
    hub[repo] = {"revisions": dict(sorted(spec["revisions"].items())), "commits": commits}
    del model, full_sd

    # ---- reference from the files as written (manifest revision)
    rev_sha = spec["revisions"][spec["manifest_rev"]]
    d = resolve_dir(commits[rev_sha], fix_root, os.path.join(tmp, rdir))
    model, info = AutoModelForSeq2SeqLM.from_pretrained(d, output_loading_info=True,
                                                        attn_implementation="eager")
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    if bad:
        sys.exit(f"{repo}: loading the replica: {bad}")
    if spec.get("untied"):
        assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr(), "lm_head tied"
    else:
        emb = model.shared.weight if arch == "t5" else model.model.shared.weight
        assert model.lm_head.weight.data_ptr() == emb.data_ptr(), "lm_head not tied"
    spec["prefix"] = read_prefix(spec)
    texts = texts_for(spec["texts"])
    tok = None
    if arch != "mbart":
        tok = AutoTokenizer.from_pretrained(d)
    else:  # the model card's tokenizer must at least load (its ids are not used, see source_ids)
        AutoTokenizer.from_pretrained(d, src_lang="vi_VN")
    rows = source_ids(spec, tok, texts)
    V = model.config.vocab_size
    assert all(0 <= i < V for r in rows for i in r), f"{repo}: source id out of the vocab"
    tt = tomtat_ids(d, [spec["prefix"] + t for t in texts])
    tomtat_note = "not checked (no built tomtat binary)"
    if isinstance(tt, list) and arch == "mbart" and len(tt) == len(rows) and all(
            a[:-1] == b[:-1] for a, b in zip(tt, rows)):
        # the vinai repo has no tokenizer_config.json: on a bare directory, tomtat tokenize (like
        # MBartTokenizer without src_lang) appends the default language code en_XX
        tomtat_note = (f"tomtat tokenize ids == reference except the trailing language code "
                       f"({tt[0][-1]} = default en_XX, reference vi_VN {rows[0][-1]})")
    elif isinstance(tt, list):
        tomtat_note = "tomtat tokenize ids == reference" if tt == rows else \
            f"MISMATCH tomtat tokenize: rows {[i for i in range(len(rows)) if i >= len(tt) or tt[i] != rows[i]]}"
    elif isinstance(tt, str):
        tomtat_note = tt
    pad, eos = model.config.pad_token_id, spec["eos"]
    kw = spec["gen_kwargs"]
    if FULL:
        out = generate(model, rows, pad, eos, dict(kw, max_new_tokens=5, max_length=None))
        print(f"{spec['name']}: full-size load + generate ok ({sum(p.numel() for p in model.parameters())/1e6:.1f}M params), {tomtat_note}")
        return
    gen = generate(model, rows, pad, eos, kw)
    m64 = copy.deepcopy(model).double()
    gen64 = generate(m64, rows, pad, eos, kw)
    if gen64 != gen:
        sys.exit(f"{repo}: float32 and float64 differ on rows "
                 f"{[i for i in range(len(gen)) if gen[i] != gen64[i]]}: pick another seed")
    if check_single:
        for i, r in enumerate(rows):
            if generate(model, [r], pad, eos, kw)[0] != gen[i]:
                sys.exit(f"{repo}: text {i} alone differs from the padded batch")
    distinct = [len(set(g)) for g in gen]
    if min(distinct) < 4 or len({tuple(g) for g in gen}) < len(gen):
        sys.exit(f"{repo}: degenerate outputs {gen}")
    expected[spec["name"]] = {
        "repo": repo, "revision": spec["manifest_rev"], "texts": texts, "prefix": spec["prefix"],
        "source_ids": rows, "generated_ids": gen, "generate_kwargs": kw,
        "effective_generation": effective_generation(model, kw)}
    print(f"{spec['name']:34s} src len {[len(r) for r in rows]} out len {[len(g) for g in gen]} "
          f"distinct {distinct} ended_eos {sum(1 for g in gen if g and g[-1] == eos)}/{len(gen)}; {tomtat_note}")


def pad_vocabs(tok_root):
    """--full: the Marian and BART vocab.json copies padded to the real vocabulary sizes, so
    that every id a real-shape model can generate decodes (the small tokenizers' own pieces keep
    their ids; the last special token moves to the real last id, as in the real files: Marian
    <pad> = 53738, BART <mask> = 50264). Dummy pieces are never produced by the small
    sentencepiece / BPE models. The T5 / mBART tokenizer copies stay small."""
    def pad(path, last, size, dummy):
        vocab = json.load(open(path, encoding="utf-8"))
        assert vocab[last] == len(vocab) - 1, (path, last)
        del vocab[last]
        i = 0
        while len(vocab) < size - 1:
            vocab.setdefault(dummy(i), len(vocab))
            i += 1
        vocab[last] = size - 1
        with open(path, "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)

    def letters(i):
        s = ""
        while True:
            s = chr(ord("a") + i % 26) + s
            i //= 26
            if not i:
                return s
    # opus-mt-vi-en config.json: vocab_size 53739, pad 53738 (G1)
    pad(os.path.join(tok_root, "marian-vi-en", "vocab.json"), "<pad>", 53739,
        lambda i: "▁qzx" + letters(i))
    # BART CNN: vocab.json has 50265 entries, <mask> = 50264 (G1)
    pad(os.path.join(tok_root, "bart-bpe", "vocab.json"), "<mask>", 50265,
        lambda i: "ĠQZX" + letters(i).upper())


def main():
    global FULL
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="fixtures root: writes OUT/replicas/ (default tests/fixtures; "
                    "with --full required, and tokenizer fixtures are copied to OUT/tokenizers/)")
    ap.add_argument("--full", action="store_true", help="real shapes (not committed)")
    ap.add_argument("--only", default="", help="comma-separated manifest names")
    ap.add_argument("--no-single", action="store_true", help="skip the text-alone check")
    a = ap.parse_args()
    FULL = a.full
    if FULL and not a.out:
        ap.error("--full needs --out")
    fix_root = os.path.abspath(a.out or FIXTURES)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir = os.path.join(fix_root, "replicas")
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    if fix_root != os.path.abspath(FIXTURES):
        dst = os.path.join(fix_root, TOK)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        shutil.copytree(os.path.join(FIXTURES, TOK), dst,
                        ignore=shutil.ignore_patterns("expected"))
        if FULL:
            pad_vocabs(dst)
    only = set(filter(None, a.only.split(",")))
    hub, expected = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mk in SPECS:
            spec = mk()
            if only and spec["name"] not in only:
                continue
            build(spec, fix_root, hub, expected, not a.no_single, tmp)
    with open(os.path.join(out_dir, "hub.json"), "w", encoding="utf-8") as f:
        f.write(jdump(hub))
    if not FULL:
        with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
            # one line per model entry and field (compact: the fixture size budget)
            f.write("{\n" + ",\n".join(
                json.dumps(name, ensure_ascii=False) + ": {\n" + ",\n".join(
                    f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, separators=(',', ':'))}"
                    for k, v in e.items()) + "\n}" for name, e in expected.items()) + "\n}\n")
    total = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(out_dir) for x in fs)
    print(f"{out_dir}: {total} bytes ({total/1e6:.3f} MB)")


if __name__ == "__main__":
    main()
