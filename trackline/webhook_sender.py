"""Carriers and fulfillment centers as trackline meets them: signed HTTP POSTs to the ingest service.

``WebhookSender`` takes the simulator's messages (it has a producer's ``produce``/``flush``) and
sends each carrier webhook and fulfillment event the way its source does: EasyPost with
``X-Hmac-Signature``, AfterShip with ``aftership-hmac-sha256``, Shippo with the URL token, the
others with ``X-Trackline-Signature``. It retries a 503 as those senders do. What has no HTTP
door (customer preferences, a made-up source) goes to the broker directly, as its producer would.
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from models import topics
from models.ingest import DOORS
from models.webhook_signatures import (
    AFTERSHIP_HEADER,
    EASYPOST_HEADER,
    TRACKLINE_HEADER,
    aftership_signature,
    easypost_signature,
    trackline_signature,
)

LANES = 4  # concurrent connections; one tracking number always takes the same one, so its order holds


def signed_request(source: str, body: bytes, secret: str, at: datetime | None = None) -> tuple[str, dict[str, str]]:
    """The path and headers ``source`` sends ``body`` with, signed with ``secret``."""
    if source == "aftership":
        return "/webhooks/aftership", {AFTERSHIP_HEADER: aftership_signature(body, secret)}
    if source == "easypost":
        return "/webhooks/easypost", {EASYPOST_HEADER: easypost_signature(body, secret)}
    if source == "shippo":
        return f"/webhooks/shippo?token={secret}", {}
    path = "/events/fc" if source == "fc" else f"/webhooks/{source}"
    return path, {TRACKLINE_HEADER: trackline_signature(body, secret, at or datetime.now(UTC))}


class WebhookSender:
    def __init__(self, host: str, port: int, secrets: dict[str, str], producer: Any) -> None:
        self.host, self.port = host, port
        self.secrets = secrets  # by door name (easypost, ..., x12-214, fc)
        self.producer = producer
        self.answers: Counter[int] = Counter()  # final HTTP status of each request
        self.direct = 0  # messages with no HTTP door, produced to the broker
        self._lock = threading.Lock()
        self._lanes = [queue.Queue[tuple[str, bytes] | None]() for _ in range(LANES)]
        self._threads = [threading.Thread(target=self._run, args=(lane,), daemon=True) for lane in self._lanes]
        for thread in self._threads:
            thread.start()

    def produce(self, topic: str, key: bytes | None = None, value: bytes = b"",
                headers: list[tuple[str, bytes]] | None = None) -> None:
        source = "fc" if topic == topics.FC_EVENTS else dict(headers or []).get(topics.SOURCE_HEADER, b"").decode()
        if topic not in (topics.FC_EVENTS, topics.CARRIER_SCANS_RAW) or source not in DOORS:
            self.producer.produce(topic, key=key, value=value, headers=headers)
            self.direct += 1
            return
        self._lanes[zlib.crc32(key or b"") % LANES].put((source, value))

    def poll(self, timeout: float = 0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = 30) -> int:
        for lane in self._lanes:
            lane.join()
        return self.producer.flush(timeout)

    def close(self) -> None:
        for lane in self._lanes:
            lane.put(None)

    def _run(self, lane: queue.Queue[tuple[str, bytes] | None]) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        while (item := lane.get()) is not None:
            source, body = item
            status = 0
            for _ in range(60):  # a 503 or a dropped connection: wait and send again, as carriers do
                path, headers = signed_request(source, body, self.secrets[source])
                try:
                    connection.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                                          **headers})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    connection.close()
                    status = 0
                if status not in (0, 503):
                    break
                time.sleep(0.5)
            with self._lock:
                self.answers[status] += 1
            lane.task_done()
        lane.task_done()
        connection.close()
