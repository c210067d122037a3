# One image for every dispatcher process: api, worker, scheduler (see docker-compose.yml).
# Run as it is, it serves the README's default: SQLite in the /data volume, an in-process worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DISPATCHER_DATABASE_URL=sqlite:////data/dispatcher.db

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY dispatcher/ dispatcher/
COPY templates/ templates/
# The templates install with the package; the process needs write access to /data only.
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --no-create-home --home-dir /data dispatcher \
    && mkdir /data \
    && chown dispatcher:dispatcher /data
VOLUME ["/data"]

USER dispatcher
EXPOSE 8000
# Healthy when /readyz answers 200: database (and broker) reachable, templates loaded. Worker
# and scheduler containers serve no HTTP: docker-compose.yml turns this check off for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('DISPATCHER_PORT', '8000'), timeout=4)"]
CMD ["dispatcher", "serve", "--host", "0.0.0.0"]
