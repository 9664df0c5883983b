# berth: build with `docker build -t berth .`, run with `docker run -p 5000:5000 berth`.
#
# Stage 1 compiles the release binary; stage 2 is Debian slim with just that binary, CA
# certificates (for S3 and PostgreSQL over TLS) and OpenSSL's library (passkeys' webauthn-rs),
# running as an unprivileged user. Data lives in /var/lib/registry, the official registry image's path, so existing volume mounts and
# REGISTRY_* settings carry over.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p berth \
    && strip target/release/berth

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/registry --shell /usr/sbin/nologin berth \
    && mkdir -p /var/lib/registry \
    && chown berth:berth /var/lib/registry
COPY --from=build /src/target/release/berth /usr/local/bin/berth
USER berth
ENV REGISTRY_HTTP_ADDR=:5000 \
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry \
    REGISTRY_LOG_FORMATTER=json
VOLUME /var/lib/registry
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 CMD ["berth", "health"]
ENTRYPOINT ["berth"]
CMD ["serve"]
