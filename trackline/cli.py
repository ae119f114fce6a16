"""``trackline <command>``: one entry point for every process of the pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path

from models.settings import ConfigError, Settings


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return Settings.from_env(
            os.environ, kafka=args.kafka, clickhouse=args.clickhouse, data_dir=args.data_dir,
            partitions=args.partitions, log_level=args.log_level,
            web_port=getattr(args, "web_port", None), web_host=getattr(args, "web_host", None),
            thresholds=getattr(args, "thresholds", None),
            tick_interval=getattr(args, "tick_interval", None),
            ingest_port=getattr(args, "ingest_port", None), ingest_bind=getattr(args, "ingest_bind", None),
            metrics_port=getattr(args, "metrics_port", None),
        )
    except ConfigError as error:
        sys.exit(f"trackline: configuration: {error}")


def cmd_config(args: argparse.Namespace) -> int:
    """The effective configuration, secrets masked: what a process started here would use."""
    print(json.dumps(_settings(args).effective(), indent=2))
    return 0


def _require_broker(settings: Settings) -> str:
    if not settings.kafka:
        sys.exit("trackline: no broker configured. Set TRACKLINE_KAFKA or pass --kafka "
                 "host:port (or run `trackline broker` for an embedded one, or `trackline demo`).")
    return settings.kafka


def _logging(settings: Settings) -> None:
    level = {"crit": "CRITICAL", "warn": "WARNING"}.get(settings.log_level, settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _connect(args: argparse.Namespace) -> tuple[Settings, str]:
    """Settings, logging and the broker every pipeline process needs, topics created first."""
    settings = _settings(args)
    bootstrap = _require_broker(settings)
    _logging(settings)
    from broker.clients import create_topics

    create_topics(bootstrap, settings.partitions)
    return settings, bootstrap


def cmd_worker(args: argparse.Namespace) -> int:
    settings, bootstrap = _connect(args)
    import faust

    from broker.clients import is_embedded_tansu
    from streams.app import create_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Each batch allocates many short-lived objects; with the default threshold the
    # cyclic collector walks every live object hundreds of times a second (measured:
    # half the cost of decoding a state). Collect young objects far less often.
    import gc

    gc.set_threshold(200_000, 50, 1000)
    # A stuck worker: SIGUSR1 logs its asyncio tasks' stacks (Faust's worker), SIGUSR2 every
    # thread's stack even when the event loop itself is blocked.
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR2, all_threads=True)
    app = create_app(settings, bootstrap, tansu=is_embedded_tansu(bootstrap))
    from trackline.metrics import LagProbe

    LagProbe(bootstrap, [app.conf.id]).start()  # served with the rest at /metrics on the web port
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def _serve_metrics(settings: Settings, bootstrap: str, group: str | None) -> None:
    """``/metrics`` on TRACKLINE_METRICS_PORT, with the lag of the process's consumer group."""
    if not settings.metrics_port:
        return
    from trackline.metrics import LagProbe, serve

    serve(settings.metrics_port, settings.metrics_bind)
    if group:
        LagProbe(bootstrap, [group]).start()


def cmd_sink(args: argparse.Namespace) -> int:
    settings, bootstrap = _connect(args)
    from sinks.clickhouse import GROUP, HistorySink

    serve_page = None
    if args.ops_port:
        from trackline.ops_page import OpsPage, client_query

        def serve_page(client, lock):  # type: ignore[no-untyped-def]
            OpsPage(client_query(client, lock)).serve(args.ops_port)
            logging.getLogger("trackline.sink").info("ops page on http://127.0.0.1:%s/", args.ops_port)

    sink = HistorySink(bootstrap, settings.clickhouse_dsn, on_connected=serve_page,
                       dlq_payload_days=settings.dlq_payload_days)
    _serve_metrics(settings, bootstrap, GROUP)
    sink.install_signal_handlers()
    logging.getLogger("trackline.sink").info("writing history to %s", settings.clickhouse_dsn)
    sink.run()
    return 0


