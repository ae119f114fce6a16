"""The world ``make quality`` scores against: frozen, out of the model's reach, and telling the
truth about what its own messages say (read back through the real adapters)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from statistics import mean, median
from zoneinfo import ZoneInfo

import pytest

from models import topics
from models.carriers import parse_payload
from models.events import OrderPlaced, PackageStatus
from models.fulfillment import parse_fulfillment_event
from trackline.quality.run import worker_env
from trackline.quality.world import FROZEN_SHA256, PARAMETERS, World, parameters_hash

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def world() -> tuple[World, list]:
    w = World(days=6, orders_per_day=120)
    return w, w.messages()


def test_the_parameters_are_the_frozen_ones() -> None:
    assert parameters_hash() == FROZEN_SHA256, (
        f"{PARAMETERS} changed: a deliberate act, recorded with the figures it produced (update FROZEN_SHA256)")


def test_nothing_the_pipeline_runs_reads_the_worlds_parameters() -> None:
    """The estimate model must learn from what the pipeline saw, never from the world's dials."""
    for package in ("models", "streams", "sinks", "notifier", "ingest", "broker"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "quality-world" not in text, path
            for node in ast.walk(ast.parse(text)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.startswith("trackline.quality") for n in names), path


def test_the_same_seed_gives_the_same_world() -> None:
    first = [(m.key, m.value, m.received_at) for m in World(days=1, orders_per_day=30).messages()]
    again = [(m.key, m.value, m.received_at) for m in World(days=1, orders_per_day=30).messages()]
    assert first == again


def test_another_seed_gives_another_history_with_the_same_dials() -> None:
    # `trackline quality --seed`: a figure measured on one history is checked on another.
    frozen = World(days=1, orders_per_day=30)
    other = World(days=1, orders_per_day=30, seed=7)
    frozen.messages(), other.messages()
    assert frozen.truth.keys() == other.truth.keys()  # the same orders, placed by the same dials
    assert [t.delivered_at for t in frozen.truth.values()] != [t.delivered_at for t in other.truth.values()]


def test_a_quality_run_measures_the_thresholds_named_and_never_the_shells() -> None:
    # `trackline quality --thresholds FILE` measures a setting before a deployment turns it on;
    # without it the production defaults, whatever TRACKLINE_THRESHOLDS the caller's shell holds.
    shell = {"TRACKLINE_THRESHOLDS": "/etc/trackline/old.toml", "TRACKLINE_KAFKA": "kafka:9092", "PATH": "/bin"}
    assert "TRACKLINE_THRESHOLDS" not in worker_env(shell, 0.25, None)
    named = worker_env(shell, 0.25, Path("config/detection.toml"))
    assert named["TRACKLINE_THRESHOLDS"] == str(Path("config/detection.toml").resolve())
    assert "TRACKLINE_KAFKA" not in named and named["TRACKLINE_WATERMARK_CLOCK"] == "records"
    assert named["PATH"] == "/bin"


def test_a_thresholds_file_that_does_not_read_stops_a_quality_run_before_it_starts(tmp_path) -> None:
    from trackline.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("lane_model_window = -3\n")
    for path in (bad, tmp_path / "missing.toml"):
        with pytest.raises(SystemExit) as stopped:
            main(["quality", "--data-dir", str(tmp_path), "--thresholds", str(path)])
        assert str(stopped.value.code).startswith(f"trackline quality: --thresholds {path}: ")


def test_every_message_is_read_by_the_real_adapters_and_agrees_with_the_truth(world) -> None:
    w, messages = world
    last_webhook: dict[str, object] = {}
    for m in messages:
        if m.topic == topics.FC_EVENTS:
            event = parse_fulfillment_event(m.value)
            if isinstance(event, OrderPlaced):
                truth = w.truth[event.order_id]
                assert event.promised_delivery_date == truth.promised
                assert event.destination is not None and event.destination.region == truth.destination_state
        else:
            last_webhook[m.key.decode()] = m
    assert len(last_webhook) == len(w.truth)
    for truth in w.truth.values():
        m = last_webhook[truth.tracking_number]
        scans = parse_payload(truth.source, m.value, m.received_at).scans  # type: ignore[attr-defined]
        assert [s.occurred_at for s in scans] == [at for at, _ in truth.scans]
        if truth.delivered_at is not None:
            assert scans[-1].status is PackageStatus.delivered and scans[-1].occurred_at == truth.delivered_at
        else:
            assert truth.lost and all(s.status is not PackageStatus.delivered for s in scans)
        if truth.estimates:  # the date the carrier published last is what its webhook says
            assert scans[-1].estimated_delivery == truth.estimates[-1].delivery_date


def test_carriers_deliver_only_on_their_working_days_and_in_daytime(world) -> None:
    w, _ = world
    for truth in w.truth.values():
        if truth.delivered_at is None:
            continue
        local = truth.delivered_at.astimezone(ZoneInfo(truth.time_zone))
        assert local.weekday() in w.p["carriers"][truth.carrier]["working_days"]
        assert 9 <= local.hour < 20


def test_lanes_differ_by_distance_and_carriers_by_their_estimate_habits(world) -> None:
    w, _ = world
    transit: dict[str, list[float]] = defaultdict(list)
    first_error: dict[str, list[int]] = defaultdict(list)
    for t in w.truth.values():
        if t.delivered_at is None:
            continue
        if t.service_level == "standard":
            transit[t.distance].append((t.delivered_at - t.shipped_at).total_seconds() / 86400)
        if t.estimates and t.delivered_date is not None:
            first_error[t.carrier].append((t.estimates[0].delivery_date - t.delivered_date).days)
    assert median(transit["same"]) < median(transit["near"]) < median(transit["far"])
    # USPS is set optimistic (its first dates come early), UPS unbiased.
    assert mean(first_error["USPS"]) < -0.4 < mean(first_error["UPS"])


def test_late_means_after_the_promised_day_where_the_customer_lives(world) -> None:
    w, _ = world
    late = [t for t in w.truth.values() if t.late]
    assert late and len(late) < len(w.truth) / 4
    for t in w.truth.values():
        if t.delivered_date is not None:
            assert t.late == (t.delivered_date > t.promised)
        if t.late:
            assert t.late_at is not None and t.late_at.astimezone(ZoneInfo(t.time_zone)).date() > t.promised
