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
    # the same source built without AVX-512 (-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    # -DGGML_AVX512=OFF), to measure how far llama.cpp is from itself:
    python3 tools/llamacpp_logprobs.py AVX2_LLAMA_SERVER MODEL.gguf "AVX2 build" > crates/engine/tests/data/llamacpp_step0_avx2.json

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
    # 32 more, so that a mean over prompts is steady enough to compare engines (docs/engine.md).
    "Hello! How can I help you today?",
    "Customer: I was charged twice for the same subscription this month. Agent: I'm sorry to hear that.",
    "Translate to French: Good morning, my friend.",
    "import numpy as np\n\ndef softmax(x):\n    return",
    "The three primary colors are",
    "Step 1: Preheat the oven to 180 degrees. Step 2:",
    "Question: Which planet is closest to the Sun?\nAnswer:",
    "SELECT name, email FROM customers WHERE",
    "In 1969, the first humans landed on",
    "Dear Sir or Madam,\n\nI am writing to",
    "The mitochondria is the powerhouse of the",
    "Workflow: 1. receive_order 2. check_inventory 3.",
    "She opened the door slowly and saw",
    "To reset your password, click on",
    "2 + 2 = 4, 3 + 3 = 6, 4 + 4 =",
    "{\"name\": \"Alice\", \"age\":",
    "The best way to learn a new language is",
    "Agent: Could you share your case number? Customer: Sure, it is",
    "Water boils at 100 degrees Celsius at",
    "for (int i = 0; i < n; i++) {",
    "Summary: The meeting discussed the budget for next year and",
    "My favourite book is",
    "Plan: search for flights, compare prices, then",
    "Photosynthesis converts sunlight into",
    "User: What's the weather like tomorrow?\nAssistant:",
    "The Great Wall of China is located in",
    "Once the data is loaded, we normalize each column by",
    "Roses are red, violets are",
    "Thank you for contacting support. Your ticket number is",
    "A haiku about autumn:\n",
    "The function returns None when",
    "Monday, Tuesday, Wednesday,",
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
        label = sys.argv[3] if len(sys.argv) > 3 else "native build"
        print(json.dumps({"source": f"llama.cpp (llama-cpp-python 0.3.36 sdist, {label}), f32 KV, flash attention off, no repack"})[:-1] + ",")
        print(' "prompts": [')
        print(",\n".join("  " + json.dumps(p) for p in out))
        print(" ]}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
