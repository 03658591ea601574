#!/usr/bin/env python3
"""Step-0 log-probabilities of llama.cpp on the same GGUF, as test vectors for crates/engine/tests/llamacpp.rs.

llama-server (built from source by ../shared/tools/llamacpp-anchor.sh) runs with an f32 KV cache, flash attention
off and weight repacking off, so its arithmetic is the plain ggml CPU path: Q4_1 weights times Q8_1-quantized
activations, Q8_0 times Q8_0 for the tied output matrix. Each prompt is sent as token ids (tokenized by the server
itself, which the test checks against our tokenizer), and the server returns the top-K log-probabilities of the
first generated position (softmax over the whole vocabulary of the raw logits, `post_sampling_probs: false`).

    python3 tools/llamacpp_logprobs.py LLAMA_SERVER MODEL.gguf > crates/engine/tests/data/llamacpp_step0.json
    llama-quantize --allow-requantize MODEL.gguf /tmp/model-f32.gguf F32
    python3 tools/llamacpp_logprobs.py LLAMA_SERVER /tmp/model-f32.gguf > crates/engine/tests/data/llamacpp_step0_f32.json

Only ids and numbers are written.
"""
import json
import socket
import subprocess
import sys
import time
import urllib.request

PROMPTS = [
    "The capital of France is",
    "Customer: My order ORD-7781 arrived damaged. Agent:",
    "Task: book a flight and a hotel. Node: 1. search_flights",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "Q: What is 12 times 12?\nA:",
    "List three colors: red,",
    "The quick brown fox",
]
TOP_K = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main():
    server, model = sys.argv[1], sys.argv[2]
    port = free_port()
    proc = subprocess.Popen(
        [server, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-c", "2048", "-t", "2",
         "-ctk", "f32", "-ctv", "f32", "-fa", "off", "--no-repack", "-np", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except Exception:
                time.sleep(0.2)
        out = []
        for text in PROMPTS:
            ids = post(port, "/tokenize", {"content": text, "add_special": False})["tokens"]
            r = post(port, "/completion", {
                "prompt": ids, "n_predict": 1, "n_probs": TOP_K, "temperature": 0.0,
                "post_sampling_probs": False, "cache_prompt": False,
            })
            first = r["completion_probabilities"][0]
            top = [[t["id"], round(t["logprob"], 6)] for t in first["top_logprobs"]]
            out.append({"text": text, "ids": ids, "top": top})
        print('{"source": "llama.cpp (llama-cpp-python 0.3.36 sdist), f32 KV, flash attention off, no repack",')
        print(' "prompts": [')
        print(",\n".join("  " + json.dumps(p) for p in out))
        print(" ]}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
