# A millstream worker image: the package and its dependencies in a virtualenv, the
# examples, and nothing to build them with (docs/operations.md).
#
#     docker build -t millstream:0.1.0 .
#     docker run --rm -e MILLSTREAM_BOOTSTRAP_SERVERS=host:9092 millstream:0.1.0
#
# One worker process per container by default (scale with more containers, not
# --processes). The entrypoint is the `millstream` command; the working directory /app
# is on the import path of `millstream worker`, so apps under /app (examples/, or your
# own copied or mounted there) are found as module:attribute. It runs as uid 10001 and
# serves /metrics, /healthz and /readyz on port 9400.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
RUN python -m venv /opt/millstream
# The package first (its layer is rebuilt only when the package changes).
COPY pyproject.toml README.md ./
COPY millstream ./millstream
COPY producers ./producers
COPY processors ./processors
COPY sinks ./sinks
COPY config ./config
# The fraud example writes to PostgreSQL and Parquet files, and has a dashboard.
RUN /opt/millstream/bin/pip install '.[postgres,parquet,dashboard]'

FROM python:3.11-slim

ENV PATH=/opt/millstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MILLSTREAM_LOCAL_DIR=/var/lib/millstream \
    MILLSTREAM_METRICS_PORT=9400 \
    MILLSTREAM_METRICS_HOST=0.0.0.0

RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home millstream \
    && mkdir -p /var/lib/millstream \
    && chown 10001:10001 /var/lib/millstream

COPY --from=build /opt/millstream /opt/millstream
WORKDIR /app
COPY examples ./examples

# A number, not a name: Kubernetes' runAsNonRoot can only verify a numeric user.
USER 10001:10001
# State stores (RocksDB) and caches: a volume, so a restarted container keeps them.
VOLUME ["/var/lib/millstream"]
EXPOSE 9400
# The image has no curl: Python asks /healthz (200 while the processing loop is alive).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MILLSTREAM_METRICS_PORT', '9400'), timeout=4)"]
ENTRYPOINT ["millstream"]
CMD ["worker", "examples.fraud.detectors:app"]
