# The opa image: opa-core and every driver package from this repository, plus the examples.
#
#   docker build -t opa:local .
#   docker run -p 8000:8000 -v "$PWD/plugins:/app/plugins:ro" opa:local
#
# Worker mode runs the same image with another command (it needs a Celery component in
# the settings):
#
#   docker run opa:local opa worker -Q counter -n counter@%h -l info
#
# Settings come from OPA_* environment variables and /app/settings (OPA_SETTINGS_DIR).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY packages/ /src/packages/
RUN pip install \
        /src/packages/opa-core \
        /src/packages/opa-redis-common \
        /src/packages/opa-driver-redis-walrus \
        /src/packages/opa-driver-redis-aioredis \
        /src/packages/opa-mongodb-common \
        /src/packages/opa-driver-mongodb-motor \
        /src/packages/opa-driver-mongodb-pymongo \
        /src/packages/opa-driver-celery \
        /src/packages/opa-driver-sqlalchemy \
    && rm -rf /src

COPY examples/ /app/examples/
RUN useradd --create-home --uid 10001 --user-group opa \
    && mkdir -p /app/plugins /app/settings \
    && chown -R opa:opa /app

WORKDIR /app
USER opa
ENV OPA_PLUGIN_PATHS=/app/plugins \
    OPA_SETTINGS_DIR=/app/settings

EXPOSE 8000
CMD ["opa", "run", "--host", "0.0.0.0", "--port", "8000"]
