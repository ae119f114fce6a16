"""Table access from batches, and keyed output in batches.

Faust's rocksdb store picks the partition of a table write from the *current event*.
An agent that takes a batch mixing partitions must therefore make the event that
carried a key current while it reads or writes that key; otherwise the key lands in
another partition's store and is lost at the next rebalance.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import faust
from faust.streams import _current_event
from faust.types import EventT

from models.routing import partition_for

ENVELOPE_MAX = 1000  # events per message on internal topics: amortises per-message cost


@contextmanager
def partition_of(event: EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def send_envelopes(topic: faust.TopicT, keyed: Iterable[tuple[str, bytes]],
                         partitions: int) -> None:
    """Send JSON documents as JSON arrays, one message per destination partition.

    Each document goes to the partition its key would go to on its own, so a consumer
    that owns that partition owns every key inside the envelope.
    """
    buckets: dict[int, list[bytes]] = defaultdict(list)
    for key, document in keyed:
        buckets[partition_for(key, partitions)].append(document)
    for partition, documents in buckets.items():
        for start in range(0, len(documents), ENVELOPE_MAX):
            chunk = documents[start:start + ENVELOPE_MAX]
            await topic.send(value=b"[" + b",".join(chunk) + b"]", partition=partition)
