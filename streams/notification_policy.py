"""Notification policy agent: commands meet the customer's preferences on the way out.

Reads ``customer-preferences`` (compacted) and ``notification-intents`` (the order agent's
commands), both keyed by customer id, so one worker holds a customer's preferences and
decides all their commands. Addressed commands go to ``notifications``; each decision
(queued, deferred, suppressed) is a history row.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from models import topics
from models.effects import NotificationCommand
from models.errors import InvalidPayload
from models.preferences import CustomerPreferences, address, parse_preferences
from streams.app import Channels, store_options
from streams.batch_io import send_envelopes, send_keyed, write_table
from streams.dead_letters import send_to_dlq


def register(app: faust.App, ch: Channels) -> None:
    partitions = app.conf.topic_partitions
    preferences = app.Table("customer-preferences", default=None, key_type=bytes, value_type=bytes,
                            partitions=partitions, options=store_options())

    @app.agent(ch.policy_input, name="notification-policy")
    async def address_commands(batches: faust.StreamT) -> None:
        async for records in batches:
            updated: dict[bytes, bytes | None] = {}  # to store
            known: dict[bytes, CustomerPreferences | None] = {}  # decoded once per customer and batch
            outgoing: list[tuple[str, bytes]] = []
            history: list[tuple[str, bytes]] = []
            decided_at = _now()  # when these commands leave trackline: for the latency panels
            for record in records:
                key = record.key or b""
                try:
                    if record.topic == topics.CUSTOMER_PREFERENCES:
                        # A tombstone forgets the customer's preferences: defaults apply.
                        known[key] = None if record.value is None else parse_preferences(record.value)
                        updated[key] = known[key].model_dump_json().encode() if known[key] else None
                        continue
                    command = _intent(record.value or b"")
                except InvalidPayload as error:
                    await send_to_dlq(ch.dlq, record, error)
                    continue
                if key not in known:
                    stored = preferences.get(key)
                    known[key] = CustomerPreferences.model_validate_json(stored) if stored else None
                sent, row = address(command, known[key])
                row = row.model_copy(update={"attributes": {**row.attributes, "decided_at": decided_at}})
                if sent is not None:
                    outgoing.append((sent.order_id, sent.model_dump_json().encode()))
                history.append((row.order_id, row.model_dump_json().encode()))
            await send_keyed(app, topics.NOTIFICATIONS, partitions, outgoing)
            await send_envelopes(app, topics.HISTORY, partitions, history)
            await app.producer.flush()
            await write_table(app, preferences, batches.current_event.message.partition, updated)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _intent(raw: bytes) -> NotificationCommand:
    try:
        return NotificationCommand.model_validate_json(raw)
    except ValidationError as exc:  # only the order agent writes here: a bug, not bad input
        raise InvalidPayload("invalid_internal_event", str(exc)[:500]) from None


