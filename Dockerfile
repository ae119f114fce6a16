# One image for every trackline process; the command picks the role.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models models
COPY streams streams
COPY sinks sinks
COPY notifier notifier
COPY ingest ingest
COPY broker broker
COPY trackline trackline
COPY config config
COPY dashboards dashboards
RUN pip install --no-cache-dir .
ENV TRACKLINE_DATA_DIR=/var/lib/trackline
ENTRYPOINT ["trackline"]
