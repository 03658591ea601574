"""Talks to `ttc serve` with the official `openai` Python client (pip package `openai`).

Usage: python3 openai_client.py BASE_URL API_KEY
Prints one JSON object: the models listed, a non-streaming completion and a streaming one (text, finish
reason, usage, chunk count), and the exception class of an unknown-model request. The Rust test
(openai_client.rs) checks it against the engine's own output.
"""
import json
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)
messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]

models = [m.id for m in client.models.list()]

plain = client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=16, temperature=0)

chunks, text, finish, usage, roles = 0, "", None, None, []
stream = client.chat.completions.create(
    model="smollm2-135m", messages=messages, max_tokens=16, temperature=0, stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    chunks += 1
    if chunk.usage is not None:
        usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
    for choice in chunk.choices:
        if choice.delta.role:
            roles.append(choice.delta.role)
        if choice.delta.content:
            text += choice.delta.content
        if choice.finish_reason:
            finish = choice.finish_reason

errors = {}
try:
    client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)
except openai.APIStatusError as e:
    errors["unknown_model"] = [type(e).__name__, e.status_code, e.code]
try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
except openai.APIStatusError as e:
    errors["bad_key"] = [type(e).__name__, e.status_code]

print(json.dumps({
    "models": models,
    "plain": {
        "text": plain.choices[0].message.content,
        "role": plain.choices[0].message.role,
        "finish": plain.choices[0].finish_reason,
        "usage": plain.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}),
        "cached_tokens": plain.usage.prompt_tokens_details.cached_tokens,
        "model": plain.model,
        "object": plain.object,
    },
    "stream": {"text": text, "finish": finish, "usage": usage, "chunks": chunks, "roles": roles},
    "errors": errors,
}))
