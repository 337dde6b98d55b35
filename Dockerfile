# The guard server (docs/server.md): `valueguard serve` in front of an OpenAI-compatible upstream.
#   docker build -t valueguard-server .
#   docker run --rm -p 127.0.0.1:8000:8000 -e VALUEGUARD_API_KEYS=... valueguard-server --upstream http://HOST:8080/v1
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRANSFORMERS_VERBOSITY=error \
    HF_HUB_DISABLE_TELEMETRY=1 \
    VALUEGUARD_DATA_DIR=/var/lib/valueguard

# torch first, pinned to the CPU build: an unpinned torch pulls a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /opt/valueguard
COPY pyproject.toml README.md ./
COPY valueguard ./valueguard
COPY policies ./policies
RUN pip install ".[server]"

# The reference data and the index (and the query backend's ONNX export) are made once, at build time: the
# container starts serving in seconds and needs no network but the upstream's.
RUN valueguard data pull && valueguard index build

RUN useradd --system --no-create-home valueguard
USER valueguard
EXPOSE 8000
# 0.0.0.0 inside the container only, so that a published port reaches it: publish it on the loopback
# (-p 127.0.0.1:8000:8000) or behind a gateway, and set API keys before exposing it further.
ENTRYPOINT ["valueguard", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--help"]
