# syntax=docker/dockerfile:1
# One Dockerfile, one target per service:
#   docker build --target auth-service -t auth-service .
#   docker build --target history-service -t history-service .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin auth-service --bin history-service \
 && mkdir -p /out \
 && cp target/release/auth-service target/release/history-service /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# An unprivileged user; the services need no file system access.
USER 65532:65532

FROM runtime AS auth-service
COPY --from=build /out/auth-service /usr/local/bin/auth-service
ENV AUTH_LISTEN=0.0.0.0:50051 AUTH_METRICS_LISTEN=0.0.0.0:9091 LOG_FORMAT=json
EXPOSE 50051 9091
HEALTHCHECK --interval=5s --timeout=4s --retries=12 CMD ["auth-service", "healthcheck"]
ENTRYPOINT ["auth-service"]

FROM runtime AS history-service
COPY --from=build /out/history-service /usr/local/bin/history-service
ENV HISTORY_LISTEN=0.0.0.0:50052 HISTORY_METRICS_LISTEN=0.0.0.0:9092 LOG_FORMAT=json
EXPOSE 50052 9092
HEALTHCHECK --interval=5s --timeout=4s --retries=12 CMD ["history-service", "healthcheck"]
ENTRYPOINT ["history-service"]
