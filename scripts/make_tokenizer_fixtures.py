#!/usr/bin/env python3
"""Train the small tokenizer fixtures under tests/fixtures/tokenizers/ and record what the
reference libraries (transformers 5.x, sentencepiece, tokenizers) produce on every line of
../shared/data/iwslt15/tst2012.{vi,en} plus a handful of edge-case lines.

Run from the repository root (takes ~1 minute):

    HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error \
        /work/pyref/bin/python scripts/make_tokenizer_fixtures.py

Fixture directories (Hub layout, loadable with AutoTokenizer.from_pretrained):
  marian-vi-en/   source.spm (vi, unigram) + target.spm (en, unigram) + joint vocab.json
  t5-spiece/      spiece.model (unigram, T5 ids: pad 0, eos 1, unk 2) + 100 <extra_id_N>
  mbart-spm/      sentencepiece.bpe.model (BPE) + fairseq offset + language codes + <mask>
  bart-bpe/       byte-level BPE vocab.json + merges.txt (trained with `tokenizers`)
  bart-tokjson/   the same BART tokenizer saved as tokenizer.json only
  spm-bytefallback/ a bare unigram .model with byte_fallback and no normalization rules

Expected outputs: expected/<name>.<set>.jsonl.gz with set in {vi, en, edge}; one JSON object
per input line: {"ids": [...], "text": "..."} where "text" is the reference decode with
special tokens skipped, omitted when it equals the input line byte for byte. The edge lines
live in edge_lines.json (a JSON list, so tabs, CRs and odd spaces survive).

What "reference" means per tokenizer (see also tests/tokenize_parity.rs):
  opus-mt-en-mg, marian-vi-en: transformers MarianTokenizer: ids = tok(line).input_ids,
      text = tok.decode(ids, skip_special_tokens=True). In transformers 5.x the decode uses
      the *source* spm when the vocab is joint (use_source_tokenizer defaults to
      not separate_vocabs); the script also counts how often a target-spm decode agrees.
  t5-spiece: transformers T5Tokenizer (AutoTokenizer), same ids/decode calls.
  mbart-spm: fairseq semantics = sentencepiece BPE pieces, spm id + 1, </s>, src_lang code
      (transformers 4.x MBartTokenizer); decode = sentencepiece decode of the spm ids.
      transformers 5.x MBartTokenizer re-models the BPE file as a Unigram with no normalizer;
      the script prints how many lines it agrees with.
  bart-bpe, bart-tokjson: transformers BartTokenizer (= RobertaTokenizer backend).
  spm-bytefallback: sentencepiece: ids = sp.encode(line), text = sp.decode(ids).
"""

import csv
import gzip
import json
import os
import shutil
import sys
import tempfile
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import sentencepiece as spm  # noqa: E402
from sentencepiece import sentencepiece_model_pb2 as spm_pb  # noqa: E402
from tokenizers import ByteLevelBPETokenizer  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
EXP = os.path.join(OUT, "expected")

MBART_LANGS = ["ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN",
               "hi_IN", "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP",
               "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN"]

