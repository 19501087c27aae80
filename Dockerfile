# forge: the ClientForge ChatOps bot.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 forge
COPY --from=build /install /usr/local
USER forge
WORKDIR /home/forge
ENV FORGE_HTTP_HOST=0.0.0.0 FORGE_HTTP_PORT=3100 PYTHONUNBUFFERED=1
EXPOSE 3100
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"FORGE_HTTP_PORT\",\"3100\")}/healthz', timeout=2)"
CMD ["forge", "serve"]
