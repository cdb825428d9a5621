# syntax=docker/dockerfile:1

# Build: the Rust toolchain image, the locked dependency set.
FROM rust:1.95-slim-bookworm AS build
# jemalloc's build runs make, which the slim image lacks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The manifest names this benchmark target; cargo wants it present.
COPY bench/snapshot.rs ./bench/snapshot.rs
RUN cargo build --release --locked \
    && mkdir -p /out/var/lib/caching-proxy

# Run: distroless (no shell, no package manager), as a non-root user.
# The webpki roots are compiled into the binary: no CA bundle needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/caching-proxy /usr/local/bin/caching-proxy
COPY docker/proxy.toml /etc/caching-proxy/proxy.toml
COPY --from=build --chown=65532:65532 /out/var/lib/caching-proxy /var/lib/caching-proxy
VOLUME ["/var/lib/caching-proxy"]
EXPOSE 3000
USER 65532:65532
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/caching-proxy", "--health-check", "http://127.0.0.1:9901/readyz"]
ENTRYPOINT ["/usr/local/bin/caching-proxy"]
CMD ["--config", "/etc/caching-proxy/proxy.toml"]
