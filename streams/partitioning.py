"""Keyed output in batches: envelopes of JSON documents, one per destination partition."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import faust

from models.routing import partition_for

ENVELOPE_MAX = 1000  # events per message on internal topics: amortises per-message cost


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
