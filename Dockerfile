# One image for every trackline process; the command picks the role. Production talks to
# Apache Kafka and a ClickHouse server: the embedded engines (trackline[embedded]: chDB, the
# Tansu broker) are not installed here. Versions come from the lock file, then trackline
# itself goes in without resolving anything again.
FROM python:3.11-slim
WORKDIR /app
COPY requirements/prod.lock requirements/prod.lock
RUN pip install --no-cache-dir -r requirements/prod.lock
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
RUN pip install --no-cache-dir --no-deps .
ENV TRACKLINE_DATA_DIR=/var/lib/trackline
ENTRYPOINT ["trackline"]