def cmd_notifier(args: argparse.Namespace) -> int:
    settings, bootstrap = _connect(args)
    from models.delivery import RetryPolicy
    from notifier.channels import configured_channels
    from notifier.worker import NotificationWorker

    outbox = Path(args.outbox) if args.outbox else settings.data_dir / "notifications.jsonl"
    worker = NotificationWorker(bootstrap, outbox, configured_channels(settings), RetryPolicy(
        settings.notifier_max_attempts, settings.notifier_retry_base_seconds, settings.notifier_retry_cap_seconds),
        copy_all=args.copy_to_outbox)
    worker.install_signal_handlers()
    _serve_metrics(settings, bootstrap, worker.group)
    worker.run()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    settings, bootstrap = _connect(args)
    from ingest.service import serve

    _serve_metrics(settings, bootstrap, None)
    serve(settings, bootstrap)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    _, bootstrap = _connect(args)
    from broker.clients import producer
    from trackline import simulator

    counts = simulator.run(producer(bootstrap), args.orders_per_second, args.duration, seed=args.seed)
    print(json.dumps(counts, sort_keys=True))
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings)
    import signal
    import threading

    from broker.clients import create_topics
    from broker.embedded import EmbeddedBroker

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port) as broker:
        create_topics(broker.bootstrap, settings.partitions)
        print(f"TRACKLINE_KAFKA={broker.bootstrap}  (memory-only embedded broker)", flush=True)
        stop.wait()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from trackline.demo import run_demo

    settings = _settings(args)
    _logging(settings)
    return run_demo(settings, duration=args.duration, report=args.report,
                    orders_per_second=args.orders_per_second, seed=args.seed, keep_serving=args.keep_serving)


def cmd_schema(args: argparse.Namespace) -> int:
    """One public topic's JSON Schema; with no name, the list of them; with --write, the files."""
    from models.schemas import PUBLIC, document, find

    chosen = list(PUBLIC.values())
    if args.name:
        found = find(args.name)
        if found is None:
            sys.exit(f"trackline schema: no public topic {args.name!r}; one of: {', '.join(PUBLIC)}")
        chosen = [found]
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for public in chosen:
            (args.write / public.file_name).write_text(document(public.name))
            print(args.write / public.file_name)
    elif args.name:
        print(document(chosen[0].name), end="")
    else:
        width = max(len(name) for name in PUBLIC)
        for public in chosen:
            print(f"{public.name:{width}}  {public.topic}, keyed by {public.key}")
        print("\n`trackline schema NAME` prints one; `trackline schema --write docs/schemas` writes them all.")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings)
    from sinks.clickhouse import connect
    from sinks.schema import MIGRATIONS, migrate

    applied = migrate(connect(settings.clickhouse_dsn))
    latest = MIGRATIONS[-1].version
    print(f"applied migrations {applied}; schema at version {latest}" if applied
          else f"schema already at version {latest}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from sinks.clickhouse import connect

    result = connect(settings.clickhouse_dsn).query(args.sql)
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    print(json.dumps(rows, default=str))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase customers' personal data: a tombstone for their preferences and contact details (the
    worker and every notifier drop them), and their dead letters' original bytes redacted."""
    settings, bootstrap = _connect(args)
    from broker.clients import producer
    from models import topics
    from sinks.clickhouse import connect, redact_customer

    failed: list[str] = []
    sender = producer(bootstrap)
    for customer in args.customer:
        sender.produce(topics.CUSTOMER_PREFERENCES, key=customer.encode(), value=None,
                       on_delivery=lambda error, message: failed.append(str(error)) if error else None)
    if sender.flush(30) or failed:  # checked: a tombstone the broker did not store erased nothing
        print(json.dumps({"error": "the broker did not store every tombstone; nothing was redacted, run again",
                          "failed": failed}), file=sys.stderr)
        return 1
    client = connect(settings.clickhouse_dsn)
    report = {customer: {"preferences_and_contact": "tombstoned",
                         "dead_letters_redacted": redact_customer(client, customer)} for customer in args.customer}
    print(json.dumps(report, indent=2))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    settings, bootstrap = _connect(args)
    from sinks.clickhouse import connect
    from trackline.replay import replay, select

    letters = select(connect(settings.clickhouse_dsn), args.reason or [], args.topic, args.since, args.until,
                     args.limit)
    report = replay(bootstrap, letters, dry_run=args.dry_run)
    print(json.dumps(report, indent=2))
    return 1 if report["failed"] else 0


