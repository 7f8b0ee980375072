# The API, the worker and the migrations share one image; compose picks the command
# (docker-compose.yml). Every package and module pyproject.toml installs is copied:
# tests/test_deploy.py checks it, and starts these commands against real servers.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY backorders ./backorders
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY handoff ./handoff
COPY migrations ./migrations
COPY worker.py alembic.ini ./
RUN pip install --no-cache-dir -c requirements.lock . \
    && groupadd --system --gid 10001 backorders \
    && useradd --system --uid 10001 --gid 10001 --create-home backorders
USER 10001:10001

# 8000: the API (uvicorn). 9464: a worker's metrics (WORKER_METRICS_ADDRESS).
EXPOSE 8000 9464
CMD ["uvicorn", "api.app:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "25"]
