#!/usr/bin/env python3
"""Same-run CPU speed comparison: tomtat vs transformers vs CTranslate2 (NOT run in CI).

For one model dir (e.g. made by `tomtat random-model --shape opus-mt-vi-en --out DIR`) this
runs, each engine in its own subprocess under /usr/bin/time -v (peak RSS of that process):
  hf           transformers generate(), float32 (torch threads = T, interop 1)
  ct2 float32  ctranslate2.Translator, compute_type float32 (inter 1, intra T)
  ct2 int8     ctranslate2.Translator on the int8 conversion, compute_type int8
  tomtat f32   target/release/tomtat --threads T generate --ids ... (sources on stdin)
  tomtat q8    the same with --quantize q8
for every threads x beams combination asked, interleaved (beams, then threads, then engines)
so that all ratios come from one session on this shared machine.

Workloads (tok/s = sources x new tokens / wall time of ONE generate call; beams do not
multiply the count; output length forced: min_new_tokens = max_new_tokens = new, no forced
EOS/BOS, no n-gram blocking, length_penalty 1, early_stopping off):
  w1   32 sources x 30 tokens (29 random ids + </s>), 30 new tokens   (translation shapes)
  s8   8 sources x 512 tokens (511 + </s>), 60 new tokens             (summarization shapes)
  Default: s8 for BART-family configs with d_model >= 1024 (distilbart-cnn-12-6,
  bart-large-cnn), else w1. s8 keeps 8 (not 16) sources: a 12-layer d=1024 encoder over
  16 x 512 tokens takes tens of seconds per call on one core, x (1 warm-up + runs) x engines.
hf and ct2: one process per config, 1 warm-up call then `runs` timed calls in it, median.
tomtat: the same, through `tomtat bench --inputs` (1 warm-up generate() then `runs` timed
ones in one process, same ids); plus one `tomtat generate --ids` call for the ids when hf
ran. (Until 2026-11-27 every tomtat call was its own process, the first generate() of the
process: cold caches and allocator, ~0.3 s slower on opus-mt W1 beam 4.)

Files: the model dir is left untouched. A view dir DIR-bench-WORKLOAD is made beside it:
symlinks to config.json, model.safetensors (and tokenizer files, if any) plus
  config.json             a copy with "normalize_before": false for BART configs lacking it
                          (ctranslate2's converter reads that legacy key);
  generation_config.json  the model's, with the workload's neutral decoding settings;
  bench_inputs.json       ids + token strings (written once, seeded; not overwritten);
  tokenizer.json ...      a WordLevel tokenizer with the model's special ids and names w<i>,
                          only when DIR has no tokenizer (the CTranslate2 converter needs one).
CTranslate2 conversions go to DIR-ct2-float32 and DIR-ct2-int8 (made once, with
ct2-transformers-converter from this Python's bin dir).

Agreement: tomtat's generated ids are compared with transformers' for the same beams and
threads (rows identical / sources, and identical tokens); ct2 float32 likewise, as a note.

Usage (repo root, after `cargo build --release`):
  HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error /work/pyref/bin/python scripts/bench_compare.py \
      /work/bench-models/opus-mt-vi-en [--workload w1] [--threads 1,2] [--beams 1,4] \
      [--runs 3] [--engines hf,ct2-float32,ct2-int8,tomtat-f32,tomtat-q8] \
      [--bin target/release/tomtat] [--results /work/bench-models/bench_results.jsonl] \
      [--probe 5] [--note TEXT] [--prepare-only]
Prints a Markdown table and appends one JSON line per measured config (plus probe lines) to
--results.
"""
import argparse
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.path.join(ROOT, "..", "shared", "reference", "cpu_probe.py")
ENGINES = ["hf", "ct2-float32", "ct2-int8", "tomtat-f32", "tomtat-q8"]
WORKLOADS = {"w1": (32, 30, 30), "s8": (8, 512, 60)}  # sources, source len (with </s>), new
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "source.spm", "target.spm", "spiece.model",
                   "sentencepiece.bpe.model")
GEN_LINE = re.compile(r"generate: (\d+) tokens in ([0-9.]+) s")
RSS_LINE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


