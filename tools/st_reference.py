#!/usr/bin/env python3
"""sentence-transformers reference embeddings (run where torch + sentence-transformers are installed).

1. all-MiniLM-L6-v2 with its weights rounded to float16 (so the folder fits a small transfer), loaded in
   float32: the same weights the Rust test loads from the same file.
2. Tiny random BERT and MPNet (2 layers, hidden 16) with the real tokenizers, weights rounded to float16
   values: exercises the full sentence-transformers pipeline (tokenizer, truncation, MPNet relative position
   bias, mean pooling, normalisation) on weights small enough to commit. Only the weights and configs are
   committed; crates/embedders/tests/reference.rs rebuilds the tokenizers from MiniLM's cached tokenizer.json.

usage: st_reference.py MINILM16_DIR MPNET_TOKENIZER_DIR TEXTS.json OUT_DIR
"""
import json, os, shutil, sys, traceback
import torch
from sentence_transformers import SentenceTransformer

minilm_dir, mpnet_tok, texts_path, out = sys.argv[1:5]
texts = json.load(open(texts_path))
log = open(os.path.join(out, "log.txt"), "w")
results = {}


def encode(model_dir):
    m = SentenceTransformer(model_dir, device="cpu").float()
    e = m.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
    return [[float(x) for x in row] for row in e], m.max_seq_length


def st_folder(d, tok_dir, max_len):
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        shutil.copy(os.path.join(tok_dir, f), d)
    json.dump({"max_seq_length": max_len, "do_lower_case": False}, open(os.path.join(d, "sentence_bert_config.json"), "w"))
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
              open(os.path.join(d, "modules.json"), "w"))
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
    json.dump({"word_embedding_dimension": 16, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False},
              open(os.path.join(d, "1_Pooling", "config.json"), "w"))


def tiny(kind):
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel
    torch.manual_seed(0 if kind == "bert" else 1)
    if kind == "bert":
        cfg = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=512, layer_norm_eps=1e-12, hidden_act="gelu")
        model, tok, max_len = BertModel(cfg, add_pooling_layer=False), minilm_dir, 256
    else:
        cfg = MPNetConfig(vocab_size=30527, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=514, layer_norm_eps=1e-5,
                          relative_attention_num_buckets=32, pad_token_id=1, hidden_act="gelu")
        model, tok, max_len = MPNetModel(cfg, add_pooling_layer=False), mpnet_tok, 384
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.randn_like(p) * 0.5).half().float())
    d = f"/tmp/tiny_{kind}"
    model.float().save_pretrained(d, safe_serialization=True)
    st_folder(d, tok, max_len)
    emb, msl = encode(d)
    shutil.copy(os.path.join(d, "model.safetensors"), os.path.join(out, f"tiny_{kind}.safetensors"))
    shutil.copy(os.path.join(d, "config.json"), os.path.join(out, f"tiny_{kind}_config.json"))
    return emb, msl


for name, fn in [("minilm16", lambda: encode(minilm_dir)), ("tiny_bert", lambda: tiny("bert")), ("tiny_mpnet", lambda: tiny("mpnet"))]:
    try:
        emb, msl = fn()
        results[name] = {"max_seq_length": msl, "items": [{"text": t, "embedding": e} for t, e in zip(texts, emb)]}
        print(name, "ok", len(emb), file=log, flush=True)
    except Exception:
        traceback.print_exc(file=log)
        log.flush()

import sentence_transformers, transformers
results["versions"] = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__, "transformers": transformers.__version__}
json.dump(results, open(os.path.join(out, "st_embeddings.json"), "w"))
print(open(os.path.join(out, "log.txt")).read())
