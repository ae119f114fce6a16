"""Table values this worker stored last, kept decoded for the next batch.

The router's tracking entries and the tracker's order states are read back by the next batch
far more often than anything else: decoding them again each time cost more than the rules.
Valid only while this worker owns the partitions: cleared at every revocation, and a batch
that was in flight then (an older ``generation``) puts nothing back, since another worker may
change those values before this one owns them again. Bounded, oldest out first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class DecodedValues(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: OrderedDict[K, V] = OrderedDict()
        self.generation = 0  # bumped at every revocation

    def keep(self, values: Mapping[K, V], generation: int) -> None:
        """Values as stored by a batch that started at ``generation``."""
        if generation != self.generation:
            return
        self.values.update(values)
        while len(self.values) > self.limit:
            self.values.popitem(last=False)

    def clear(self) -> None:
        self.values.clear()
        self.generation += 1
