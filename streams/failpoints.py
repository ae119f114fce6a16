"""Failpoints: named places where a test or a chaos run makes the worker fail on purpose.

Enabled by ``TRACKLINE_FAILPOINTS``, a comma-separated list of ``name`` or ``name:count``
(the first ``count`` hits fail; no count: every hit). Unset, each check is one dict lookup.

- ``produce_error``: after a batch was handed to the producer, the send fails, as a broker
  error would;
- ``batch_error``: a batch fails outside any one record (as a bug or a store error would),
  before its effects are sent;
- ``kill_after_send``: after a batch's effects are stored and before its state is, the
  process exits at once, as kill -9 would.
"""

from __future__ import annotations

import os


def _parse(spec: str) -> dict[str, int | None]:
    points: dict[str, int | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        points[name] = int(count) if count else None
    return points


_ARMED = _parse(os.environ.get("TRACKLINE_FAILPOINTS", ""))


def hit(name: str) -> bool:
    """True if the failpoint ``name`` fires now (counting down its remaining hits)."""
    if name not in _ARMED:
        return False
    remaining = _ARMED[name]
    if remaining is None:
        return True
    if remaining <= 0:
        return False
    _ARMED[name] = remaining - 1
    return True


def kill_if(name: str) -> None:
    if hit(name):
        os._exit(137)
