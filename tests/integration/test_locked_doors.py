"""The worker's web server: trackline's documented routes only, and the order lookup needs the
support token."""

from __future__ import annotations

import socket

import pytest

from tests.integration.conftest import SUPPORT_TOKEN, Pipeline

pytestmark = pytest.mark.integration

# What Faust serves by default: every table's contents, key routing, the topology, statistics.
FAUST_VIEWS = ["/router/", "/router/orders/ORD-1/", "/table/", "/table/orders/", "/table/orders/ORD-1/",
               "/graph/", "/stats/", "/assignment/", "/performance/", "/signal/"]


def wait_for_web(run: Pipeline) -> None:
    def answering() -> bool:
        try:
            socket.create_connection(("127.0.0.1", run.web_port), timeout=1).close()
            return True
        except OSError:
            return False

    run.wait_for(answering, 90, "the worker's web server")


def test_the_worker_serves_no_faust_view_and_the_lookup_needs_the_support_token(pipeline):
    pipeline.start("worker")
    wait_for_web(pipeline)
    for path in FAUST_VIEWS:
        status, _ = pipeline.get(path, SUPPORT_TOKEN)
        assert status == 404, f"{path} answered {status}"

    status, body = pipeline.lookup("ORD-1", token=None)
    assert status == 401 and "support token" in body["error"]
    assert pipeline.lookup("ORD-1", token="a-guess")[0] == 401
    assert pipeline.lookup("ORD-1", token=SUPPORT_TOKEN[:-1])[0] == 401
    # With the token: the lookup itself answers, 503 until the worker owns partitions, then
    # 404 (no such order).
    pipeline.wait_for(lambda: pipeline.lookup("ORD-1")[0] != 503, 90, "the worker to own partitions")
    status, body = pipeline.lookup("ORD-1")
    assert (status, body.get("error")) == (404, "order not found"), (status, body)


def test_without_a_configured_token_the_lookup_is_closed_to_everyone(pipeline):
    del pipeline.env["TRACKLINE_SUPPORT_TOKEN"]
    pipeline.start("worker")
    wait_for_web(pipeline)
    status, body = pipeline.lookup("ORD-1", token="anything")
    assert status == 401 and "TRACKLINE_SUPPORT_TOKEN" in body["error"]


def this_machines_outside_address() -> str | None:
    """An address of this machine other than loopback (the one used to reach the outside)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_worker_listens_on_loopback_unless_told_otherwise(pipeline):
    outside = this_machines_outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback to try from")
    pipeline.start("worker")
    wait_for_web(pipeline)
    with pytest.raises(OSError):  # refused: nothing listens there
        socket.create_connection((outside, pipeline.web_port), timeout=2).close()
    pipeline.stop("worker")
    pipeline.env["TRACKLINE_WEB_BIND"] = "0.0.0.0"  # told otherwise: other hosts may connect
    pipeline.start("worker")
    pipeline.wait_for(lambda: _connects(outside, pipeline.web_port), 90, "the worker on every interface")


def _connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
