# skills-hub server: the same app as `make serve`, data in the /data volume.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends git bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data hub \
 && mkdir -p /data && chown hub /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY skills_hub ./skills_hub
COPY templates ./templates
COPY static ./static
COPY registry/seed ./registry/seed

# CPU torch first, from PyTorch's CPU index, so the semantic extra never pulls CUDA.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu" \
 && pip install --no-cache-dir ".[semantic]" \
 && rm -rf /src

ENV SKILLS_HUB_HOME=/data \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1
USER hub
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4)" || exit 1
CMD ["skills-hub", "serve", "--host", "0.0.0.0", "--port", "8000"]
