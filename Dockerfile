# The API and the worker share one image; compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY backorders ./backorders
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY migrations ./migrations
COPY worker.py alembic.ini ./
RUN pip install --no-cache-dir -c requirements.lock . \
    && useradd --system --uid 10001 backorders
USER backorders

EXPOSE 8000
CMD ["uvicorn", "api.app:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8000"]
