"""docker-compose.yml is the production picture: it must parse, check every service's
health and mount provisioning that exists in this repository."""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_has_a_health_check():
    services = compose()["services"]
    assert {"kafka", "clickhouse", "grafana", "worker", "sink", "notifier", "simulator"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"


def test_mounted_provisioning_paths_exist():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_trackline_services_point_at_the_cluster_not_the_embedded_stack():
    for name in ("worker", "sink", "notifier", "simulator"):
        env = compose()["services"][name]["environment"]
        assert env["TRACKLINE_KAFKA"] == "kafka:9092"
        assert env["TRACKLINE_CLICKHOUSE"].startswith("http://")
