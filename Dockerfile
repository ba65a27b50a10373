# Notifier service image. Build: docker build -t notifier .
# Run:   docker run --env-file .env -v notifier-data:/app/var notifier
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY notifier ./notifier
COPY templates ./templates
COPY config ./config
RUN pip install . && useradd --create-home --uid 10001 notifier && mkdir -p /app/var \
    && chown notifier /app/var
USER 10001

# Migrations run at start; SQLite lives in /app/var unless NOTIFIER_DATABASE_URL says otherwise.
VOLUME ["/app/var"]
EXPOSE 8000
ENTRYPOINT ["notifier"]
CMD ["serve"]
