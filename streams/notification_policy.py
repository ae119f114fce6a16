"""Notification policy agent: commands meet the customer's preferences on the way out.

Reads ``customer-preferences`` (compacted) and ``notification-intents`` (the order agent's
commands), both keyed by customer id, so one worker holds a customer's preferences and
decides all their commands. Addressed commands go to ``notifications``; each decision
(queued, deferred, suppressed) is a history row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from pydantic import ValidationError

from models import topics
from models.codec import encode, replace
from models.effects import NotificationCommand
from models.errors import InvalidPayload
from models.formats import keeping_unknown_values
from models.preferences import (
    CustomerPreferences,
    address,
    contact_free_copy,
    parse_preferences,
    without_contact,
)
from streams.app import Channels, store_options
from streams.batch_io import Outbox, deliver, store_steps, whole_batch_or_exit
from streams.bulk import PartitionStep, partition_steps
from streams.dead_letters import send_to_dlq
from trackline.metrics import STAGE


def register(app: faust.App, ch: Channels, page_link: Callable[[str], str] = lambda order_id: "") -> None:
    """``page_link``: the customer's tracking page URL for an order id (empty: none configured)."""
    partitions = app.conf.topic_partitions
    preferences = app.Table("customer-preferences", default=None, key_type=bytes, value_type=bytes,
                            partitions=partitions, options=store_options())

    async def decide(outbox: Outbox, records: list[Any], updated: dict[bytes, bytes | None]) -> None:
        """Address one partition's commands (the partition's database is current)."""
        started = time.thread_time()
        known: dict[bytes, CustomerPreferences | None] = {}  # decoded once per customer and batch
        outgoing: list[tuple[str, bytes]] = []
        history: list[tuple[str, bytes]] = []
        decided_at = _now()  # when these commands leave trackline: for the latency panels
        for record in records:
            key = record.key or b""
            try:
                if record.topic == topics.CUSTOMER_PREFERENCES:
                    # A tombstone forgets the customer's preferences: defaults apply.
                    # Stored without the contact fields: only notification workers read those.
                    known[key] = kept = None if record.value is None else without_contact(
                        parse_preferences(record.value))
                    updated[key] = kept.model_dump_json().encode() if kept else None
                    continue
                command = _intent(record.value or b"")
                if key not in known:
                    stored = preferences.get(key)
                    known[key] = stored_preferences(stored) if stored else None
                sent, row = address(command, known[key])
            except Exception as error:  # InvalidPayload, or a bug: this record alone
                # A customer's record may hold contact data: the DLQ keeps it without.
                await send_to_dlq(outbox, record, error, value=contact_free_copy(record.value)
                                  if record.topic == topics.CUSTOMER_PREFERENCES and record.value else None)
                continue
            row = replace(row, attributes={**row.attributes, "decided_at": decided_at})
            if sent is not None:
                if link := page_link(sent.order_id):
                    sent = sent.model_copy(update={"tracking_page_url": link})
                outgoing.append((sent.order_id, sent.model_dump_json().encode()))
            history.append((row.order_id, encode(row)))
        STAGE["policy"].inc(time.thread_time() - started)
        await outbox.keyed(topics.NOTIFICATIONS, partitions, outgoing)
        await outbox.envelopes(topics.HISTORY, partitions, history)

    async def decide_steps(steps: list[PartitionStep]) -> None:
        """One agent step, every partition in it together: two waits for the broker's acks per step."""
        updated: dict[int, dict[bytes, bytes | None]] = {step.partition: {} for step in steps}  # to store

        async def commands(outbox: Outbox) -> None:
            for step in steps:
                updated[step.partition].clear()  # a retry decides again
                with step.current():
                    await decide(outbox, step.records, updated[step.partition])

        await deliver(app, "notification policy: commands", commands)

        await store_steps(app, "notification policy: preferences", preferences, steps, updated)

    @app.agent(ch.policy_input, name="notification-policy")
    async def address_commands(batches: faust.StreamT) -> None:
        async for steps in partition_steps(batches):
            async with whole_batch_or_exit("notification policy"):
                await decide_steps(steps)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def stored_preferences(stored: bytes) -> CustomerPreferences:
    with keeping_unknown_values():  # stored by a newer worker: a channel or update type this one lacks
        return CustomerPreferences.model_validate_json(stored)


def _intent(raw: bytes) -> NotificationCommand:
    try:
        with keeping_unknown_values():  # an update type a newer order agent added
            return NotificationCommand.model_validate_json(raw)
    except ValidationError as exc:  # only the order agent writes here: a bug, not bad input
        raise InvalidPayload("invalid_internal_event", str(exc)[:500]) from None


