#!/usr/bin/env bash
# The embedded engine against llama.cpp on the same GGUF file and the same machine, in interleaved rounds, so that
# a drift of the machine (other tenants, clock) hits both engines alike. Prints, per test (prefill 64 and 512
# tokens, decode 128), ttc `auto`'s speed, llama.cpp's best format (the file as shipped or a Q8_0 copy, weight
# repacking on where it works) and their ratio for each round, then the medians (docs/engine.md).
#
#   scripts/vs-llamacpp.sh [ROUNDS]      # default 3 rounds; a round takes about a minute on 2 cores
#
# Environment: TTC = the ttc binary (default: target/debug/ttc under $CARGO_TARGET_DIR or ./target, built first),
# ANCHOR = llama.cpp's helper script (default: ../shared/tools/llamacpp-anchor.sh, which builds llama.cpp from the
# llama-cpp-python sdist on PyPI on its first use, ~10 min), MODEL = the GGUF (default: `ttc model path`).
set -euo pipefail
rounds=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${TTC:-}" ]; then
  (cd "$root" && cargo build -q --bin ttc)
  TTC=${CARGO_TARGET_DIR:-$root/target}/debug/ttc
fi
ANCHOR=${ANCHOR:-$root/../shared/tools/llamacpp-anchor.sh}
[ -f "$ANCHOR" ] || { echo "error: llama.cpp helper not found at $ANCHOR (set ANCHOR)" >&2; exit 2; }
MODEL=${MODEL:-$("$TTC" model path)}
out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds: ttc" >&2
  "$TTC" bench engine --model "$MODEL" --formats auto --runs 3 --json >"$out/ttc-$r.json"
  echo "round $r/$rounds: llama.cpp" >&2
  bash "$ANCHOR" bench "$MODEL" >"$out/llama-$r.jsonl"
done
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
tests = [("pp64", "prefill_64_tok_s", "prefill 64"), ("pp512", "prefill_512_tok_s", "prefill 512"),
         ("tg128", "decode_128_tok_s", "decode 128")]
ratios = {t: [] for t, _, _ in tests}
print(f"{'round':<6} {'test':<12} {'ttc auto':>9} {'llama.cpp best':>15} {'format':<28} {'ratio':>6}")
for r in range(1, rounds + 1):
    ttc = json.load(open(f"{out}/ttc-{r}.json"))["results"][0]
    llama = [json.loads(l) for l in open(f"{out}/llama-{r}.jsonl") if l.strip()]
    for test, key, label in tests:
        best = max((l for l in llama if l["test"] == test and l["tok_s"] is not None), key=lambda l: l["tok_s"])
        ratio = ttc[key] / best["tok_s"]
        ratios[test].append(ratio)
        fmt = f"{best['file'][-12:]} repack={best['repack']}"
        print(f"{r:<6} {label:<12} {ttc[key]:>9.1f} {best['tok_s']:>15.1f} {fmt:<28} {ratio:>5.2f}x")
print()
for test, _, label in tests:
    print(f"median ratio, {label}: {statistics.median(ratios[test]):.2f}x (rounds: "
          + ", ".join(f"{x:.2f}" for x in ratios[test]) + ")")
EOF
