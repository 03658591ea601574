"""Reads logprobs from `ttc serve` with the official `openai` Python client (pip package `openai`).

Usage: python3 openai_logprobs.py BASE_URL PROMPT_TOKEN_IDS_JSON
Prints one JSON object: the chat logprobs of a non-streaming and a streaming completion (top_logprobs=3), a
legacy completion with echo + logprobs over the given prompt token ids (what lm-evaluation-harness sends for
loglikelihood), and the errors of bad logprob parameters. The Rust test (openai_client.rs) checks the values
against the engine's own computation.
"""
import json
import sys

import openai

base_url, prompt_ids = sys.argv[1], json.loads(sys.argv[2])
client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


def entries(content):
    return [{"token": c.token, "logprob": c.logprob, "bytes": c.bytes,
             "top": [[t.token, t.logprob] for t in c.top_logprobs]} for c in content]


plain = client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=8, temperature=0,
                                       logprobs=True, top_logprobs=3)
stream_entries, stream_text = [], ""
for chunk in client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=8, temperature=0,
                                            logprobs=True, top_logprobs=3, stream=True):
    for choice in chunk.choices:
        if choice.delta.content:
            stream_text += choice.delta.content
        if choice.logprobs is not None and choice.logprobs.content:
            stream_entries += entries(choice.logprobs.content)
no_logprobs = client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=2, temperature=0)

completion = client.completions.create(model="smollm2-135m", prompt=[prompt_ids], max_tokens=1, temperature=0,
                                       echo=True, logprobs=1)
c = completion.choices[0]

errors = {}
bad = {
    "top_without_logprobs": lambda: client.chat.completions.create(
        model="smollm2-135m", messages=messages, max_tokens=2, top_logprobs=2),
    "top_above_20": lambda: client.chat.completions.create(
        model="smollm2-135m", messages=messages, max_tokens=2, logprobs=True, top_logprobs=21),
    "completion_logprobs_above_20": lambda: client.completions.create(
        model="smollm2-135m", prompt="Hi", max_tokens=1, logprobs=21),
    "completion_logprobs_negative": lambda: client.completions.create(
        model="smollm2-135m", prompt="Hi", max_tokens=1, logprobs=-1),
}
for name, call in bad.items():
    try:
        call()
        errors[name] = None
    except openai.APIStatusError as e:
        errors[name] = [type(e).__name__, e.status_code, e.body.get("param") if isinstance(e.body, dict) else None]

print(json.dumps({
    "plain": {"text": plain.choices[0].message.content, "logprobs": entries(plain.choices[0].logprobs.content)},
    "stream": {"text": stream_text, "logprobs": stream_entries},
    "no_logprobs": no_logprobs.choices[0].logprobs is None,
    "completion": {"text": c.text, "tokens": c.logprobs.tokens, "token_logprobs": c.logprobs.token_logprobs,
                   "top_logprobs": c.logprobs.top_logprobs, "text_offset": c.logprobs.text_offset,
                   "usage": completion.usage.model_dump(include={"prompt_tokens", "completion_tokens"})},
    "errors": errors,
}))
