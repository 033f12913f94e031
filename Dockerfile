# One image for every ASPRI service; the command picks the part (aspri whatsapp|cron|...).
# Installed from uv.lock: the exact versions and hashes `make test` ran with. Two stages, so
# the image carries the virtualenv only (no uv, no build cache); it runs as a non-root user.
ARG PYTHON_IMAGE=python:3.11.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Chromium and Playwright only for WHATSAPP_ENGINE=browser: --build-arg WITH_CHROMIUM=1
ARG WITH_CHROMIUM=0
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
# Dependencies first: this layer is reused while only ASPRI's own code changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-install-project --no-editable --no-cache \
      $([ "$WITH_CHROMIUM" = "1" ] && echo --extra browser)
COPY README.md LICENSE ./
COPY aspri ./aspri
RUN uv sync --locked --no-editable --no-cache $([ "$WITH_CHROMIUM" = "1" ] && echo --extra browser)

FROM ${PYTHON_IMAGE}
ARG WITH_CHROMIUM=0
RUN if [ "$WITH_CHROMIUM" = "1" ]; then \
      apt-get update && apt-get install -y --no-install-recommends chromium nodejs npm \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN useradd --create-home --uid 10001 aspri && mkdir -p /data && chown aspri /data
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 \
    ASPRI_DATA_DIR=/data ASPRI_HOST=0.0.0.0 LOG_FORMAT=json
USER aspri
WORKDIR /home/aspri
ENTRYPOINT ["aspri"]
