"""How a notification worker delivers a command, as pure rules: the idempotency key a receiver
drops repeats by, the durable record of each (command, channel), and when to try again.

Delivery is once per ``(command_id, channel)``: the worker records every outcome on a
compacted topic that all its processes read (``DELIVERY_LEDGER``), so a restart or a second
process knows what was sent. A worker killed between sending and recording sends again on
restart with the same idempotency key (SMTP ``Message-ID``, HTTP ``Idempotency-Key``), which is
where a receiver stops the repeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from models.effects import stable_id


class State(StrEnum):
    held = "held"  # waiting for send_after (a channel that cannot schedule), durably
    retry = "retry"  # a transient failure: tried again at ``due``
    sent = "sent"
    failed = "failed"  # permanent, or transient too many times: in history and the DLQ
    suppressed = "suppressed"  # nothing to send to (no address for the channel)


FINAL = {State.sent, State.failed, State.suppressed}


def idempotency_key(command_id: str, channel: str) -> str:
    """The same for every attempt, process and restart: what a receiver dedupes on."""
    return stable_id(command_id, channel)


def ledger_key(command_id: str, channel: str) -> bytes:
    return f"{command_id}|{channel}".encode()


@dataclass(frozen=True)
class LedgerEntry:
    state: State
    at: datetime  # when this state was recorded (processing time)
    attempts: int = 0
    due: datetime | None = None  # held and retry: when to send
    partition: int = -1  # the notifications partition: the process that owns it sends
    command: dict[str, Any] | None = None  # held and retry: what to send (commands carry no contacts)
    detail: str = ""

    def dump(self) -> bytes:
        return orjson.dumps({"state": self.state.value, "at": self.at.isoformat(), "attempts": self.attempts,
                             "due": self.due.isoformat() if self.due else None, "partition": self.partition,
                             "command": self.command, "detail": self.detail})

    @classmethod
    def load(cls, raw: bytes) -> LedgerEntry:
        doc = orjson.loads(raw)
        return cls(state=State(doc["state"]), at=datetime.fromisoformat(doc["at"]), attempts=doc.get("attempts", 0),
                   due=datetime.fromisoformat(doc["due"]) if doc.get("due") else None,
                   partition=doc.get("partition", -1), command=doc.get("command"), detail=doc.get("detail", ""))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def delay(self, attempt: int, jitter: float) -> timedelta:
        """Exponential back-off after the ``attempt``-th failure (1-based), with ``jitter`` in
        [0, 1) spreading retries over the upper half of the window so senders do not stampede."""
        window = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
        return timedelta(seconds=window * (0.5 + jitter / 2))


def after_failure(entry_attempts: int, permanent: bool, policy: RetryPolicy, now: datetime,
                  jitter: float) -> tuple[State, datetime | None]:
    """What a failed attempt leads to: another try at a time, or failed for good."""
    attempts = entry_attempts + 1
    if permanent or attempts >= policy.max_attempts:
        return State.failed, None
    return State.retry, now + policy.delay(attempts, jitter)


def smtp_permanent(code: int) -> bool:
    """SMTP: 5xx is permanent (no such mailbox, refused), 4xx transient (try later)."""
    return 500 <= code < 600


def http_permanent(status: int) -> bool:
    """HTTP: 4xx is permanent (the request itself is wrong) except timeouts and rate limits."""
    return 400 <= status < 500 and status not in (408, 425, 429)


_EMAIL = re.compile(r"[^\s<>\"@]+@[^\s<>\"'@]+")  # a local part may hold an apostrophe (o'brien@...)
# International numbers (+81 90 1234 5678) and North American ones ((555) 123-4567, 555.123.4567);
# not every digit run, so times and ids in the text stay readable.
_PHONE = re.compile(r"\+\d[\d ()./-]{6,}\d|\(\d{3}\)\s?\d{3}[-.\s]\d{4}|\b\d{3}[-.\s]\d{3}[-.\s]\d{4}\b")


def without_contacts(text: str) -> str:
    """``text`` (a server's error message, say) with anything like an address or a phone number
    masked: such text goes to logs, history and the DLQ, where contact data never does."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<address>", text))
