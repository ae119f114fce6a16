"""The trackline Faust app: settings chosen for the embedded broker and for throughput."""

from __future__ import annotations

from pathlib import Path

import faust

from models import topics
from models.settings import Settings
from models.thresholds import Thresholds, parse_thresholds
from streams import restore
from streams.bulk import RECORD_BATCH, bulk_transport

# Topics whose fetched batches reach the agents as one message each (see streams.bulk).
BULK_TOPICS = {topics.FC_EVENTS, topics.CARRIER_SCANS_RAW, topics.CARRIER_SCANS_REKEYED, topics.TRACKING_LINKS,
               topics.ORDER_EVENTS,
               topics.CUSTOMER_PREFERENCES, topics.NOTIFICATION_INTENTS, topics.TRANSIT_OBSERVATIONS}


def store_options() -> dict:
    """rocksdb settings for every table, per partition database (a fresh dict: Faust mutates it).

    Faust's defaults give each partition's database a 2 GiB block cache and three 64 MiB
    memtables: a worker with a million open orders would pass a gigabyte. Reads here are
    point lookups of recently written orders (mostly served by the decoded-state cache),
    so small caches cost little (measured in bench/deadlines.py).
    """
    return {"block_cache_size": 32 * 2**20, "write_buffer_size": 16 * 2**20, "max_write_buffer_number": 2}


def detection_rules(settings: Settings) -> Thresholds:
    """The thresholds file the settings name (read here, at the edge), or the defaults."""
    return parse_thresholds(Path(settings.thresholds).read_text()) if settings.thresholds else Thresholds()


def create_app(settings: Settings, bootstrap: str, tansu: bool = False) -> faust.App:
    scheme = bulk_transport(BULK_TOPICS, tansu_bootstrap=bootstrap if tansu else None)
    app = faust.App(
        "trackline",
        broker=f"{scheme}://{bootstrap}",
        store=f"{restore.SCHEME}://",  # Faust's RocksDB store, restoring empty partitions in bulk
        datadir=str(settings.data_dir / "worker"),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        # Short group timeouts: with Faust's defaults a join on the embedded broker waits
        # the whole rebalance timeout and a restarted worker hangs on its dead member.
        broker_rebalance_timeout=5.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=16384,
        broker_max_poll_records=5000,
        broker_commit_interval=1.0,
        producer_linger=0.0,
        producer_max_batch_size=512 * 1024,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.advertised_web_host,  # where other workers forward requests for this one's orders
        web_enabled=True,
        # Only trackline's documented routes: Faust's table, router, graph, stats and metrics
        # views would show any visitor every table's contents and the cluster's layout.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        loghandlers=[],
        # Tansu reports a partition's high watermark as the first offset of its last
        # record batch + 1, so a restarted worker's persisted changelog offset looks
        # "ahead" of the topic. The check is right on Kafka; on Tansu it is a false alarm.
        recovery_consistency_check=not tansu,
    )
    from streams import lane_models, lookup, notification_policy, orders, router, watermark

    watermark.PROGRESS.clock = settings.watermark_clock

    channels = Channels(app)
    rules = detection_rules(settings)
    router.register(app, channels, rules, settings.tick_interval)
    orders_table = orders.register(app, channels, rules, settings.tick_interval, settings.own_estimate)
    lookup.register(app, orders_table, settings)
    notification_policy.register(app, channels, settings.tracking_page_link)
    if settings.own_estimate:
        lane_models.register(app, channels, rules)
    return app


class Channels:
    def __init__(self, app: faust.App) -> None:
        def raw_topic(*names: str) -> faust.TopicT:
            return app.topic(*names, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")

        def batched_topic(*names: str) -> faust.TopicT:
            return app.topic(*names, key_serializer="raw", value_serializer=RECORD_BATCH)

        # Output goes through streams.batch_io (checked sends); these declare the topics
        # Faust does not read, so it creates them with the app's partition count.
        self.dlq = raw_topic(topics.DLQ)
        self.router_input = batched_topic(topics.CARRIER_SCANS_RAW, topics.CARRIER_SCANS_REKEYED,
                                          topics.TRACKING_LINKS)
        self.orders_input = batched_topic(topics.FC_EVENTS, topics.ORDER_EVENTS)
        self.policy_input = batched_topic(topics.CUSTOMER_PREFERENCES, topics.NOTIFICATION_INTENTS)
        self.transit_input = batched_topic(topics.TRANSIT_OBSERVATIONS)