# ------------------------------------------------------------------ children (measured)
def forced_generation_config(model, beams, new):
    """A copy of `model`'s generation config in which every output is exactly `new` tokens
    (min = max new tokens; no forced BOS/EOS, n-gram blocking or repetition penalty; length
    penalty 1, no early stopping), installed on the model: transformers 5 refills None fields
    of a generate(generation_config=...) argument from the model's own config. Also used by
    gpu_bench_hf.py. `tomtat bench` forces the same (src/cli/bench.rs)."""
    import copy

    gc = copy.deepcopy(model.generation_config)
    gc.num_beams = beams
    gc.do_sample = False
    gc.min_new_tokens = new
    gc.max_new_tokens = new
    gc.max_length = None
    gc.min_length = None
    gc.forced_eos_token_id = None
    gc.forced_bos_token_id = None
    gc.no_repeat_ngram_size = None
    gc.repetition_penalty = None
    gc.early_stopping = False
    gc.length_penalty = 1.0
    gc.num_return_sequences = 1
    model.generation_config = gc
    return gc


def child_hf(a):
    """bench_hf.py logic: torch float32 generate(), median of timed calls after warm-up."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    model = AutoModelForSeq2SeqLM.from_pretrained(a.model).eval()
    inp = json.load(open(os.path.join(a.model, "bench_inputs.json")))
    ids = torch.tensor(inp["ids"], dtype=torch.long)
    mask = torch.ones_like(ids)
    gc = forced_generation_config(model, a.beams, a.new)
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.runs):
            t = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
            if i >= a.warmup:
                times.append(time.perf_counter() - t)
    gen = out[:, 1:].tolist()  # drop the decoder start token
    print(json.dumps({"runs_s": times, "ids": gen, "version": "torch " + torch.__version__}))


def child_ct2(a):
    """bench_ct2.py logic: Translator.translate_batch with forced decoding length."""
    import ctranslate2

    tr = ctranslate2.Translator(a.model, device="cpu", compute_type=a.compute_type,
                                inter_threads=1, intra_threads=a.threads)
    inp = json.load(open(os.path.join(a.inputs, "bench_inputs.json")))
    times = []
    for i in range(a.warmup + a.runs):
        t = time.perf_counter()
        res = tr.translate_batch(inp["tokens"], beam_size=a.beams, max_batch_size=0,
                                 min_decoding_length=a.new, max_decoding_length=a.new,
                                 num_hypotheses=1, return_scores=False, length_penalty=1.0)
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    vocab_file = os.path.join(a.model, "shared_vocabulary.json")
    if not os.path.exists(vocab_file):
        vocab_file = os.path.join(a.model, "target_vocabulary.json")
    vocab = {t: i for i, t in enumerate(json.load(open(vocab_file)))}
    ids = [[vocab[t] for t in r.hypotheses[0]] for r in res]
    print(json.dumps({"runs_s": times, "ids": ids, "compute_type": tr.compute_type,
                      "version": "ctranslate2 " + ctranslate2.__version__}))


# ------------------------------------------------------------------ preparation
def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)


def default_workload(cfg):
    big_bart = cfg.get("model_type") in ("bart", "mbart") and cfg.get("d_model", 0) >= 1024
    return "s8" if big_bart else "w1"


def special_ids(cfg):
    """pad/eos/bos/unk ids as the model's config names them; unk = lowest free id."""
    sp = {}
    for name, key in (("pad", "pad_token_id"), ("eos", "eos_token_id"),
                      ("bos", "bos_token_id"), ("start", "decoder_start_token_id")):
        v = cfg.get(key)
        if isinstance(v, list):
            v = v[0] if v else None
        if v is not None:
            sp[name] = int(v)
    taken = set(sp.values())
    sp["unk"] = next(i for i in range(len(taken) + 1) if i not in taken)
    return sp


def input_id_range(cfg, sp):
    """Non-special ids, as the reference rand_inputs draws them."""
    vocab = int(cfg["vocab_size"])
    low = max(v for v in sp.values() if v < 16) + 1
    high = vocab
    if sp.get("pad") == vocab - 1:  # Marian: <pad> is the last row
        high = vocab - 1
    if cfg.get("model_type") in ("bart", "mbart"):
        high = vocab - 1  # reference keeps the last id for <mask>
    if cfg.get("model_type") == "t5":
        high = min(vocab, 32000)  # the rows after the sentencepiece vocab are <extra_id_*>
    return low, high


