# syntax=docker/dockerfile:1
# benchop: the four binaries (baas, worker, monitor, benchop) in one small runtime image.
# Used by docker-compose.yml; by hand: docker build -t benchop:local .

ARG RUST_VERSION=1.95

# ---- build: the whole workspace, exactly as locked
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && cp target/release/baas target/release/worker target/release/monitor target/release/benchop /out/

# ---- runtime: Debian slim, non-root
FROM debian:bookworm-slim AS runtime
# curl serves the compose health checks (GET /healthz); ca-certificates for amqps:// brokers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 benchop \
    && useradd --system --uid 10001 --gid benchop --home-dir /var/lib/benchop --shell /usr/sbin/nologin benchop \
    && install -d -o benchop -g benchop -m 0750 /var/lib/benchop
COPY --from=build /out/baas /out/worker /out/monitor /out/benchop /usr/local/bin/
USER benchop:benchop
WORKDIR /var/lib/benchop
ENV BENCHOP_DATA_DIR=/var/lib/benchop
EXPOSE 8080 5555
# Each compose service names its binary; alone, the image answers `benchop --help`.
CMD ["benchop", "--help"]
