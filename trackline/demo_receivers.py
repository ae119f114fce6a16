"""The receivers at the far end of the demo's notifications: an SMTP server and an HTTP endpoint
on loopback, standing in for the shop's mail relay and its SMS and push providers.

They keep what arrived (``mail.mbox``, ``http-deliveries.jsonl`` in the run directory) and
count it as a receiver would: by idempotency key, so a repeat is seen and dropped.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from models.webhook_signatures import TRACKLINE_HEADER, Verdict, verify_trackline


class LoopbackMail:
    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port
        self.message_ids: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self._box = mailbox.mbox(str(path))
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.message_ids[str(message["Message-ID"])] += 1
            self.languages[str(message["Content-Language"])] += 1
            self._box.add(message)
            self._box.flush()
        return "250 Message accepted"

    def start(self) -> LoopbackMail:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._box.close()

    def report(self) -> dict[str, Any]:
        return {"smtp": f"127.0.0.1:{self.port}", "mailbox": str(self.path),
                "emails_received": sum(self.message_ids.values()),
                "emails_after_dropping_repeats": len(self.message_ids),
                "by_language": dict(sorted(self.languages.items()))}


class LoopbackWebhooks:
    """Takes the notifier's signed POSTs; refuses (401) what is not signed with ``secret``."""

    def __init__(self, path: Path, secret: str) -> None:
        self.path = path
        self.keys: Counter[tuple[str, str]] = Counter()  # (channel, idempotency key)
        self.taken: list[tuple[str, bytes]] = []  # (idempotency key, body) of every request taken
        self.refused = 0
        self._file = open(path, "ab")
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                verdict = verify_trackline(body, self.headers.get(TRACKLINE_HEADER), [secret], datetime.now(UTC))
                if verdict is not Verdict.valid:
                    receiver.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.keys[(self.path.strip("/"), self.headers.get("Idempotency-Key", ""))] += 1
                    receiver.taken.append((self.headers.get("Idempotency-Key", ""), body))
                    receiver._file.write(body + b"\n")
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> LoopbackWebhooks:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self._file.close()

    def report(self) -> dict[str, Any]:
        by_channel: Counter[str] = Counter()
        unique: Counter[str] = Counter()
        for (channel, _), count in self.keys.items():
            by_channel[channel] += count
            unique[channel] += 1
        return {"endpoint": self.url, "deliveries": str(self.path),
                "received_by_channel": dict(sorted(by_channel.items())),
                "after_dropping_repeats": dict(sorted(unique.items())), "refused_bad_signature": self.refused}
