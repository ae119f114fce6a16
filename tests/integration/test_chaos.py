"""The short chaos run (``make chaos`` runs the long one): each fault once over a seeded
workload, every command and history row counted against the pure core's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackline.chaos import SHORT, ChaosRun, format_report

pytestmark = pytest.mark.integration


def test_every_fault_once_loses_nothing_and_tells_no_customer_twice(tmp_path: Path) -> None:
    report = ChaosRun(SHORT, tmp_path / "chaos", seed=5).run()
    printed = format_report(report)
    total = report["total"]
    assert [row["fault"] for row in report["phases"]] == SHORT.faults
    assert total["commands_expected"] > 1000, printed  # the workload is not trivially small
    assert total["commands_missing"] == 0, printed
    assert total["history_missing"] == 0, printed
    assert total["unexpected_commands"] == 0, printed
    # After the receiver drops repeats by Idempotency-Key, nobody hears anything twice.
    assert total["delivered_twice_after_dedupe"] == 0, printed
    assert total["dead_letters"] == 0, printed
    assert all(row["caught_up_seconds"] is not None for row in report["phases"]), printed
    # The failpoints struck: each restarted process was killed in its window, not left alone.
    assert {"worker", "notifier", "sink"} <= set(total["restarts_by_supervisor"]), printed
