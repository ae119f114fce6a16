"""The ingest service alone: signed webhooks accepted end to end (verified, produced, broker
acknowledged, 202) per second by one ``trackline ingest`` process, and refusals per second.

Run as ``python -m trackline.bench.ingest <bootstrap> <requests> <result.json>``. The load
generator (aiohttp, 64 connections) runs beside the service on the same machine and takes part
of its cores: the figure is a floor for one process, not a ceiling.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

from broker.embedded import free_port
from trackline.webhook_sender import signed_request

SECRET = "bench-secret-0123456789"
CONCURRENCY = 64


def webhook(n: int) -> bytes:
    """An EasyPost tracker.updated with a four-scan history, as EasyPost sends it."""
    details = [{"object": "TrackingDetail", "message": m, "status": s, "status_detail": d,
                "datetime": f"2026-11-2{i}T10:00:00Z", "source": "USPS",
                "tracking_location": {"object": "TrackingLocation", "city": "RENO", "state": "NV",
                                      "country": "US", "zip": "89501"}}
               for i, (s, d, m) in enumerate([("pre_transit", "label_created", "Label created"),
                                              ("in_transit", "arrived_at_facility", "Arrived"),
                                              ("in_transit", "departed_facility", "Departed"),
                                              ("out_for_delivery", "out_for_delivery", "Out for delivery")])]
    return orjson.dumps({"id": f"evt_{n:016x}", "object": "Event", "description": "tracker.updated",
                         "mode": "production", "result": {"id": f"trk_{n}", "object": "Tracker",
                                                          "tracking_code": f"9400BENCH{n:010d}", "carrier": "USPS",
                                                          "status": "out_for_delivery", "tracking_details": details}})


async def load(url: str, bodies: list[bytes], forged: bool) -> tuple[float, Counter[int]]:
    answers: Counter[int] = Counter()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                path, headers = signed_request("easypost", body, "not-the-secret" if forged else SECRET)
                async with session.post(url + path, data=body, headers=headers) as answer:
                    await answer.read()
                    answers[answer.status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, answers


def main(bootstrap: str, requests: int, out: Path) -> None:
    port = free_port()
    env = {**os.environ, "TRACKLINE_SECRET_EASYPOST": SECRET}
    service = subprocess.Popen([sys.executable, "-m", "trackline", "ingest", "--kafka", bootstrap, "--port", str(port),
                                "--log-level", "warn"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        asyncio.run(load(url, [webhook(n) for n in range(500)], forged=False))  # warm up
        bodies = [webhook(n) for n in range(requests)]
        seconds, answers = asyncio.run(load(url, bodies, forged=False))
        forged_seconds, forged_answers = asyncio.run(load(url, bodies[: requests // 2], forged=True))
    finally:
        service.terminate()
        service.wait(30)
    out.write_text(json.dumps({
        "requests": requests, "seconds": seconds, "accepted": answers[202],
        "accepted_per_second": answers[202] / seconds, "answers": dict(answers),
        "forged_per_second": forged_answers[401] / forged_seconds, "forged_answers": dict(forged_answers),
        "body_bytes": len(bodies[0]), "concurrency": CONCURRENCY}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
