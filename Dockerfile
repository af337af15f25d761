# A millstream worker image: the package, its dependencies and the examples.
#
#     docker build -t millstream .
#     docker run --rm -e MILLSTREAM_BOOTSTRAP_SERVERS=host:9092 millstream worker examples.fraud.detectors:app
#
# The entrypoint is the `millstream` command; the working directory /app is on the
# import path of `millstream worker`, so apps under /app (examples/, or your own
# copied or mounted there) are found as module:attribute.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first (its layer is rebuilt only when the package changes).
COPY pyproject.toml README.md ./
COPY millstream ./millstream
COPY producers ./producers
COPY processors ./processors
COPY sinks ./sinks
COPY config ./config
# The fraud example writes to PostgreSQL and Parquet files, and has a dashboard.
RUN pip install '.[postgres,parquet,dashboard]' \
    && useradd --create-home --uid 10001 millstream \
    && mkdir -p /app/.local \
    && chown millstream /app/.local

COPY examples ./examples

USER millstream
# State stores and caches (MILLSTREAM_LOCAL_DIR defaults to .local in /app).
VOLUME ["/app/.local"]
ENTRYPOINT ["millstream"]
CMD ["--help"]
