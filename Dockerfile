# agentwatch: `agentwatch serve` (OTLP receivers, write-ahead log, detectors, query API).
# Built by docker-compose.yml; runs on its own too:
#   docker build -t agentwatch . && docker run -p 8000:8000 -v agentwatch-data:/data \
#     -e AGENTWATCH_API=0.0.0.0:8000 -e AGENTWATCH_API_TOKENS=secret=default agentwatch
# (binding anything but loopback needs AGENTWATCH_*_TOKENS; see README "Running it").

# --- build: compile the wire walkers (ingest/_wirescan.c, _flatrows.c) and install -----
FROM python:3.11-slim AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/agentwatch
ENV PATH=/opt/agentwatch/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentwatch ./agentwatch
COPY collector ./collector
COPY ingest ./ingest
COPY detectors ./detectors
COPY api ./api
RUN pip install .
# The extensions are optional in pyproject (pure Python is the fallback on machines without
# a compiler); in the image they must be there. Checked outside /src, so the installed
# package is imported and not the source tree.
RUN cd / && python -c "import ingest._wirescan, ingest._flatrows"

# --- runtime: no compiler, non-root ----------------------------------------------------
FROM python:3.11-slim

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/agentwatch agentwatch \
    && mkdir /data \
    && chown agentwatch:agentwatch /data

COPY --from=build /opt/agentwatch /opt/agentwatch
ENV PATH=/opt/agentwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AGENTWATCH_DATA_DIR=/data

USER agentwatch
WORKDIR /home/agentwatch
# Write-ahead log, dead letters, detector state (and chDB when no ClickHouse URL is set).
VOLUME /data
# OTLP/gRPC, OTLP/HTTP, query API.
EXPOSE 4317 4318 8000

# No curl in slim: ask /healthz with Python, on the port AGENTWATCH_API names.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('AGENTWATCH_API', '127.0.0.1:8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# SIGTERM drains (every accepted span is stored) before exit: give it
# AGENTWATCH_DRAIN_TIMEOUT_S (default 30 s) plus a margin, e.g. `stop_grace_period: 45s`.
ENTRYPOINT ["agentwatch", "serve"]
