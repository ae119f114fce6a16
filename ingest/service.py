"""The ingest service: ``POST /webhooks/{source}`` and ``POST /events/fc`` onto the broker.

A thin shell over ``models.ingest``: check the body size and the signature, read the key,
produce the raw bytes unchanged (headers: source, receipt time; timestamp: receipt time),
and answer 202 only once the broker acknowledged them, so a 202 never loses an event.
A refused request produces nothing. Prometheus metrics are served on their own port
(``TRACKLINE_METRICS_PORT``), not here: this port faces the carriers. Stateless: run as many
behind a load balancer as needed.

| answer | when                                                                         |
|--------|------------------------------------------------------------------------------|
| 202    | signed correctly and stored by the broker (also event types trackline ignores: |
|        | the stream dead-letters them as ``unsupported_event``, so nobody retries)    |
| 401    | signature missing, malformed, stale or made with no secret trackline holds   |
| 404    | no such source                                                               |
| 413    | body over ``TRACKLINE_INGEST_MAX_BODY_BYTES``                                |
| 503    | the broker did not acknowledge in time: the sender retries (``Retry-After``) |
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaError, KafkaException

from broker import clients
from models import topics
from models.ingest import DOORS, RECEIVED_AT_HEADER, Door, key_for, verify
from models.settings import Settings
from models.webhook_signatures import Verdict
from trackline import metrics

log = logging.getLogger("trackline.ingest")
RETRY_AFTER_SECONDS = "5"


class BrokerUnavailable(Exception):
    pass


class BrokerWriter:
    """A confluent-kafka producer whose acknowledgements resolve asyncio futures.

    librdkafka calls back for every message within ``message.timeout.ms`` (stored or failed),
    so each request waits for its own answer and no longer than that."""

    def __init__(self, bootstrap: str, ack_timeout: float) -> None:
        self.ack_timeout = ack_timeout
        self.producer = clients.producer(bootstrap, **{
            "message.timeout.ms": int(ack_timeout * 1000), "linger.ms": 1,
            "error_cb": self._on_error})
        self.reachable = True
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="ingest-acks", daemon=True)
        self._poller.start()

    def _on_error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.reachable = False
        log.warning("broker: %s", error)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    async def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
                   timestamp_ms: int) -> None:
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[KafkaError | None] = loop.create_future()

        def settle(error: KafkaError | None) -> None:
            if not acked.done():
                acked.set_result(error)

        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            loop.call_soon_threadsafe(settle, error)

        try:
            self.producer.produce(topic, value, key, headers=headers, timestamp=timestamp_ms,
                                  on_delivery=on_delivery)
        except (BufferError, KafkaException) as refused:  # the local queue is full: the broker is behind
            raise BrokerUnavailable(str(refused)) from refused
        try:
            failed = await asyncio.wait_for(acked, self.ack_timeout + 5)
        except TimeoutError:
            raise BrokerUnavailable("no acknowledgement") from None
        if failed is not None:
            raise BrokerUnavailable(str(failed))
        self.reachable = True

    def close(self) -> None:
        self.producer.flush(self.ack_timeout)
        self._stop.set()
        self._poller.join(2)


def _answer(code: int, **body: Any) -> web.Response:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if code == 503 else None
    return web.json_response(body, status=code, headers=headers)


class IngestService:
    def __init__(self, settings: Settings, writer: BrokerWriter) -> None:
        self.settings = settings
        self.writer = writer
        self.counts: Counter[str] = Counter()  # answers by status and source: how a run went

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.ingest_max_body_bytes)
        app.router.add_post("/webhooks/{source}", self.webhook)
        app.router.add_post("/events/fc", self.fulfillment_event)
        app.router.add_get("/healthz", self.health)
        return app

    async def webhook(self, request: web.Request) -> web.Response:
        source = request.match_info["source"]
        door = DOORS.get(source)
        if door is None or door.source == "fc":
            self.counts["404"] += 1
            metrics.INGEST_REQUESTS.labels("-", "404").inc()  # not the path: any string would be a new series
            return _answer(404, error=f"no webhook source {source[:64]!r}; known: "
                                      f"{sorted(s for s in DOORS if s != 'fc')}")
        return await self._take(request, door)

    async def fulfillment_event(self, request: web.Request) -> web.Response:
        return await self._take(request, DOORS["fc"])

    async def health(self, request: web.Request) -> web.Response:
        if self.writer.reachable:
            return _answer(200, status="ok")
        return _answer(503, status="broker unreachable")

    async def _take(self, request: web.Request, door: Door) -> web.Response:
        limit = self.settings.ingest_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._refuse(413, door, f"body over {limit} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked, with no length given up front
            return self._refuse(413, door, f"body over {limit} bytes")
        received = datetime.now(UTC)
        verdict = verify(door, body, request.headers, request.query,
                         self.settings.webhook_secrets(door.setting), received)
        if verdict is not Verdict.valid:
            return self._refuse(401, door, f"signature {verdict.value}")
        key = key_for(door, body)
        headers = [(RECEIVED_AT_HEADER, received.isoformat().encode())]
        if door.topic == topics.CARRIER_SCANS_RAW:
            headers.insert(0, (topics.SOURCE_HEADER, door.source.encode()))
        try:
            await self.writer.send(door.topic, key, body, headers, int(received.timestamp() * 1000))
        except BrokerUnavailable as error:
            log.warning("%s: broker did not acknowledge: %s", door.source, error)
            return self._refuse(503, door, "broker unavailable, retry later")
        self.counts[f"202 {door.source}"] += 1
        metrics.INGEST_REQUESTS.labels(door.source, "202").inc()
        metrics.EVENTS_IN.labels(door.topic, door.source).inc()
        return _answer(202, status="accepted", key=key.decode(errors="replace"))

    def _refuse(self, status: int, door: Door, why: str) -> web.Response:
        self.counts[f"{status} {door.source}"] += 1
        metrics.INGEST_REQUESTS.labels(door.source, str(status)).inc()
        log.debug("%s %s: %s", status, door.source, why)
        return _answer(status, error=why)


def serve(settings: Settings, bootstrap: str) -> None:
    """Serve until SIGTERM or SIGINT, then flush what the broker has not acknowledged yet."""
    writer = BrokerWriter(bootstrap, settings.ingest_ack_timeout)
    service = IngestService(settings, writer)
    configured = [d for d in DOORS.values() if settings.webhook_secrets(d.setting)]
    if not configured:
        log.warning("no webhook secrets configured (TRACKLINE_SECRET_<SOURCE>): every request gets 401")
    log.info("ingest on http://%s:%s/ (sources with secrets: %s)", settings.ingest_bind, settings.ingest_port,
             ", ".join(d.source for d in configured) or "none")
    started = time.monotonic()
    try:
        web.run_app(service.app(), host=settings.ingest_bind, port=settings.ingest_port, print=None,
                    access_log=None, handle_signals=True)
    finally:
        writer.close()
        log.info("ingest stopped after %.0f s: %s", time.monotonic() - started, dict(service.counts))