# Hand-picked lines that exercise normalization, whitespace, unknowns and special-token text.
EDGE_LINES = [
    "",
    " ",
    "a",
    ".",
    "  leading and trailing spaces  ",
    "multiple   inner     spaces",
    "tab\tseparated\ttext",
    "carriage\rreturn",
    "Full-width ＡＢＣ１２３ and half-width ｶﾀｶﾅ",
    unicodedata.normalize("NFD", "Tiếng Việt có dấu: Đường phố Hà Nội ở đâu?"),
    "Emoji 😀 and check ✓ and snowman ☃",
    "Literal specials </s> <unk> <pad> <s> here",
    ">>en<< a language code prefix",
    ">>vi<<no space after code",
    "a ▁ literal metaspace ▁▁ and▁inside",
    "Numbers 1,234.56 and 10% – dash — “curly” ‘quotes’ «guillemets»",
    "Zero\u200bwidth and non\u00a0breaking spaces",
    "Ellipsis… fractions ¼ ½ and ligature ﬁne",
    "Chinese 中文字符 and Korean 한국어 and Thai ภาษาไทย",
    "Control \u0007 bell and \u0001 soh",
    "ha" * 60,
    "Xin chào! Tôi tên là Nguyễn Văn A, sinh năm 1990 tại TP.HCM.",
    "Hello, world! It's 5 o'clock -- isn't it?",
    "<mask> token and <extra_id_0> sentinel",
    "vi_VN en_XX language codes as text",
]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def vi_corpus():
    lines = read_lines(os.path.join(SHARED, "iwslt15", "dev2010.vi"))
    with open(os.path.join(SHARED, "vietnews", "val300.jsonl"), encoding="utf-8") as f:
        for row in f:
            r = json.loads(row)
            lines.append(r["title"])
            lines.append(r["abstract"])
            lines.extend(r["body_sentences"])
    return [x for x in lines if x.strip()]


def en_corpus():
    lines = read_lines(os.path.join(SHARED, "iwslt15", "dev2010.en"))
    with open(os.path.join(SHARED, "cnndm", "cnndm-100.csv"), encoding="utf-8") as f:
        for r in csv.DictReader(f):
            lines.extend(s.strip() for s in r["article"].split(" . ") if s.strip())
            lines.append(r["highlights"])
    return [x for x in lines if x.strip()]


def train_spm(lines, prefix, **kw):
    txt = prefix + ".txt"
    with open(txt, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    args = dict(input=txt, model_prefix=prefix, num_threads=1, minloglevel=2,
                input_sentence_size=0, shuffle_input_sentence=False)
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    return prefix + ".model"


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def fresh_dir(name):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


# ---------------------------------------------------------------- fixtures
def make_marian(tmp):
    d = fresh_dir("marian-vi-en")
    common = dict(model_type="unigram", vocab_size=1000, character_coverage=0.9995,
                  normalization_rule_name="nmt_nfkc")
    src = train_spm(vi_corpus(), os.path.join(tmp, "src"), **common)
    tgt = train_spm(en_corpus(), os.path.join(tmp, "tgt"), **common)
    shutil.copy(src, os.path.join(d, "source.spm"))
    shutil.copy(tgt, os.path.join(d, "target.spm"))
    # Joint vocab in the opus-mt layout: </s> 0, <unk> 1, pieces, <pad> last.
    vocab = {"</s>": 0, "<unk>": 1}
    for m in (src, tgt):
        sp = spm.SentencePieceProcessor(model_file=m)
        for i in range(sp.get_piece_size()):
            p = sp.id_to_piece(i)
            if p not in vocab and p not in ("<s>", "<pad>"):
                vocab[p] = len(vocab)
    vocab["<pad>"] = len(vocab)
    write_json(os.path.join(d, "vocab.json"), vocab)
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"source_lang": "vi", "target_lang": "en", "model_max_length": 512})
    write_json(os.path.join(d, "special_tokens_map.json"),
               {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    n = len(vocab)
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["MarianMTModel"], "model_type": "marian", "vocab_size": n,
        "decoder_vocab_size": n, "pad_token_id": n - 1, "decoder_start_token_id": n - 1,
        "eos_token_id": 0, "bos_token_id": 0, "forced_eos_token_id": 0})
    return d


def make_t5(tmp):
    d = fresh_dir("t5-spiece")
    m = train_spm(vi_corpus() + en_corpus(), os.path.join(tmp, "t5"), model_type="unigram",
                  vocab_size=1000, character_coverage=0.9995, normalization_rule_name="nmt_nfkc",
                  pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                  pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>")
    shutil.copy(m, os.path.join(d, "spiece.model"))
    extra = [f"<extra_id_{i}>" for i in range(100)]
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "tokenizer_class": "T5Tokenizer", "extra_ids": 100, "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 512,
        "additional_special_tokens": extra})
    write_json(os.path.join(d, "special_tokens_map.json"), {
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "additional_special_tokens": extra})
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
        "vocab_size": 1100, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0})
    return d


