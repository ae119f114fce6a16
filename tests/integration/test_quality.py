"""`make quality` on a small world: the real pipeline at accelerated event time, scored."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from trackline.quality.run import run_quality

pytestmark = pytest.mark.integration


def test_a_replayed_world_is_judged_on_its_own_clock_and_a_missed_promise_is_told_exactly(tmp_path, capsys):
    # Orders keep coming (12 days) while the scored ones (the first 3) travel: a replay's clock
    # moves only with its records.
    results = run_quality(partitions=4, pace=20_000, days=12, orders_per_day=40, scored_days=3,
                          out=tmp_path / "quality.json")
    # Records mode: the rules' "now" is the records' time, weeks before the wall clock; every
    # alert and command was decided by the last record's time, none at the wall clock.
    last = datetime.fromisoformat(results["last_record_at"])
    assert datetime.fromisoformat(results["latest_decision_at"]) <= last + timedelta(minutes=1)
    assert results["late"] > 0
    # A missed promise is a fact once the promised day has ended without a delivery: told for
    # every late package of the world, and never for one delivered in time.
    missed = results["notices"]["promise_missed"]
    assert (missed["precision"], missed["recall"]) == (1.0, 1.0)
    # Never before the promised day ended, and the same day: the replay's clock moves only with
    # its records, and the slowest input partition holds it back, so hours here include the
    # gaps of a sparse small world.
    assert 0 < missed["hours_after_true_moment"]["p50"] and missed["hours_after_true_moment"]["p90"] < 24
    assert results["estimates"]["at each scan"]["carrier"]["points"] > 0
    assert "customer delay notices" in capsys.readouterr().out
