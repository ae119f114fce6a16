"""Grafana dashboards (ClickHouse and Prometheus) and their provisioning: package data."""
