"""transformers generate() on a mock seq2seq model -> tests/generate_mock_fixture.json.

The mock's logits are a hash of (source ids, decoder history), computed with exact integer
and float32 operations, and the Rust unit tests (src/testkit/mock.rs `MockModel::hashed`)
compute the same numbers bit for bit. So the fixture checks the search bookkeeping of
`tomtat::generate` (processors, beam candidates, finished hypotheses, length penalty, early
stopping, multiple EOS ids) against transformers itself, independently of any real model's
numerics.

Run: HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error /work/pyref/bin/python \
         scripts/make_generate_mock_fixture.py
"""
import copy
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import GenerationConfig, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

M64 = (1 << 64) - 1
EOS, PAD, START = 2, 1, 1
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "generate_mock_fixture.json")


def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def mock_logits(seed, vocab, src, hist):
    """Same as MockModel::hashed in src/testkit/mock.rs (float32 throughout)."""
    h = seed
    for t in src:
        h = mix(h ^ t)
    h = mix(h ^ 0xABCDEF)
    for t in hist:
        h = mix(h ^ t)
    vals = [mix(h ^ ((v * 0x9E3779B9) & M64)) >> 40 for v in range(vocab)]
    out = (np.array(vals, dtype=np.float32) / np.float32(1 << 24)) * np.float32(8.0) - np.float32(4.0)
    out[EOS] = out[EOS] + (np.float32(0.45) * np.float32(len(hist)) - np.float32(3.0))
    return out


class MockConfig(PretrainedConfig):
    model_type = "tomtat_mock"

    def __init__(self, vocab_size=40, seed=0, **kw):
        super().__init__(is_encoder_decoder=True, **kw)
        self.vocab_size = vocab_size
        self.seed = seed


class MockEncoder(torch.nn.Module):
    main_input_name = "input_ids"

    def forward(self, input_ids=None, attention_mask=None, **kw):
        return BaseModelOutput(last_hidden_state=input_ids.to(torch.float64).unsqueeze(-1))


class MockModel(PreTrainedModel, GenerationMixin):
    config_class = MockConfig
    main_input_name = "input_ids"

    def __init__(self, config):
        super().__init__(config)
        self.encoder = MockEncoder()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def get_encoder(self):
        return self.encoder

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None,
                encoder_outputs=None, **kw):
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask)
        hidden = encoder_outputs[0][..., 0].to(torch.int64)
        rows = []
        for r in range(decoder_input_ids.shape[0]):
            src = [int(t) for t, m in zip(hidden[r], attention_mask[r]) if int(m) == 1]
            hist = [int(t) for t in decoder_input_ids[r]]
            rows.append(mock_logits(self.config.seed, self.config.vocab_size, src, hist))
        logits = torch.from_numpy(np.stack(rows)).unsqueeze(1)
        return Seq2SeqLMOutput(logits=logits)


def sources(rng, n, vocab):
    return [[int(rng.integers(3, vocab)) for _ in range(int(rng.integers(1, 14)))] for _ in range(n)]


def variants():
    base = dict(eos_token_id=EOS, pad_token_id=PAD, decoder_start_token_id=START)
    return {
        "default": dict(base, max_new_tokens=25),
        "forced length": dict(base, min_new_tokens=12, max_new_tokens=12),
        "lp2 es-true": dict(base, length_penalty=2.0, early_stopping=True, max_length=30),
        "lp0.6 never": dict(base, length_penalty=0.6, early_stopping="never", max_new_tokens=20),
        "lp-0.5 never": dict(base, length_penalty=-0.5, early_stopping="never", max_new_tokens=20),
        "lp0 processors": dict(base, length_penalty=0.0, no_repeat_ngram_size=2,
                               repetition_penalty=1.3, bad_words_ids=[[PAD], [5, 6]],
                               forced_bos_token_id=4, forced_eos_token_id=EOS, min_length=4,
                               max_length=18),
        "two eos": dict(base, eos_token_id=[EOS, 7], max_new_tokens=22),
    }


def main():
    models = []
    for seed, vocab in [(3, 40), (17, 25), (99, 64)]:
        cases = []
        model = MockModel(MockConfig(vocab_size=vocab, seed=seed)).eval()
        rng = np.random.default_rng(seed)
        srcs = sources(rng, 19, vocab)
        width = max(map(len, srcs))
        ids = torch.full((len(srcs), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(srcs), width), dtype=torch.long)
        for i, s in enumerate(srcs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        for name, params in variants().items():
            for beams in (1, 2, 3, 4):
                p = dict(params, num_beams=beams, do_sample=False, use_cache=False)
                gc = GenerationConfig(**p)
                model.generation_config = copy.deepcopy(gc)
                with torch.inference_mode():
                    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
                eos = p["eos_token_id"] if isinstance(p["eos_token_id"], list) else [p["eos_token_id"]]
                outs = []
                for row in out[:, 1:].tolist():
                    cut = next((i for i, t in enumerate(row) if t in eos), None)
                    if cut is not None:
                        row = row[: cut + 1]
                    outs.append(row)
                params_out = {k: v for k, v in p.items() if k != "use_cache"}
                cases.append({"name": name, "params": params_out, "output_ids": outs})
        models.append({"seed": seed, "vocab": vocab, "sources": srcs, "cases": cases})
        print(f"seed {seed}: done", file=sys.stderr)
    doc = {"transformers": transformers.__version__, "torch": torch.__version__,
           "eos": EOS, "pad": PAD, "start": START, "models": models}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