def write_wordlevel_tokenizer(view, cfg, sp):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    names = {"pad": "<pad>", "eos": "</s>", "unk": "<unk>", "bos": "<s>"}
    by_id = {}
    for kind in ("unk", "bos", "pad", "eos"):  # later kinds win a shared id (Marian bos=eos)
        if kind in sp:
            by_id[sp[kind]] = names[kind]
    vocab = {by_id.get(i, "w%d" % i): i for i in range(int(cfg["vocab_size"]))}
    tk = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = WhitespaceSplit()
    kw = {f"{k}_token": by_id[sp[k]] for k in ("pad", "eos", "unk", "bos") if k in sp}
    PreTrainedTokenizerFast(tokenizer_object=tk, **kw).save_pretrained(view)


def neutral_generation_config(model_dir, new):
    path = os.path.join(model_dir, "generation_config.json")
    gc = load_json(path) if os.path.exists(path) else {}
    for k in ("max_length", "min_length", "forced_eos_token_id", "forced_bos_token_id",
              "no_repeat_ngram_size", "repetition_penalty", "num_beams"):
        gc.pop(k, None)
    gc.update(min_new_tokens=new, max_new_tokens=new, do_sample=False, early_stopping=False,
              length_penalty=1.0, num_return_sequences=1)
    return gc


def prepare_view(model_dir, workload, seed):
    """DIR-bench-WORKLOAD: symlinked weights + neutral generation config + inputs + tokenizer."""
    cfg = load_json(os.path.join(model_dir, "config.json"))
    n_src, src_len, new = WORKLOADS[workload]
    view = f"{model_dir.rstrip('/')}-bench-{workload}"
    os.makedirs(view, exist_ok=True)
    has_tok = any(os.path.exists(os.path.join(model_dir, f)) for f in TOKENIZER_FILES)
    links = ["model.safetensors"] + (list(TOKENIZER_FILES) if has_tok else [])
    # ctranslate2 4.8's BART converter reads config.normalize_before, which transformers 5's
    # BartConfig no longer defines; real facebook/bart-* config.json files carry the key.
    if cfg.get("model_type") in ("bart", "mbart") and "normalize_before" not in cfg:
        write_json(os.path.join(view, "config.json"), dict(cfg, normalize_before=False))
    else:
        links.append("config.json")
    for f in links:
        src, dst = os.path.abspath(os.path.join(model_dir, f)), os.path.join(view, f)
        if os.path.exists(src) and not os.path.lexists(dst):
            os.symlink(src, dst)
    write_json(os.path.join(view, "generation_config.json"),
               neutral_generation_config(model_dir, new))
    sp = special_ids(cfg)
    if not has_tok and not os.path.exists(os.path.join(view, "tokenizer.json")):
        write_wordlevel_tokenizer(view, cfg, sp)
    inputs = os.path.join(view, "bench_inputs.json")
    if not os.path.exists(inputs):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(view)
        rng = random.Random(seed)
        low, high = input_id_range(cfg, sp)
        ids = [[rng.randrange(low, high) for _ in range(src_len - 1)] + [sp["eos"]]
               for _ in range(n_src)]
        toks = [tok.convert_ids_to_tokens(r) for r in ids]
        with open(inputs, "w", encoding="utf-8") as f:
            json.dump({"ids": ids, "tokens": toks, "pad_token_id": sp.get("pad")}, f,
                      ensure_ascii=False)
        print(f"wrote {inputs}: {n_src} x {src_len} ids in [{low}, {high}) + eos {sp['eos']}")
    inp = load_json(inputs)
    shape = (len(inp["ids"]), {len(r) for r in inp["ids"]})
    if shape != (n_src, {src_len}):
        sys.exit(f"{inputs}: {shape[0]} sources of lengths {sorted(shape[1])}, workload "
                 f"{workload} wants {n_src} x {src_len}; delete it or pick another workload")
    return view, cfg, inp


