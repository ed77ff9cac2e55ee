# syntax=docker/dockerfile:1
#
# waybill-watch: one image for every process; the command picks it:
#   docker run IMAGE worker | ingest | cases [migrate] | notify [migrate] | replay ...
# Build:  docker build -t ghcr.io/waybill-watch/waybill-watch:0.1.0 .
#
# Base image: python 3.11.16 on Debian bookworm, slim variant, pinned by tag AND by the digest of
# its multi-platform index (linux/amd64, arm64, arm/v7, 386, ppc64le) as published in
# docker-library/repo-info (repos/python/remote/3.11.16-slim-bookworm.md, build of 2026-09-01).
# Bump both together; `docker buildx imagetools inspect python:3.11.16-slim-bookworm` shows the
# current digest. tests/unit/test_deploy_files.py checks both stages use the same reference.

# ---- builder: build the wheel, install it and its dependencies into a venv ---------------------
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (.dockerignore lets nothing else into the context).
COPY pyproject.toml README.md LICENSE ./
COPY requirements/runtime.lock ./requirements/runtime.lock
COPY src ./src

# Dependencies come as wheels only (--only-binary): rocksdict, confluent-kafka (librdkafka
# bundled), psycopg-binary (libpq bundled), orjson and pydantic-core ship manylinux wheels for
# amd64 and arm64, so the builder needs no compiler and the runtime no -dev packages.
# The dependencies are exactly the hash-checked pins of requirements/runtime.lock (make lock),
# the same versions CI tests; the project's own wheel then goes in without resolving anything.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/waybill-watch \
 && /opt/waybill-watch/bin/python -m pip install --only-binary=:all: --require-hashes \
      -r requirements/runtime.lock \
 && /opt/waybill-watch/bin/python -m pip install --no-deps /wheels/waybill_watch-*.whl

# ---- runtime: the venv on a clean slim image, as an unprivileged user -----------------------
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS runtime

LABEL org.opencontainers.image.title="waybill-watch" \
      org.opencontainers.image.description="Stream processor for parcel-delivery anomalies on Kafka" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

# Fixed UID/GID 10001 (outside the range distributions hand out) so volume ownership and the
# Kubernetes securityContext (runAsUser/fsGroup 10001) agree on every host.
RUN groupadd --system --gid 10001 waybill-watch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/waybill-watch --shell /usr/sbin/nologin waybill-watch \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/waybill-watch /var/lib/waybill-watch/worker

COPY --from=builder /opt/waybill-watch /opt/waybill-watch

ENV PATH=/opt/waybill-watch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WAYBILL_WATCH_DATA_DIR=/var/lib/waybill-watch/worker

# Runtime system libraries: rocksdict links libstdc++.so.6 and libgcc_s.so.1 (Debian's
# libstdc++6 and libgcc-s1, present in the slim image because apt needs them);
# confluent-kafka and psycopg-binary carry their own librdkafka/libpq/OpenSSL; everything else
# needs glibc only. Importing them here fails the build if that ever changes.
RUN python -c "import confluent_kafka, orjson, psycopg, rocksdict; print(confluent_kafka.libversion())" \
 && waybill-watch --version

USER 10001:10001
WORKDIR /var/lib/waybill-watch

# The worker's RocksDB state (WAYBILL_WATCH_DATA_DIR). A cache of the changelog topics: a lost
# volume is restored from Kafka (docs/operations.md, State recovery): nothing is lost, only slower.
VOLUME ["/var/lib/waybill-watch/worker"]

# 6066 worker/ingest (callbacks, queries, /metrics /healthz /readyz), 6067 case service,
# 6068 notifier (/metrics /healthz /readyz).
EXPOSE 6066 6067 6068

# No HEALTHCHECK: the port depends on the command. deploy/compose/compose.yaml defines one per
# service and Kubernetes uses its own probes (deploy/k8s).
ENTRYPOINT ["waybill-watch"]
CMD ["worker"]
