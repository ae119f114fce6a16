"""``make quality``: the simulated world through the real pipeline at accelerated time, scored.

The world's messages are produced with the time trackline would have received each one as
its record timestamp, ``pace`` seconds of event time per wall second, to the embedded broker
(Tansu, memory-only); one worker reads them with ``watermark_clock = "records"``, so every
rule's clock is the records' own time, and the production thresholds (config/detection.toml).
The commands customers were sent (``trackline.notifications``) and the alerts ops saw
(``trackline.alerts``) are then read back and scored against the world's truth
(``trackline.quality.score``). Only journeys placed in the first ``scored_days`` count: the
later ones are traffic that keeps the clock moving until the earlier ones have ended.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from broker import clients
from broker.embedded import EmbeddedBroker, free_port
from models import topics
from models.thresholds import parse_thresholds
from trackline.quality import score
from trackline.quality.world import World, parameters_hash


def worker_env(environ: dict[str, str], tick_interval: float, thresholds: Path | None) -> dict[str, str]:
    """The worker's environment: the records' clock, and the thresholds measured (the production
    defaults unless a file is named here; never a file the caller's shell happens to set)."""
    env = {k: v for k, v in environ.items() if k not in ("TRACKLINE_THRESHOLDS", "TRACKLINE_KAFKA")}
    env.update(TRACKLINE_WATERMARK_CLOCK="records", TRACKLINE_TICK_INTERVAL=str(tick_interval))
    if thresholds is not None:
        env["TRACKLINE_THRESHOLDS"] = str(Path(thresholds).resolve())
    return env


def run_quality(partitions: int = 4, pace: float = 7200.0, days: int | None = None,
                orders_per_day: int | None = None, scored_days: float | None = None,
                tick_interval: float = 0.25, out: Path | None = None, seed: int | None = None,
                thresholds: Path | None = None) -> dict[str, Any]:
    """``seed``: another world of the same dials (the frozen one by default), to see whether a
    figure holds beyond one history. ``thresholds``: a TOML file of detection thresholds to
    measure instead of the production defaults (config/detection.toml), before a deployment
    turns a setting on."""
    if thresholds is not None:  # a file that does not read fails here, not in the worker minutes later
        parse_thresholds(Path(thresholds).read_text())
    world = World(days=days, orders_per_day=orders_per_day, seed=seed)
    messages = world.messages()
    scored_days = scored_days if scored_days is not None else world.p["scored_days"]
    workdir = Path(tempfile.mkdtemp(prefix="trackline-quality-"))
    logs = workdir / "logs"
    logs.mkdir()
    first, last = messages[0].received_at, messages[-1].received_at
    print(f"trackline quality: {len(world.truth):,} journeys over {world.days} days ({len(messages):,} messages, "
          f"{first:%Y-%m-%d} to {last:%Y-%m-%d} in event time); journeys placed in the first {scored_days:g} days "
          f"scored; world parameters sha256 {parameters_hash()[:12]}"
          f"{'' if seed is None else f', seed {seed} (not the frozen one)'}; thresholds "
          f"{thresholds or 'the defaults (config/detection.toml)'}; {pace:,.0f}x event time; broker embedded "
          f"Tansu (memory-only); work dir {workdir}", flush=True)
    env = worker_env(dict(os.environ), tick_interval, thresholds)
    with EmbeddedBroker(log_path=logs / "broker.log") as broker:
        clients.create_topics(broker.bootstrap, partitions)
        worker = subprocess.Popen(
            [sys.executable, "-m", "trackline", "worker", "--kafka", broker.bootstrap, "--data-dir",
             str(workdir / "worker"), "--partitions", str(partitions), "--web-port", str(free_port()),
             "--log-level", "warn"], stdout=open(logs / "worker.log", "ab"), stderr=subprocess.STDOUT, env=env)
        try:
            _produce_paced(broker.bootstrap, messages, pace, worker)
            # Every record read and committed by every agent, then the last record's time is
            # the final "now": wait for the deadlines due by then.
            _committed_to_the_end(broker.bootstrap, partitions, worker)
            notifications = _settled(broker.bootstrap, topics.NOTIFICATIONS, partitions, worker)
            alerts = clients.read_topic(broker.bootstrap, topics.ALERTS, partitions)
            # History comes in envelopes (JSON arrays): the estimate rows are what was shown.
            estimates = [row for found in clients.read_topic(broker.bootstrap, topics.HISTORY, partitions)
                         for row in (found if isinstance(found, list) else [found])
                         if row.get("record_type") == "estimate"]
            # What the lane models learned from (deliveries and hand-overs), for a closer look.
            observations = clients.read_topic(broker.bootstrap, topics.TRANSIT_OBSERVATIONS, partitions)
        finally:
            worker.terminate()
            try:
                worker.wait(120)
            except subprocess.TimeoutExpired:  # do not hide the run's own error behind this one
                worker.kill()
                worker.wait()
    kept = (("notifications", notifications), ("alerts", alerts), ("estimates", estimates),
            ("transit_observations", observations))
    for name, rows in kept:  # kept for a closer look
        (workdir / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    truth = score.scored(world.truth, world.start, scored_days)
    results = {
        "journeys_scored": len(truth), "late": sum(t.late for t in truth.values()),
        "lost": sum(t.lost for t in truth.values()), "stale": sum(t.stale is not None for t in truth.values()),
        "notices": score.notices_table(truth, notifications),
        "alerts": score.alerts_table(truth, alerts, last),
        "stale_alerts": score.stale_table(truth, alerts),
        "estimates": score.estimates_table(truth, notifications, estimates),
        "shown_against_carrier": score.compared_with_carrier(truth, estimates),
        "predicted_late": score.predicted_late_table(truth, alerts),
        "visibility": score.visibility(truth, notifications),
        "parameters_sha256": parameters_hash(), "pace": pace, "messages": len(messages),
        # Which run this was: the world's seed (the frozen one unless named) and the thresholds.
        "seed": world.p["seed"] if seed is None else seed,
        "thresholds": str(thresholds) if thresholds is not None else "config/detection.toml (the defaults)",
        # The clock the rules ran on: nothing may be decided after the last record's time.
        "last_record_at": last.isoformat(), "latest_decision_at": max(
            [score.moment(a["at"]) for a in alerts] + [score.moment(c["caused_by_ingested_at"]) for c in notifications],
            default=first).isoformat(),
    }
    (out or workdir / "quality.json").write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    return results


WORKER_INPUTS = (topics.FC_EVENTS, topics.CARRIER_SCANS_RAW, topics.CARRIER_SCANS_REKEYED, topics.TRACKING_LINKS,
                 topics.ORDER_EVENTS, topics.NOTIFICATION_INTENTS)


def _committed_to_the_end(bootstrap: str, partitions: int, worker: subprocess.Popen, timeout: float = 1800) -> None:
    """Wait until the worker's group has committed every record now on its input topics."""
    from confluent_kafka import TopicPartition
    from faust.types import TP

    from streams.bulk import true_end_offsets

    wanted = [(name, p) for name in WORKER_INPUTS for p in range(partitions)]
    reader = clients.consumer(bootstrap, "trackline", **{"enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        while True:
            # Tansu reports a partition's end one record batch short: read it (and again each
            # round: ticks and forwarded scans keep arriving until the backlog is done).
            reported = {TP(t, p): reader.get_watermark_offsets(TopicPartition(t, p), timeout=10, cached=False)[1]
                        for t, p in wanted}
            ends = true_end_offsets(bootstrap, reported)
            committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed(
                [TopicPartition(t, p) for t, p in wanted], timeout=10)}
            if all(committed[(tp.topic, tp.partition)] >= end for tp, end in ends.items() if end > 0):
                return
            if worker.poll() is not None:
                raise RuntimeError("the worker ended during the run; see its log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not read every record within {timeout:.0f} s")
            time.sleep(2)
    finally:
        reader.close()


def _produce_paced(bootstrap: str, messages: list[Any], pace: float, worker: subprocess.Popen) -> None:
    producer = clients.producer(bootstrap)
    failed: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failed.append(str(error))

    origin = messages[0].received_at
    started = time.monotonic()
    for i, m in enumerate(messages):
        if i % 50 == 0:
            if worker.poll() is not None:
                raise RuntimeError("the worker ended during the run; see its log")
            ahead = (m.received_at - origin).total_seconds() / pace - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(m.topic, key=m.key, value=m.value, headers=m.headers,
                                 timestamp=int(m.received_at.timestamp() * 1000), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) != 0 or failed:
        raise RuntimeError(f"the broker did not store every message of the world: {len(failed)} failed, "
                           f"first: {failed[:1]}")


def _settled(bootstrap: str, topic: str, partitions: int, worker: subprocess.Popen, quiet: float = 15.0
             ) -> list[dict[str, Any]]:
    """The topic's records once nothing new arrived for ``quiet`` seconds."""
    seen = -1
    while True:
        found = clients.read_topic(bootstrap, topic, partitions)
        if len(found) == seen:
            return found
        if worker.poll() is not None:
            raise RuntimeError("the worker ended during the run; see its log")
        seen = len(found)
        time.sleep(quiet)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(r: dict[str, Any]) -> None:
    print(f"\njourneys scored {r['journeys_scored']:,}: late (missed the promise) {r['late']}, "
          f"lost {r['lost']}, with a silence of days {r['stale']}")
    print("\ncustomer delay notices         orders  precision  recall   hours after the true moment p50 / p90")
    for kind, row in r["notices"].items():
        h = row["hours_after_true_moment"]
        print(f"  {kind:<28} {row['orders']:>6}  {_pct(row['precision']):>9}  {_pct(row['recall']):>6}   "
              f"{_num(h['p50'])} / {_num(h['p90'])}")
    print("  (deserved: the package missed its promise; presumed_lost: it was lost; negative hours: before it)")
    print("\nops alerts                     alerts  precision  false ones open, hours p50 / p90")
    for kind, row in r["alerts"].items():
        h = row["false_hours_open"]
        print(f"  {kind:<28} {row['alerts']:>6}  {_pct(row['precision']):>9}  {_num(h['p50'])} / {_num(h['p90'])}")
    st = r["stale_alerts"]
    h = st["hours_after_silence_began"]
    print(f"\nin_transit_stale: {_pct(st['recall'])} of the {st['silent']} journeys silent for days alerted during the "
          f"silence, {_num(h['p50'])} / {_num(h['p90'])} hours after it began (p50 / p90); "
          f"{st['never_silent_alerted']} of the {st['never_silent']} never silent (nor lost) alerted")
    print("\nestimates of delivered packages   coverage  within 0 days  within 1 day  mean abs error (days)")
    for moment, row in r["estimates"].items():
        for source, s in row.items():
            print(f"  {moment:<13} {source:<10} {_pct(s['coverage']):>15}  {_pct(s['within_0_days']):>13}  "
                  f"{_pct(s['within_1_day']):>12}  {_num(s['mae_days'], 2):>8}")
    print("  (model: our lane model's p50 date; shown: the date on the lookup and tracking page, the model's\n"
          "   where the lane measured it closer than the carrier's; told: the date in the customer's last notice)")
    c = r["shown_against_carrier"]
    print(f"\nshown against the carrier's date on the same {c['points']:,} scans: mean abs error "
          f"{_num(c['shown_mae_days'], 2)} against {_num(c['carrier_mae_days'], 2)} days; within 1 day "
          f"{_pct(c['shown_within_1_day'])} against {_pct(c['carrier_within_1_day'])}")
    v = r["visibility"]
    print(f"\nestimate visible to the customer: {_pct(v['mean'])} of each delivered journey on average, "
          f"lowest decile {_pct(v['lowest_decile'])}")
    print("\npredicted_late alerts (ops)  flagged  precision  late  recall  in time   hours before the promise "
          "ended p50 / p90 / min")
    for level, row in r["predicted_late"].items():
        h = row["hours_before_promise"]
        print(f"  {level:<28} {row['alerts']:>6}  {_pct(row['precision']):>9}  {row['late']:>4}  "
              f"{_pct(row['recall']):>6}  {_pct(row.get('recall_in_time')):>7}   {_num(h['p50'])} / "
              f"{_num(h['p90'])} / {_num(row['min_hours_before_promise'])}")
    print("  (flagged: packages with at least one alert; in time: late packages whose first alert opened\n"
          "   24 h before the promised day ended, standard and two-day; a quarter of the promised transit\n"
          "   time before it, faster levels)")


def main() -> int:
    run_quality()
    return 0


if __name__ == "__main__":
    sys.exit(main())