def _moment(text: str) -> datetime:
    """An ISO 8601 time with its offset (naive times are refused: which zone would they be in?)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset; write e.g. 2026-11-27T10:00:00Z")
    return moment


def cmd_bench(args: argparse.Namespace) -> int:
    from trackline.bench import run_bench

    settings = _settings(args)
    return run_bench(settings, scans=args.scans, orders=args.orders, only=args.only,
                     recovery_orders=args.recovery_orders,
                     latency_rate=args.latency_rate)


def cmd_quality(args: argparse.Namespace) -> int:
    from trackline.quality.run import run_quality

    settings = _settings(args)
    if args.thresholds:  # checked before the world is built and the broker started
        from models.thresholds import parse_thresholds
        try:
            parse_thresholds(Path(args.thresholds).read_text())
        except (OSError, ValueError) as error:
            sys.exit(f"trackline quality: --thresholds {args.thresholds}: {error}")
    run_quality(partitions=settings.partitions, pace=args.pace, days=args.days, orders_per_day=args.orders_per_day,
                scored_days=args.scored_days, seed=args.seed,
                thresholds=Path(args.thresholds) if args.thresholds else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackline", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kafka", help="bootstrap servers (env TRACKLINE_KAFKA); none = embedded broker")
    common.add_argument("--clickhouse", help="http(s)://... or chdb:///path (env TRACKLINE_CLICKHOUSE)")
    common.add_argument("--data-dir", type=Path, help="where state, chDB and outputs live (env TRACKLINE_DATA_DIR)")
    common.add_argument("--partitions", type=int, help="partitions per topic (env TRACKLINE_PARTITIONS)")
    common.add_argument("--log-level", choices=["crit", "error", "warn", "info", "debug"],
                        help="env TRACKLINE_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", parents=[common], help="print the effective configuration, secrets masked")
    p.add_argument("--web-port", type=int, help="env TRACKLINE_WEB_PORT")
    p.add_argument("--thresholds", help="env TRACKLINE_THRESHOLDS")
    p.add_argument("--tick-interval", type=float, help="env TRACKLINE_TICK_INTERVAL")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("demo", parents=[common], help="the whole system on simulated traffic")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic, then stop")
    p.add_argument("--report", type=Path, help="write a JSON summary here")
    p.add_argument("--orders-per-second", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep-serving", action="store_true",
                   help="after the run, keep the ops page up (and the sink holding chDB) until Ctrl-C")
    p.add_argument("--thresholds", help="detection thresholds for the worker "
                   "(default: config/detection-demo.toml, scaled to the simulator's seconds-long journeys)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", parents=[common], help="the Faust stream worker")
    p.add_argument("--web-port", type=int, help="order lookup and metrics (env TRACKLINE_WEB_PORT)")
    p.add_argument("--web-host", help="the address other workers reach this one's web server at, to forward "
                   "lookups of the orders it owns (env TRACKLINE_WEB_HOST; default the bind address, or the "
                   "host name when bound to 0.0.0.0)")
    p.add_argument("--thresholds", help="TOML file of detection thresholds (env TRACKLINE_THRESHOLDS; "
                   "default: the values in config/detection.toml)")
    p.add_argument("--tick-interval", type=float, help="seconds between deadline ticks (env TRACKLINE_TICK_INTERVAL)")
    p.set_defaults(func=cmd_worker)
    metrics = argparse.ArgumentParser(add_help=False)
    metrics.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port "
                         "(env TRACKLINE_METRICS_PORT; default 0: not served)")
    p = sub.add_parser("sink", parents=[common, metrics], help="history -> ClickHouse")
    p.add_argument("--ops-port", type=int, help="also serve the read-only ops page (dashboards/) on this port")
    p.set_defaults(func=cmd_sink)
    p = sub.add_parser("ingest", parents=[common, metrics], help="signed webhooks and fulfillment events in over HTTP")
    p.add_argument("--port", dest="ingest_port", type=int, help="env TRACKLINE_INGEST_PORT (default 8080)")
    p.add_argument("--bind", dest="ingest_bind", help="listen address (env TRACKLINE_INGEST_BIND, default 127.0.0.1)")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("notifier", parents=[common, metrics], help="reference notification worker")
    p.add_argument("--outbox", help="JSON-lines file: the channel of customers' channels with no transport "
                   "configured (default <data dir>/notifications.jsonl)")
    p.add_argument("--copy-to-outbox", action="store_true",
                   help="also write every command to the outbox, whatever its channel (the demo checks them)")
    p.set_defaults(func=cmd_notifier)
    p = sub.add_parser("simulate", parents=[common], help="produce seeded simulated traffic")
    p.add_argument("--orders-per-second", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("broker", parents=[common], help="run the embedded (memory-only) broker")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_broker)
    p = sub.add_parser("schema", parents=[common], help="the JSON Schemas of trackline's public topics "
                       "(committed under docs/schemas/)")
    p.add_argument("name", nargs="?", help="a public topic, as `trackline schema` lists them; none: list them")
    p.add_argument("--write", type=Path, metavar="DIR", help="write NAME.schema.json files here instead of printing")
    p.set_defaults(func=cmd_schema)
    sub.add_parser("migrate", parents=[common], help="bring trackline's ClickHouse schema to the latest version "
                   "(the sink also does this at start-up)").set_defaults(func=cmd_migrate)
    p = sub.add_parser("query", parents=[common], help="run SQL on trackline's ClickHouse, print JSON rows")
    p.add_argument("sql")
    p.set_defaults(func=cmd_query)
    p = sub.add_parser("forget", parents=[common], help="erase customers' personal data: tombstone their "
                       "preferences and contact details, redact their dead letters' original bytes")
    p.add_argument("--customer", action="append", required=True, help="customer id (repeatable)")
    p.set_defaults(func=cmd_forget)
    p = sub.add_parser("replay", parents=[common], help="send dead letters from ClickHouse through their "
                       "original topic again (key, headers and receipt time kept)")
    p.add_argument("--reason", action="append", help="only this DLQ reason (repeatable)")
    p.add_argument("--topic", help="only dead letters from this topic")
    p.add_argument("--since", type=_moment, help="dead-lettered at or after this time (ISO 8601 with offset)")
    p.add_argument("--until", type=_moment, help="dead-lettered before this time")
    p.add_argument("--limit", type=int, default=100_000)
    p.add_argument("--dry-run", action="store_true", help="report what would be sent, send nothing")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("bench", parents=[common], help="throughput and latency, side by side")
    p.add_argument("--scans", type=int, default=100_000)
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--only", action="append", help="run only these contenders")
    p.add_argument("--recovery-orders", type=int, default=1_000_000,
                   help="orders seeded into the orders changelog for the recovery figures")
    p.add_argument("--latency-rate", type=float, help="scans/s for the latency run (default: half the measured rate)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("quality", parents=[common], help="detection and estimate quality against a simulated "
                                                         "world that knows what really happened")
    p.add_argument("--pace", type=float, default=7200.0, help="seconds of event time per wall second")
    p.add_argument("--days", type=int, help="days of orders (default: config/quality-world.toml)")
    p.add_argument("--orders-per-day", type=int, help="default: config/quality-world.toml")
    p.add_argument("--scored-days", type=float, help="journeys placed in these first days are scored")
    p.add_argument("--seed", type=int, help="another world with the same dials (default: the frozen seed)")
    p.add_argument("--thresholds", help="TOML file of detection thresholds to measure (default: "
                                        "config/detection.toml, the production defaults)")
    p.set_defaults(func=cmd_quality)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