def make_mbart(tmp):
    d = fresh_dir("mbart-spm")
    m = train_spm(vi_corpus() + en_corpus(), os.path.join(tmp, "mbart"), model_type="bpe",
                  vocab_size=1000, character_coverage=0.9995, normalization_rule_name="nmt_nfkc")
    shutil.copy(m, os.path.join(d, "sentencepiece.bpe.model"))
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "tokenizer_class": "MBartTokenizer", "src_lang": "vi_VN", "tgt_lang": "en_XX",
        "model_max_length": 1024})
    write_json(os.path.join(d, "special_tokens_map.json"), {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "sep_token": "</s>", "cls_token": "<s>",
        "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False,
                       "normalized": True, "single_word": False},
        "additional_special_tokens": MBART_LANGS})
    sp = spm.SentencePieceProcessor(model_file=m)
    n = sp.get_piece_size() + 1 + len(MBART_LANGS) + 1
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["MBartForConditionalGeneration"], "model_type": "mbart",
        "vocab_size": n, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        "decoder_start_token_id": 2, "forced_bos_token_id": None})
    return d


def make_bart(tmp):
    d = fresh_dir("bart-bpe")
    corpus = os.path.join(tmp, "bart.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(en_corpus() + vi_corpus()) + "\n")
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train([corpus], vocab_size=1500, min_frequency=2, show_progress=False,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    bpe.save_model(tmp, "bart")
    with open(os.path.join(tmp, "bart-vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    vocab["<mask>"] = len(vocab)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    shutil.copy(os.path.join(tmp, "bart-merges.txt"), os.path.join(d, "merges.txt"))
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "tokenizer_class": "BartTokenizer", "model_max_length": 1024, "add_prefix_space": False,
        "errors": "replace"})
    write_json(os.path.join(d, "special_tokens_map.json"), {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "sep_token": "</s>", "cls_token": "<s>",
        "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False,
                       "normalized": False, "single_word": False}})
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["BartForConditionalGeneration"], "model_type": "bart",
        "vocab_size": len(vocab), "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        "decoder_start_token_id": 2, "forced_bos_token_id": 0, "forced_eos_token_id": 2})
    return d


def make_bart_tokjson(bart_dir):
    """The BART tokenizer as a bare tokenizer.json (what most Hub repos ship)."""
    d = fresh_dir("bart-tokjson")
    tok = AutoTokenizer.from_pretrained(bart_dir)
    tok.backend_tokenizer.save(os.path.join(d, "tokenizer.json"))
    for f in ("config.json", "special_tokens_map.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(bart_dir, f), os.path.join(d, f))
    return d


def make_spm_bytefallback(tmp):
    d = fresh_dir("spm-bytefallback")
    m = train_spm(vi_corpus(), os.path.join(tmp, "bf"), model_type="unigram", vocab_size=800,
                  character_coverage=0.98, byte_fallback=True, normalization_rule_name="identity")
    shutil.copy(m, os.path.join(d, "tokenizer.model"))
    return d


# ---------------------------------------------------------------- references
def write_expected(name, set_name, lines, ids_list, texts):
    os.makedirs(EXP, exist_ok=True)
    path = os.path.join(EXP, f"{name}.{set_name}.jsonl.gz")
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as gz:
        for line, ids, text in zip(lines, ids_list, texts):
            rec = {"ids": ids}
            if text != line:
                rec["text"] = text
            gz.write((json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
                     .encode("utf-8"))


def reference_hf(name, tok_dir, sets):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    print(f"{name}: {type(tok).__name__}, len(tok) = {len(tok)}")
    for set_name, lines in sets.items():
        ids = [tok(line)["input_ids"] for line in lines]
        texts = [tok.decode(x, skip_special_tokens=True) for x in ids]
        write_expected(name, set_name, lines, ids, texts)
        if type(tok).__name__ == "MarianTokenizer":
            tgt = [tok.decode(x, skip_special_tokens=True, use_source_tokenizer=False)
                   for x in ids]
            same = sum(a == b for a, b in zip(texts, tgt))
            print(f"  {set_name}: target-spm decode equals source-spm decode on "
                  f"{same}/{len(lines)} lines")
    return tok


def reference_mbart(d, sets):
    """fairseq / transformers-4.x MBartTokenizer semantics over the sentencepiece library."""
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "sentencepiece.bpe.model"))
    with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
        src_lang = json.load(f)["src_lang"]
    n = sp.get_piece_size()
    fairseq = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    lang_id = {c: n + 1 + i for i, c in enumerate(MBART_LANGS)}

    def encode(line):
        out = []
        for i in sp.encode(line):
            out.append(fairseq[sp.id_to_piece(i)] if sp.id_to_piece(i) in fairseq else i + 1)
        return out + [2, lang_id[src_lang]]

    def decode(ids):
        # Skip specials (fairseq 0..3, language codes, <mask>), map back to spm ids.
        spm_ids = [i - 1 for i in ids if 4 <= i <= n]
        return sp.decode(spm_ids)

    hf = AutoTokenizer.from_pretrained(d)
    print(f"mbart-spm: spm pieces {n}, vocab_size {n + 1 + len(MBART_LANGS) + 1}, "
          f"transformers {type(hf).__name__} len {len(hf)}")
    for set_name, lines in sets.items():
        ids = [encode(line) for line in lines]
        texts = [decode(x) for x in ids]
        write_expected("mbart-spm", set_name, lines, ids, texts)
        hf_ids = [hf(line)["input_ids"] for line in lines]
        same = sum(a == b for a, b in zip(ids, hf_ids))
        hf_texts = [hf.decode(x, skip_special_tokens=True) for x in ids]
        same_t = sum(a == b for a, b in zip(texts, hf_texts))
        print(f"  {set_name}: transformers-5 MBartTokenizer ids agree on {same}/{len(lines)}, "
              f"decode agrees on {same_t}/{len(lines)}")


def reference_spm(name, model_file, sets):
    sp = spm.SentencePieceProcessor(model_file=model_file)
    for set_name, lines in sets.items():
        ids = [sp.encode(line) for line in lines]
        texts = [sp.decode(x) for x in ids]
        write_expected(name, set_name, lines, ids, texts)


def fuzz_lines(n, seed):
    """Random strings over the characters that trip tokenizers up."""
    import random

    rng = random.Random(seed)
    sample = "".join(read_lines(os.path.join(SHARED, "iwslt15", "dev2010.vi"))[:200])
    sample += "".join(read_lines(os.path.join(SHARED, "iwslt15", "dev2010.en"))[:200])
    atoms = list(sample) + [
        " ", "  ", "\t", "\u3000", "\u00a0", "\u200b", "\u2581", "\r", "\x00", "\x07",
        "\u0301", "\u0323", "\u0300", "ＡＢＣ", "１２", "ｶﾀ", "😀", "👍🏽", "中文", "한국어",
        "ﬁ", "…", "¼", "™", "</s>", "<unk>", "<pad>", "<s>", "<mask>", "<extra_id_3>",
        ">>en<<", ">>", "<<", "vi_VN", "en_XX", "'s", " n't", " .", "--", "Đ", "ẫ",
    ]

    def one():
        k = rng.choice([0, 1, 2, 5, 10, 20, 40])
        parts = [rng.choice(atoms) if rng.random() < 0.85 else chr(rng.randrange(0x20, 0xD7FF))
                 for _ in range(k)]
        t = "".join(parts)
        return unicodedata.normalize("NFD", t) if rng.random() < 0.1 else t

    return [one() for _ in range(n)]


def write_fuzz(out_path, n):
    """One JSON object per (tokenizer, line): the same fields as the expected files plus the
    tokenizer name and line; read by the ignored test `fuzz_parity_from_env`."""
    lines = fuzz_lines(n, 12345)
    names = {
        "opus-mt-en-mg": os.path.join(SHARED, "tokenizers", "opus-mt-en-mg"),
        "marian-vi-en": os.path.join(OUT, "marian-vi-en"),
        "t5-spiece": os.path.join(OUT, "t5-spiece"),
        "bart-bpe": os.path.join(OUT, "bart-bpe"),
    }
    with open(out_path, "w", encoding="utf-8") as f:
        for name, d in names.items():
            tok = AutoTokenizer.from_pretrained(d)
            for line in lines:
                ids = tok(line)["input_ids"]
                rec = {"name": name, "dir": d, "line": line, "ids": ids,
                       "text": tok.decode(ids, skip_special_tokens=True)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        d = os.path.join(OUT, "mbart-spm")
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "sentencepiece.bpe.model"))
        n_sp = sp.get_piece_size()
        fairseq = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        for line in lines:
            ids = [fairseq.get(sp.id_to_piece(i), i + 1) for i in sp.encode(line)]
            ids += [2, n_sp + 1 + MBART_LANGS.index("vi_VN")]
            text = sp.decode([i - 1 for i in ids if 4 <= i <= n_sp])
            f.write(json.dumps({"name": "mbart-spm", "dir": d, "line": line, "ids": ids,
                                "text": text}, ensure_ascii=False) + "\n")
        d = os.path.join(OUT, "spm-bytefallback")
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
        for line in lines:
            ids = sp.encode(line)
            f.write(json.dumps({"name": "spm-bytefallback", "dir": d, "line": line, "ids": ids,
                                "text": sp.decode(ids)}, ensure_ascii=False) + "\n")
    print(f"wrote {out_path}: {n} random lines x 6 tokenizers")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--fuzz":
        # Not committed: a local, larger random comparison (see tests/tokenize_parity.rs).
        write_fuzz(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1:
        print(__doc__)
        print("usage: make_tokenizer_fixtures.py [--fuzz OUT.jsonl N]")
        return
    os.makedirs(OUT, exist_ok=True)
    if os.path.isdir(EXP):
        shutil.rmtree(EXP)
    write_json(os.path.join(OUT, "edge_lines.json"), EDGE_LINES)
    sets = {
        "vi": read_lines(os.path.join(SHARED, "iwslt15", "tst2012.vi")),
        "en": read_lines(os.path.join(SHARED, "iwslt15", "tst2012.en")),
        "edge": EDGE_LINES,
    }
    with tempfile.TemporaryDirectory() as tmp:
        marian = make_marian(tmp)
        t5 = make_t5(tmp)
        mbart = make_mbart(tmp)
        bart = make_bart(tmp)
        bart_tj = make_bart_tokjson(bart)
        bf = make_spm_bytefallback(tmp)

    reference_hf("opus-mt-en-mg", os.path.join(SHARED, "tokenizers", "opus-mt-en-mg"), sets)
    reference_hf("marian-vi-en", marian, sets)
    reference_hf("t5-spiece", t5, sets)
    reference_mbart(mbart, sets)
    reference_hf("bart-bpe", bart, sets)
    # bart-tokjson must reproduce bart-bpe exactly; check it here so a mismatch is loud.
    a, b = AutoTokenizer.from_pretrained(bart), AutoTokenizer.from_pretrained(bart_tj)
    for lines in sets.values():
        for line in lines:
            assert a(line)["input_ids"] == b(line)["input_ids"], line
    reference_spm("spm-bytefallback", os.path.join(bf, "tokenizer.model"), sets)

    total = 0
    for dirpath, _, files in os.walk(OUT):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    print(f"fixtures total: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
