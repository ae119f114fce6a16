"""confluent-kafka clients configured the way every trackline process needs them."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from models import topics

# murmur2 is the Java client's and Faust's (aiokafka's) partitioner: a key lands on the
# same partition whoever produced it, which keeps the worker's tables co-partitioned.
PRODUCER_DEFAULTS = {
    "partitioner": "murmur2_random",
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "compression.type": "none",
    "enable.idempotence": False,
    "acks": "all",
}

# The embedded broker does not report retention; Quix Streams and others ask for it.
TOPIC_CONFIG = {"retention.ms": "604800000", "retention.bytes": "-1"}


def producer(bootstrap: str, **overrides: Any) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, **overrides})


def consumer(bootstrap: str, group: str, **overrides: Any) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300000,
        **overrides,
    })


def create_topics(bootstrap: str, partitions: int, names: list[str] | None = None,
                  timeout: float = 30.0) -> None:
    """Create trackline's topics up front: a topic a producer auto-creates gets the
    broker's default partition count and breaks co-partitioning."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = names or topics.ALL
    deadline = time.monotonic() + timeout
    while True:
        existing = set(admin.list_topics(timeout=10).topics)
        missing = [n for n in wanted if n not in existing]
        if not missing:
            return
        new = [NewTopic(n, num_partitions=1 if n == topics.DLQ else partitions,
                        replication_factor=1,
                        config={**TOPIC_CONFIG, "cleanup.policy": "compact"} if n in topics.COMPACTED
                        else TOPIC_CONFIG) for n in missing]
        for name, future in admin.create_topics(new).items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc) and time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create topic {name}: {exc}") from exc
        time.sleep(0.2)


def is_embedded_tansu(bootstrap: str) -> bool:
    """Tansu answers metadata with its default cluster id unless told otherwise."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return metadata.cluster_id == "tansu_cluster"


def committed_offsets(bootstrap: str, group: str, timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """``group``'s committed offset per (topic, partition); negative where it has none yet.
    Raises while the broker cannot say (the group not formed, the broker unreachable)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    (future,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
    return {(tp.topic, tp.partition): tp.offset for tp in future.result(timeout=timeout).topic_partitions}


def unread(reader: Consumer, committed: dict[tuple[str, int], int], partitions: Any) -> int:
    """Records in ``partitions`` ((topic, partition) pairs) past the ``committed`` offsets, from
    the log start where nothing is committed. On the embedded broker the high watermark is the
    last batch's first offset + 1, so this reads low by up to one batch per partition."""
    from confluent_kafka import TopicPartition

    lag = 0
    for name, partition in partitions:
        low, high = reader.get_watermark_offsets(TopicPartition(name, partition), timeout=10, cached=False)
        offset = committed.get((name, partition), -1)
        lag += max(0, high - (offset if offset >= 0 else low))
    return lag


def read_topic(bootstrap: str, topic: str, partitions: int, quiet_seconds: int = 3) -> list[dict[str, Any]]:
    """Every JSON record on ``topic`` from the start, read until it has been quiet for
    ``quiet_seconds``; tombstones and undecodable records are left out."""
    import orjson
    from confluent_kafka import TopicPartition

    reader = consumer(bootstrap, f"read-{topic}-{time.monotonic_ns()}", log_level=0)
    reader.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[dict[str, Any]] = []
    quiet = 0
    try:
        while quiet < quiet_seconds:
            messages = reader.consume(10000, timeout=1.0)
            quiet = 0 if messages else quiet + 1
            for m in messages:
                if not m.error() and m.value():
                    try:
                        found.append(orjson.loads(m.value()))
                    except orjson.JSONDecodeError:
                        continue
    finally:
        reader.close()
    return found
