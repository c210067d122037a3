# One image for every dispatcher process: api, worker, scheduler (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DISPATCHER_TEMPLATES_DIR=/app/templates

WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatcher/ dispatcher/
RUN pip install . && useradd --system --uid 10001 --home-dir /app dispatcher
COPY templates/ templates/

USER dispatcher
EXPOSE 8000
CMD ["dispatcher", "serve", "--host", "0.0.0.0"]
