# One image for every ASPRI service; the command picks the part (aspri whatsapp|cron|...).
FROM python:3.11-slim

# Chromium only for WHATSAPP_ENGINE=browser: docker compose build --build-arg WITH_CHROMIUM=1
ARG WITH_CHROMIUM=0
RUN if [ "$WITH_CHROMIUM" = "1" ]; then \
      apt-get update && apt-get install -y --no-install-recommends chromium nodejs npm \
      && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
COPY pyproject.toml README.md ./
COPY aspri ./aspri
RUN pip install --no-cache-dir .

RUN useradd --create-home aspri && mkdir -p /data && chown aspri /data
USER aspri
ENV ASPRI_DATA_DIR=/data ASPRI_HOST=0.0.0.0 LOG_FORMAT=json
ENTRYPOINT ["aspri"]
