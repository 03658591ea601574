"""Reference vectors for ttc-sampling from Hugging Face transformers' logits warpers.

Run (needs torch and transformers; not needed by CI, the output is committed):
    python3 -m venv /tmp/pyref && /tmp/pyref/bin/pip install torch transformers numpy
    /tmp/pyref/bin/python crates/sampling/tests/data/gen_hf_vectors.py > crates/sampling/tests/data/hf_warpers.json

For each synthetic logit vector and configuration, the warpers run in HF's own order (`generation/utils.py`
`_get_logits_processor`): Temperature -> TopK -> TopP -> MinP -> Eta, each only when set. The vector file
stores each logit vector once (`logits`, by shape name) and, per case, which tokens survive (score > -inf) and the softmax of the processed scores.
"""

import json
import sys

import numpy as np
import torch
import transformers
from transformers.generation.logits_process import (
    EtaLogitsWarper,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

V = 300


def logit_shapes(rng):
    """Continuous values only: ties at a cut-off would make the kept set depend on sort stability."""
    yield "gauss_1", rng.normal(0.0, 1.0, V)
    yield "gauss_3", rng.normal(0.0, 3.0, V)
    peaked = rng.normal(0.0, 2.0, V)
    peaked[rng.choice(V, 3, replace=False)] += np.array([12.0, 9.0, 8.5])
    yield "peaked", peaked
    flat = rng.normal(0.0, 0.2, V)
    yield "flat", flat


CONFIGS = [
    {"temperature": 1.0, "top_p": 0.9},
    {"temperature": 0.7, "top_p": 0.5},
    {"temperature": 1.3, "top_p": 0.95, "top_k": 50},
    {"temperature": 1.0, "top_p": 0.2, "min_tokens_to_keep": 5},
    {"temperature": 1.0, "min_p": 0.1},
    {"temperature": 0.8, "min_p": 0.05},
    {"temperature": 1.0, "min_p": 0.9, "min_tokens_to_keep": 3},
    {"temperature": 1.0, "eta": 0.0009},
    {"temperature": 1.5, "eta": 0.02},
    {"temperature": 0.6, "eta": 0.2, "min_tokens_to_keep": 2},
    {"temperature": 1.0, "top_k": 10},
    {"temperature": 2.0},
]


def warp(cfg, scores):
    keep = cfg.get("min_tokens_to_keep", 1)
    procs = [TemperatureLogitsWarper(cfg["temperature"])]
    if cfg.get("top_k"):
        procs.append(TopKLogitsWarper(cfg["top_k"], min_tokens_to_keep=keep))
    if "top_p" in cfg:
        procs.append(TopPLogitsWarper(cfg["top_p"], min_tokens_to_keep=keep))
    if "min_p" in cfg:
        procs.append(MinPLogitsWarper(cfg["min_p"], min_tokens_to_keep=keep))
    if "eta" in cfg:
        procs.append(EtaLogitsWarper(cfg["eta"], min_tokens_to_keep=keep))
    ids = torch.zeros((1, 1), dtype=torch.long)
    for p in procs:
        scores = p(ids, scores)
    return scores


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    shapes = {}
    for name, logits in logit_shapes(rng):
        logits = logits.astype(np.float32)
        # 9 significant digits identify an f32 exactly.
        shapes[name] = [float("%.9g" % x) for x in logits]
        for cfg in CONFIGS:
            scores = warp(cfg, torch.tensor(logits)[None, :].clone())[0]
            kept = torch.nonzero(scores > -float("inf")).flatten().tolist()
            probs = torch.softmax(scores, dim=-1)
            cases.append(
                {
                    "shape": name,
                    "config": cfg,
                    "kept": kept,
                    "probs": [float("%.8g" % float(probs[i])) for i in kept],
                }
            )
    json.dump(
        {
            "generator": "crates/sampling/tests/data/gen_hf_vectors.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "logits": shapes,
            "cases": cases,
        },
        sys.stdout,
        separators=(",", ":"),
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
