# Notifier service image, in two stages: the build stage installs the locked dependencies
# (requirements.lock, every hash checked) and Notifier's own wheel into a virtualenv; the runtime
# stage copies only that virtualenv (no compiler, no pip cache, no sandbox, no tests).
# Build: docker build -t notifier .
# Run:   docker run --env-file .env -p 8000:8000 -v notifier-data:/app/var notifier
# Steps followed in CI by tests/acceptance/test_packaging.py (no image can be built there).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/notifier
COPY requirements.lock ./
RUN /opt/notifier/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY notifier ./notifier
COPY templates ./templates
RUN /opt/notifier/bin/pip install --no-deps . && /opt/notifier/bin/pip check

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/notifier/bin:$PATH \
    NOTIFIER_HTTP_HOST=0.0.0.0 NOTIFIER_HTTP_PORT=8000 \
    NOTIFIER_DATABASE_URL=sqlite:////app/var/notifier.db
RUN useradd --create-home --uid 10001 notifier && mkdir -p /app/var && chown notifier /app/var
COPY --from=build /opt/notifier /opt/notifier
WORKDIR /app
COPY config ./config
USER 10001

# SQLite lives in /app/var unless NOTIFIER_DATABASE_URL names PostgreSQL. `serve` creates and
# migrates the database; every other command refuses one that is missing or behind.
VOLUME ["/app/var"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NOTIFIER_HTTP_PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["notifier"]
CMD ["serve"]
