# The streamapp worker image (also runs the one-shot `topics apply` and the simulator).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The CPU build of torch first: the default index would pull multi-GB CUDA wheels.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY streamapp ./streamapp
RUN pip install .

COPY topics.yaml ./
COPY models ./models

RUN useradd --uid 10001 --create-home streamapp \
    && mkdir -p /var/lib/streamapp \
    && chown streamapp:streamapp /var/lib/streamapp
USER streamapp

ENV WEB_HOST=0.0.0.0 \
    WEB_PORT=6066 \
    DATA_DIR=/var/lib/streamapp \
    MODELS_DIR=/app/models

EXPOSE 6066
VOLUME ["/var/lib/streamapp"]

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health/ready', timeout=3)"]

CMD ["streamapp", "worker"]
