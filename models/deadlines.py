"""The deadline index: which orders are due, without looking at every open shipment.

One index per partition. Each order has at most one entry (its ``next_deadline``); a
min-heap keyed by due time gives the due orders in O(k log n) for k due, whatever n is.
Rescheduling pushes a new heap entry and leaves the old one to be skipped when popped,
so an update costs O(log n) and the heap is compacted when skipped entries pile up.
Times are whole epoch seconds: detection promises a minute, not microseconds, and ints
keep a million entries small.
"""

from __future__ import annotations

import heapq
import math
from datetime import datetime


def epoch_seconds(moment: datetime) -> int:
    """Rounded up: a tick sent at the indexed second is never before the deadline."""
    return math.ceil(moment.timestamp())


class DeadlineIndex:
    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, order_id: str, due: int | None) -> None:
        """Set (or with None, drop) the order's next deadline."""
        if due is None:
            self._due.pop(order_id, None)
            return
        if self._due.get(order_id) == due:
            return
        self._due[order_id] = due
        heapq.heappush(self._heap, (due, order_id))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def pop_due(self, now: int, limit: int | None = None) -> list[tuple[str, int]]:
        """Remove and return (order id, due) for every order due at ``now``, earliest first."""
        due_now: list[tuple[str, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now and (limit is None or len(due_now) < limit):
            due, order_id = heapq.heappop(heap)
            if self._due.get(order_id) == due:
                del self._due[order_id]
                due_now.append((order_id, due))
        return due_now

    def due(self, now: int, limit: int | None = None) -> list[tuple[str, int]]:
        """(order id, due) for orders due at ``now``, left in the index until ``acknowledge``.

        The timer removes a deadline only once its tick is stored on the broker: a failed
        send leaves it here for the next round.
        """
        found: list[tuple[str, int]] = []
        heap = self._heap
        # Entries of deadlines already ticked or moved are dropped as they reach the top.
        while heap and heap[0][0] <= now and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        pending = [0] if heap else []
        seen: set[str] = set()  # an order scheduled again at the same time has two entries
        while pending and (limit is None or len(found) < limit):
            i = pending.pop()
            if i >= len(heap) or heap[i][0] > now:
                continue  # a heap's children are never earlier than their parent
            due, order_id = heap[i]
            if self._due.get(order_id) == due and order_id not in seen:
                seen.add(order_id)
                found.append((order_id, due))
            pending.extend((2 * i + 1, 2 * i + 2))
        return sorted(found, key=lambda item: item[1])

    def acknowledge(self, ticked: list[tuple[str, int]]) -> None:
        """Drop deadlines whose tick is stored, unless the order was rescheduled meanwhile."""
        for order_id, due in ticked:
            if self._due.get(order_id) == due:
                del self._due[order_id]

    def next_due(self) -> int | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _compact(self) -> None:
        self._heap = [(due, order_id) for order_id, due in self._due.items()]
        heapq.heapify(self._heap)
