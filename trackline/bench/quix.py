"""Contender: Quix Streams doing the same stateful count with its RocksDB state."""

from __future__ import annotations

import json
import sys
import time

from quixstreams import Application

from models import topics


def main(bootstrap: str, expected: int, out: str, state_dir: str) -> None:
    app = Application(broker_address=bootstrap, consumer_group="bench-quix", auto_offset_reset="earliest",
                      state_dir=state_dir, loglevel="WARNING")
    scans = app.topic(topics.CARRIER_SCANS_RAW, value_deserializer="json")
    progress = {"first": 0.0, "first_cpu": 0.0, "seen": 0}

    def count(value: dict, state) -> None:  # update() ignores the result and passes the value on
        if not progress["seen"]:
            progress["first"] = time.perf_counter()
            progress["first_cpu"] = time.process_time()  # every thread of the process (librdkafka's too)
        state.set("scans", state.get("scans", 0) + 1)
        progress["seen"] += 1
        if progress["seen"] == expected:
            with open(out, "w") as f:
                json.dump({"events": expected, "seconds": time.perf_counter() - progress["first"],
                           "cpu_seconds": time.process_time() - progress["first_cpu"]}, f)
            app.stop()

    app.dataframe(scans).update(count, stateful=True)
    app.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
