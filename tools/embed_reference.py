#!/usr/bin/env python3
"""Independent numpy forward of all-MiniLM-L6-v2 (BERT) and all-mpnet-base-v2 (MPNet) from safetensors, to
cross-check the candle embedders in crates/embedders. Mirrors sentence-transformers: Transformer (truncate to
max_seq_length, no padding) -> mean pooling -> L2 normalise. Architecture as in Hugging Face transformers'
modeling_bert.py / modeling_mpnet.py.

usage: embed_reference.py MODEL_DIR {bert,mpnet} TEXTS.json OUT.json
"""
import json, math, struct, sys
import numpy as np
from tokenizers import Tokenizer


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] not in ("F32", "F16"):
            continue
        a, b = v["data_offsets"]
        dt = np.float32 if v["dtype"] == "F32" else np.float16
        out[k] = np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def attention(x, W, p, heads, bias=None):
    L, H = x.shape
    d = H // heads
    q = (x @ W[p + "q.weight"].T + W[p + "q.bias"]).reshape(L, heads, d).transpose(1, 0, 2)
    k = (x @ W[p + "k.weight"].T + W[p + "k.bias"]).reshape(L, heads, d).transpose(1, 0, 2)
    v = (x @ W[p + "v.weight"].T + W[p + "v.bias"]).reshape(L, heads, d).transpose(1, 0, 2)
    s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    if bias is not None:
        s = s + bias
    return (softmax(s) @ v).transpose(1, 0, 2).reshape(L, H)


def bert_forward(W, cfg, ids):
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][: len(ids)] \
        + W["embeddings.token_type_embeddings.weight"][0]
    eps = cfg["layer_norm_eps"]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        Wq = {n: W[p + "attention.self." + n] for n in
              ["query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias"]}
        Wq = {"q.weight": Wq["query.weight"], "q.bias": Wq["query.bias"], "k.weight": Wq["key.weight"],
              "k.bias": Wq["key.bias"], "v.weight": Wq["value.weight"], "v.bias": Wq["value.bias"]}
        a = attention(x, Wq, "", cfg["num_attention_heads"])
        a = a @ W[p + "attention.output.dense.weight"].T + W[p + "attention.output.dense.bias"]
        x = layer_norm(a + x, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], eps)
        h = gelu(x @ W[p + "intermediate.dense.weight"].T + W[p + "intermediate.dense.bias"])
        h = h @ W[p + "output.dense.weight"].T + W[p + "output.dense.bias"]
        x = layer_norm(h + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return x


def bucket(rel, nb=32, md=128):
    ret, n = 0, -rel
    nb //= 2
    ret += nb if n < 0 else 0
    n = abs(n)
    me = nb // 2
    if n < me:
        return ret + n
    v = me + int(np.float32(np.log(np.float32(n) / np.float32(me))) / np.float32(math.log(md / me)) * np.float32(nb - me))
    return ret + min(v, nb - 1)


def mpnet_forward(W, cfg, ids):
    L = len(ids)
    pos = np.arange(L) + cfg["pad_token_id"] + 1
    eps = cfg["layer_norm_eps"]
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][pos]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    rb = W["encoder.relative_attention_bias.weight"]
    buckets = np.array([[bucket(m - c) for m in range(L)] for c in range(L)])
    bias = rb[buckets].transpose(2, 0, 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        a = attention(x, W, p + "attention.attn.", cfg["num_attention_heads"], bias)
        a = a @ W[p + "attention.attn.o.weight"].T + W[p + "attention.attn.o.bias"]
        x = layer_norm(a + x, W[p + "attention.LayerNorm.weight"], W[p + "attention.LayerNorm.bias"], eps)
        h = gelu(x @ W[p + "intermediate.dense.weight"].T + W[p + "intermediate.dense.bias"])
        h = h @ W[p + "output.dense.weight"].T + W[p + "output.dense.bias"]
        x = layer_norm(h + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], eps)
    return x


def main():
    model_dir, arch, texts_path, out_path = sys.argv[1:5]
    cfg = json.load(open(f"{model_dir}/config.json"))
    max_len = json.load(open(f"{model_dir}/sentence_bert_config.json"))["max_seq_length"]
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(max_len)
    W = load_safetensors(f"{model_dir}/model.safetensors")
    forward = bert_forward if arch == "bert" else mpnet_forward
    texts = json.load(open(texts_path))
    out = []
    for t in texts:
        ids = tok.encode(t).ids
        v = forward(W, cfg, ids).mean(0)
        v = v / max(np.linalg.norm(v), 1e-12)
        out.append({"text": t, "ids": ids, "embedding": [round(float(x), 7) for x in v]})
    json.dump({"model": arch, "source": "numpy reference (tools/embed_reference.py)", "items": out}, open(out_path, "w"))


if __name__ == "__main__":
    main()
