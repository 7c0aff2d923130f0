# The one image for every attrib service (ingress, worker, sink, migrate); the compose command picks the role.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY attrib attrib
COPY ingest ingest
COPY streams streams
COPY schemas schemas
COPY sinks sinks
RUN pip install --no-cache-dir . && useradd --system attrib && mkdir -p /var/lib/attrib && chown attrib /var/lib/attrib
USER attrib
CMD ["attrib", "--help"]
