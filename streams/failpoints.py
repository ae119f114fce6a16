"""Failpoints: named places where a test or a chaos run makes a process fail on purpose.

Enabled by ``TRACKLINE_FAILPOINTS``, a comma-separated list of:

- ``name``: every hit fires;
- ``name:count``: the first ``count`` hits fire;
- ``name@n``: the ``n``-th hit fires, once (a kill in the middle of a run, not at its start);
- ``name:30s``: every hit fires for 30 seconds from the first hit (an outage).

Unset, each check is one dict lookup. The points:

- ``produce_error`` (worker): after a batch was handed to the producer, the send fails, as a
  broker error would;
- ``batch_error`` (worker): a batch fails outside any one record (as a bug or a store error
  would), before its effects are sent;
- ``kill_after_send`` (worker): after a batch's effects are stored and before its state is, the
  process exits at once, as kill -9 would;
- ``notifier_kill_after_send`` (notifier): after a receiver took a message and before its
  outcome is on the ledger, the process exits at once;
- ``sink_kill_after_insert`` (sink): after a batch is in ClickHouse and before its offsets are
  committed, the process exits at once;
- ``clickhouse_unavailable`` (sink): every ClickHouse insert fails as a refused connection would.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass
class _Point:
    count: int | None = None  # hits left that fire; None: every hit
    nth: int | None = None  # fire at this hit only
    seconds: float | None = None  # fire for this long from the first hit
    hits: int = 0
    first_hit: float | None = None


def _parse(spec: str) -> dict[str, _Point]:
    points: dict[str, _Point] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if "@" in item:
            name, _, nth = item.partition("@")
            points[name] = _Point(nth=int(nth))
            continue
        name, _, count = item.partition(":")
        if count.endswith("s"):
            points[name] = _Point(seconds=float(count[:-1]))
        else:
            points[name] = _Point(count=int(count) if count else None)
    return points


_ARMED = _parse(os.environ.get("TRACKLINE_FAILPOINTS", ""))


def hit(name: str) -> bool:
    """True if the failpoint ``name`` fires now (counting its hits)."""
    point = _ARMED.get(name)
    if point is None:
        return False
    point.hits += 1
    if point.nth is not None:
        return point.hits == point.nth
    if point.seconds is not None:
        now = time.monotonic()
        if point.first_hit is None:
            point.first_hit = now
        return now - point.first_hit < point.seconds
    if point.count is None:
        return True
    if point.count <= 0:
        return False
    point.count -= 1
    return True


def kill_if(name: str) -> None:
    if hit(name):
        os._exit(137)
