"""Every panel of every dashboard shows data on simulated traffic: through the ops page's
API (the panel SQL with the plugin's macros expanded, on the real engine) and in headless
Chromium (the page as a person sees it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from broker import clients
from broker.embedded import free_port
from tests.integration.conftest import Pipeline
from trackline import simulator

pytestmark = pytest.mark.integration

DASHBOARDS = {d["uid"]: d for d in (json.loads(p.read_text())
                                    for p in sorted((Path(__file__).parents[2] / "dashboards").glob("*.json")))}
DEMO_THRESHOLDS = Path(__file__).parents[2] / "config" / "detection-demo.toml"


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        return json.loads(response.read())


def panel_results(port: int) -> dict[tuple[str, str], dict]:
    return {(uid, panel["title"]): get(port, f"/api/panel/{uid}/{panel['id']}")
            for uid, dashboard in DASHBOARDS.items() for panel in dashboard["panels"]}


@pytest.fixture(scope="module")
def ops(tmp_path_factory) -> dict:
    from broker.embedded import EmbeddedBroker
    from tests.integration.conftest import PARTITIONS

    with EmbeddedBroker() as embedded:
        clients.create_topics(embedded.bootstrap, PARTITIONS)
        run = Pipeline(embedded.bootstrap, tmp_path_factory.mktemp("ops") / "data")
        port = free_port()
        run.env.update(TRACKLINE_THRESHOLDS=str(DEMO_THRESHOLDS), TRACKLINE_TICK_INTERVAL="1")
        run.extra_args["sink"] = ["--ops-port", str(port)]
        try:
            run.start("worker", "sink", "notifier")
            traffic = threading.Thread(target=simulator.run, args=(clients.producer(run.bootstrap), 10, 20),
                                       kwargs={"seed": 5})
            traffic.start()
            traffic.join()
            # The last deadlines (presumed lost: 30 s) pass, then every panel has rows.
            run.wait_for(lambda: all(r["rows"] for r in panel_results(port).values()), 120,
                         "every dashboard panel to show data")
            results = panel_results(port)
            pages = {uid: chromium_dom(f"http://127.0.0.1:{port}/d/{uid}") for uid in DASHBOARDS}
            return {"results": results, "pages": pages}
        finally:
            run.stop()


def chromium_dom(url: str) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed: `make test` installs Debian's chromium package"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--virtual-time-budget=30000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    return done.stdout


def test_every_panel_query_returns_the_columns_its_panel_draws(ops):
    for (uid, title), result in ops["results"].items():
        panel = next(p for p in DASHBOARDS[uid]["panels"] if p["title"] == title)
        assert result["rows"], f"{uid}: {title!r} would show No data"
        assert len(result["columns"]) >= 2, f"{uid}: {title!r}"
        if panel["type"] == "timeseries":
            assert result["columns"][0] == "time", f"{uid}: {title!r} has no time column"
            assert all(isinstance(row[-1], (int, float)) for row in result["rows"]), f"{uid}: {title!r}"


def test_every_dashboard_offers_the_template_variables_ops_filter_by(ops):
    names = {v["name"] for d in DASHBOARDS.values() for v in d["templating"]["list"]}
    assert {"carrier", "service_level", "seller", "fulfillment_center", "order_id"} <= names
    assert len(DASHBOARDS) == 5


def test_headless_chromium_sees_data_in_every_panel(ops):
    for uid, dom in ops["pages"].items():
        states = re.findall(r'<div class="panel" id="panel-(\d+)" data-state="(\w+)"', dom)
        assert len(states) == len(DASHBOARDS[uid]["panels"]), f"{uid}: {dom[:500]}"
        assert {state for _, state in states} == {"data"}, f"{uid}: {states}"
        assert DASHBOARDS[uid]["title"] in dom
