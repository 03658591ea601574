"""Reference token ids for the engine's tokenizer tests.

Builds SmolLM2's tokenizer the way its Hugging Face tokenizer.json does (Digits(individual_digits) then
ByteLevel(add_prefix_space=False, use_regex=True), special tokens for CONTROL entries) from the GGUF's vocab and
merges, with the Python `tokenizers` package, independently of our Rust pipeline, and prints a Rust vec literal.
Usage: python3 tools/make_tokenizer_cases.py MODEL.gguf > crates/engine/tests/data/tokenizer_cases.rs
"""
import json
import sys
import gguf
from tokenizers import Tokenizer, pre_tokenizers, decoders, AddedToken
from tokenizers.models import BPE

r = gguf.GGUFReader(sys.argv[1])
def field(name):
    f = r.fields[name]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
tokens = field("tokenizer.ggml.tokens")
merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
tok = Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
])
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty not in (1, 6)])

cases = [
    "Hello world",
    "Grüße aus Köln — 東京 🚀",
    "fn main() {\n    println!(\"{}\", 42);\n}\n",
    "def add(a, b):\n\treturn a + b  # sum\n",
    "Case #00123: refund $45.99 for order ORD-7781",
    "The quick brown fox's tail isn't wet; they're 3.14159 metres away.",
    "SELECT Id, Name FROM Account WHERE CreatedDate > 2023-01-01",
    "Node:\n1: Search for flights\n2: Book hotel\nEdge: (START,1) (1,2) (2,END)",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "naïve café résumé Ünïcödé ß ﬁ",
    "emoji 👩‍💻 and 🇫🇷 flags",
    "multiple   spaces\n\n\nand newlines",
    "",
]
def rust_str(c):
    # json escaping is valid Rust for these strings (\n, \t, \", \\); non-ASCII stays literal.
    return json.dumps(c, ensure_ascii=False)

print("vec![")
for c in cases:
    ids = tok.encode(c, add_special_tokens=False).ids
    print(f"    ({rust_str(c)}, vec!{ids}),")
print("]")