def ensure_ct2(model_dir, view, quant):
    out = f"{model_dir.rstrip('/')}-ct2-{quant}"
    if os.path.exists(os.path.join(out, "model.bin")):
        return out
    conv = os.path.join(os.path.dirname(sys.executable), "ct2-transformers-converter")
    t = time.time()
    p = subprocess.run([conv, "--model", view, "--output_dir", out, "--quantization", quant,
                        "--force"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"ct2 conversion {quant} failed: {p.stderr[-1500:]}")
    print(f"converted {view} -> {out} ({time.time() - t:.1f} s)")
    return out


# ------------------------------------------------------------------ running
def timed(cmd, env, stdin=None, timeout=None):
    """Runs cmd under /usr/bin/time -v: (returncode, stdout, stderr without time's report,
    peak RSS in MB or None)."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, input=stdin, capture_output=True,
                       text=True, env=env, timeout=timeout)
    err = p.stderr
    cut = err.rfind("\tCommand being timed:")
    report, err = (err[cut:], err[:cut]) if cut >= 0 else ("", err)
    err = re.sub(r"Command exited with non-zero status \d+\s*$", "", err)
    m = RSS_LINE.search(report)
    return p.returncode, p.stdout, err, (int(m.group(1)) / 1024 if m else None)


def child_env(threads):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_python_child(kind, args, threads, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "_child", kind] + args
    rc, out, err, rss = timed(cmd, child_env(threads), timeout=timeout)
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
    if rc != 0 or line is None:
        return {"error": f"exit {rc}: {err.strip()[-800:]}"}, rss
    return json.loads(line), rss


def tomtat_has_generate(binary):
    if not os.path.exists(binary):
        return f"{binary} not found (cargo build --release)"
    p = subprocess.run([binary, "generate", "--help"], capture_output=True, text=True)
    if p.returncode != 0 or "--ids" not in p.stdout:
        return f"{binary} has no `generate --ids` command: {p.stderr.strip()[:200]}"
    p = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True)
    if p.returncode != 0 or "--inputs" not in p.stdout:
        return f"{binary} has no `bench --inputs` option (rebuild it)"
    return None


def run_tomtat(binary, view, inp, threads, beams, new, quant, runs, timeout, want_ids):
    """Timing as for hf/ct2: `tomtat bench --inputs` times `runs` generate() calls in one
    process after one warm-up call, on the same ids. With want_ids, one `tomtat generate`
    call more gives the ids to compare with transformers'."""
    with tempfile.TemporaryDirectory() as tmp:
        js = os.path.join(tmp, "bench.json")
        cmd = [binary, "bench", "--model", view, "--inputs", os.path.join(view, "bench_inputs.json"),
               "--new-tokens", str(new), "--beams", str(beams), "--threads-list", str(threads),
               "--runs", str(runs), "--json", js, "-q"]
        if quant:
            cmd += ["--quantize", quant]
        rc, out, err, rss = timed(cmd, child_env(threads), timeout=timeout)
        if rc != 0 or not os.path.exists(js):
            return {"error": f"exit {rc}: {err.strip()[-800:]}"}, None
        row = json.load(open(js))[0]
    times = row["runs_s"]
    tokens = row["batch"] * row["new_tokens"]
    ids = [[0] * new] * row["batch"]  # bench checked every output has exactly `new` tokens
    if want_ids:
        stdin = "".join(" ".join(map(str, r)) + "\n" for r in inp["ids"])
        cmd = [binary, "--threads", str(threads), "generate", "--model", view, "--ids",
               "--beams", str(beams), "--min-new-tokens", str(new), "--max-new-tokens",
               str(new)]
        if quant:
            cmd += ["--quantize", quant]
        rc, out, err, _ = timed(cmd, child_env(threads), stdin=stdin, timeout=timeout)
        if rc != 0:
            return {"error": f"exit {rc}: {err.strip()[-800:]}"}, None
        ids = [json.loads(ln).get("ids") for ln in out.splitlines() if ln.strip()]
    return {"runs_s": times, "ids": ids, "tokens": tokens}, rss


def agreement(ids, ref):
    """(identical rows, rows, identical tokens, tokens) of ids against ref."""
    if not ids or not ref or len(ids) != len(ref):
        return None
    rows = sum(a == b for a, b in zip(ids, ref))
    toks = sum(x == y for a, b in zip(ids, ref) for x, y in zip(a, b))
    total = sum(max(len(a), len(b)) for a, b in zip(ids, ref))
    return rows, len(ref), toks, total


def cpu_probe(secs):
    if secs <= 0 or not os.path.exists(PROBE):
        return None
    p = subprocess.run([sys.executable, PROBE, str(secs)], capture_output=True, text=True)
    out = p.stdout.strip()
    print("cpu_probe:", out.replace("\n", " | "))
    return out


def git_rev():
    p = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
    return p.stdout.strip() or None


PRECISION = {"hf": "f32", "ct2-float32": "f32", "ct2-int8": "int8", "tomtat-f32": "f32",
             "tomtat-q8": "q8"}
CT2_OF = {"f32": "ct2-float32", "int8": "ct2-int8", "q8": "ct2-int8"}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        ap = argparse.ArgumentParser()
        ap.add_argument("kind", choices=["hf", "ct2"])
        ap.add_argument("--model", required=True)
        ap.add_argument("--inputs")
        ap.add_argument("--compute_type", default="default")
        for k in ("threads", "beams", "new", "runs", "warmup"):
            ap.add_argument("--" + k, type=int, required=True)
        a = ap.parse_args(sys.argv[2:])
        return child_hf(a) if a.kind == "hf" else child_ct2(a)

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default=None)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--beams", default="1,4")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "tomtat"))
    ap.add_argument("--results", default=None,
                    help="JSON lines file (default: bench_results.jsonl beside the model dir)")
    ap.add_argument("--probe", type=int, default=5, help="cpu_probe seconds before/after (0: off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    ap.add_argument("--note", default="")
    ap.add_argument("--prepare-only", action="store_true",
                    help="write the view dir, inputs and CT2 conversions, then stop")
    a = ap.parse_args()

    model_dir = os.path.abspath(a.model_dir)
    cfg0 = load_json(os.path.join(model_dir, "config.json"))
    workload = a.workload or default_workload(cfg0)
    n_src, src_len, new = WORKLOADS[workload]
    engines = [e for e in a.engines.split(",") if e]
    bad = set(engines) - set(ENGINES)
    if bad:
        sys.exit(f"unknown engines {sorted(bad)}; known: {ENGINES}")
    threads = [int(x) for x in a.threads.split(",")]
    beams = [int(x) for x in a.beams.split(",")]
    results = a.results or os.path.join(os.path.dirname(model_dir), "bench_results.jsonl")

    view, cfg, inp = prepare_view(model_dir, workload, a.seed)
    ct2_dirs = {q: ensure_ct2(model_dir, view, q) for q in ("float32", "int8")
                if f"ct2-{q}" in engines}
    if a.prepare_only:
        print(f"prepared {view} and {sorted(ct2_dirs.values())}")
        return
    skip_tomtat = tomtat_has_generate(a.bin) if any(e.startswith("tomtat") for e in engines) \
        else None
    if skip_tomtat:
        print(f"SKIPPING tomtat rows: {skip_tomtat}")

    session = {"model": os.path.basename(model_dir), "workload": workload, "sources": n_src,
               "src_len": src_len, "new_tokens": new, "runs": a.runs, "git": git_rev(),
               "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "cpus": os.cpu_count(), "note": a.note}
    print(f"# {session['model']} {workload}: {n_src} sources x {src_len} tokens, {new} new "
          f"tokens, median of {a.runs} after 1 warm-up; load {os.getloadavg()[0]:.2f}")
    probe_before = cpu_probe(a.probe)

    rows = []
    for k in beams:
        for t in threads:
            ref_ids = None
            for e in engines:
                base = dict(session, engine=e.split("-")[0], precision=PRECISION[e], threads=t,
                            beams=k, load1=round(os.getloadavg()[0], 2))
                t0 = time.time()
                if e == "hf":
                    res, rss = run_python_child("hf", [
                        "--model", view, "--threads", str(t), "--beams", str(k), "--new",
                        str(new), "--runs", str(a.runs), "--warmup", "1"], t, a.timeout)
                elif e.startswith("ct2"):
                    q = e.split("-")[1]
                    res, rss = run_python_child("ct2", [
                        "--model", ct2_dirs[q], "--inputs", view, "--compute_type", q,
                        "--threads", str(t), "--beams", str(k), "--new", str(new),
                        "--runs", str(a.runs), "--warmup", "1"], t, a.timeout)
                elif skip_tomtat:
                    res, rss = {"skipped": skip_tomtat}, None
                else:
                    res, rss = run_tomtat(a.bin, view, inp, t, k, new,
                                          "q8" if e == "tomtat-q8" else None, a.runs, a.timeout,
                                          ref_ids is not None)
                rec = dict(base, peak_rss_mb=round(rss, 1) if rss else None,
                           proc_wall_s=round(time.time() - t0, 1))
                if "runs_s" in res:
                    med = statistics.median(res["runs_s"])
                    ntok = res.get("tokens", n_src * new)
                    lens = {len(r) for r in res["ids"] if r is not None}
                    rec.update(runs_s=[round(x, 3) for x in res["runs_s"]],
                               median_s=round(med, 4), tok_per_s=round(ntok / med, 1),
                               out_lens=sorted(lens))
                    if ntok != n_src * new or lens != {new}:
                        rec["warning"] = f"{ntok} tokens, lengths {sorted(lens)}"
                    for key in ("compute_type", "version"):
                        if key in res:
                            rec[key] = res[key]
                    if e == "hf":
                        ref_ids = res["ids"]
                    elif ref_ids is not None:
                        ag = agreement(res["ids"], ref_ids)
                        if ag:
                            rec["same_as_hf"] = {"rows": ag[0], "of_rows": ag[1],
                                                 "tokens": ag[2], "of_tokens": ag[3]}
                else:
                    rec.update({k2: v for k2, v in res.items() if k2 in ("error", "skipped")})
                rows.append(rec)
                print(json.dumps({x: rec.get(x) for x in (
                    "engine", "precision", "threads", "beams", "tok_per_s", "runs_s",
                    "peak_rss_mb", "same_as_hf", "error", "skipped", "warning") if
                    rec.get(x) is not None}), flush=True)

    probe_after = cpu_probe(a.probe)
    # Ratios to CTranslate2 of the same precision, same threads and beams, same session.
    for r in rows:
        ct2 = next((c for c in rows if c["engine"] == "ct2" and c["threads"] == r["threads"]
                    and c["beams"] == r["beams"]
                    and c["precision"] == ("f32" if r["precision"] == "f32" else "int8")), None)
        if ct2 and r.get("tok_per_s") and ct2.get("tok_per_s"):
            r["ratio_ct2"] = round(r["tok_per_s"] / ct2["tok_per_s"], 2)
            if r.get("peak_rss_mb") and ct2.get("peak_rss_mb"):
                r["rss_ratio_ct2"] = round(r["peak_rss_mb"] / ct2["peak_rss_mb"], 2)
    with open(results, "a") as f:
        f.write(json.dumps(dict(session, probe_before=probe_before, probe_after=probe_after,
                                kind="probe")) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print_table(rows, session)
    print(f"\nappended {len(rows)} lines to {results}")


def print_table(rows, s):
    print(f"\n### {s['model']}, workload {s['workload']} ({s['sources']} x {s['src_len']} "
          f"tokens -> {s['new_tokens']} new), {s['date']}, git {s['git']}\n")
    print("| engine | precision | threads | beams | tok/s | vs CT2 same precision | "
          "peak RSS MB | ids = HF | runs (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        if "tok_per_s" in r:
            ag = r.get("same_as_hf")
            agt = (f"{ag['rows']}/{ag['of_rows']} rows, {100 * ag['tokens'] / ag['of_tokens']:.1f}%"
                   " tok" if ag else ("(ref)" if r["engine"] == "hf" else ""))
            print(f"| {r['engine']} | {r['precision']} | {r['threads']} | {r['beams']} | "
                  f"{r['tok_per_s']:.1f} | {r.get('ratio_ct2', ''):} | "
                  f"{r.get('peak_rss_mb') or ''} | {agt} | "
                  f"{' '.join('%.2f' % x for x in r['runs_s'])} |")
        else:
            why = r.get("error") or r.get("skipped") or "?"
            why = why.replace("\n", " ").replace("|", "/")[-120:]
            print(f"| {r['engine']} | {r['precision']} | {r['threads']} | {r['beams']} | - | - "
                  f"| {r.get('peak_rss_mb') or ''} | {why} | |")


if __name__ == "__main__":
    main()
