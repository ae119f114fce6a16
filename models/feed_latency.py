"""How late each feed reports: the allowance a deadline waits before a customer hears of it.

Carriers report events late by nature (a scan's arrival trails it by minutes to hours).
For each (source, carrier) the last N delays of first-seen events (``ingested_at -
occurred_at``) are kept; the allowance is their p99, clamped to a configured floor and cap,
and a configured starting value until enough were seen. An ops alert opens when the
watermark passes a deadline; the customer is told only once it passed the deadline plus
the allowance, so a scan that arrives inside it and shows the deadline was met closes the
alert and nobody is told.
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import orjson

from models.thresholds import Thresholds

FULFILLMENT = "fulfillment"  # the source of fulfillment-center events (warehouse deadlines)


class FeedLatency:
    def __init__(self, rules: Thresholds) -> None:
        self.rules = rules
        self.delays: dict[tuple[str, str], deque[float]] = {}
        self.changed = False
        self.undo: dict[tuple[str, str], list[float] | None] = {}  # see begin()
        self.undo_changed = False
        # False while an order's events are applied again within a batch (models.order.apply_batch):
        # their delays were counted the first time.
        self.counting = True

    def observe(self, source: str, carrier: str, delay_seconds: float) -> None:
        if not self.counting:
            return
        key = (source, carrier)
        window = self.delays.get(key)
        if key not in self.undo:
            self.undo[key] = None if window is None else list(window)
        if window is None:
            window = self.delays[key] = deque(maxlen=self.rules.feed_latency_samples)
        window.append(max(0.0, delay_seconds))
        self.changed = True

    def allowance(self, source: str, carrier: str) -> timedelta:
        """The allowance for a feed; with no source known, the largest over the carrier's feeds."""
        if source:
            return self._allowance(self.delays.get((source, carrier)))
        windows = [w for (_, c), w in self.delays.items() if c == carrier]
        if not windows:
            return self._allowance(None)
        return max(self._allowance(w) for w in windows)

    def _allowance(self, window: deque[float] | None) -> timedelta:
        rules = self.rules
        if window is None or len(window) < rules.feed_latency_min_samples:
            minutes = rules.feed_allowance_start_minutes
        else:
            ordered = sorted(window)
            minutes = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 60
        minutes = min(max(minutes, rules.feed_allowance_floor_minutes), rules.feed_allowance_cap_minutes)
        return timedelta(minutes=minutes)

    def begin(self) -> None:
        """Remember each window as it is before its first change from here: ``rollback`` goes
        back to that point when a batch is applied again after a failed send."""
        self.undo = {}
        self.undo_changed = self.changed

    def rollback(self) -> None:
        for key, delays in self.undo.items():
            if delays is None:
                self.delays.pop(key, None)
            else:
                self.delays[key] = deque(delays, maxlen=self.rules.feed_latency_samples)
        self.changed = self.undo_changed
        self.undo = {}

    def dump(self) -> bytes:
        return orjson.dumps([[source, carrier, list(window)] for (source, carrier), window in self.delays.items()])

    @classmethod
    def load(cls, raw: bytes | None, rules: Thresholds) -> FeedLatency:
        latency = cls(rules)
        for source, carrier, delays in orjson.loads(raw) if raw else []:
            latency.delays[(source, carrier)] = deque(delays, maxlen=rules.feed_latency_samples)
        return latency
