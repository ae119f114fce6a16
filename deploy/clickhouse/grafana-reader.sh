#!/bin/bash
# Run once by the ClickHouse image on a fresh data volume (/docker-entrypoint-initdb.d):
# Grafana's datasource user may read trackline's database and nothing else.
set -euo pipefail
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE USER IF NOT EXISTS grafana_reader IDENTIFIED WITH sha256_password BY '${GRAFANA_CLICKHOUSE_PASSWORD}'
    SETTINGS readonly = 1;
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO grafana_reader;
SQL
