"""The JSON Schemas of trackline's public topics: what teams around trackline build against
without reading Python (``trackline schema``, committed under ``docs/schemas/``).

Inputs say what trackline accepts: their enums are closed, as an unknown value is refused
(dead-lettered), and fields it does not know are ignored. Outputs say what a consumer can rely
on: every field is present, as the worker writes whole models, and enums are open, as a newer
worker may add values (``models.formats.OpenEnum``) during a rolling upgrade or after one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from models import topics
from models.carriers import generic
from models.effects import Alert, NotificationCommand
from models.formats import OpenEnum
from models.fulfillment import fulfillment_json_schema
from models.preferences import CustomerPreferences

DIALECT = "https://json-schema.org/draft/2020-12/schema"
INPUT = ("trackline ignores fields it does not know; a value outside an enum, a missing required "
         "field or a wrong type sends the record to trackline.dlq.")
OUTPUT = ("Every field is present in every record. Enums are open: a later trackline may add values, "
          "so handle one you do not know instead of failing. A later trackline may add fields too: "
          "ignore those you do not know.")
OPEN_ENUM = "a value added by a later version: handle one you do not know instead of failing"


@dataclass(frozen=True)
class PublicTopic:
    name: str  # what `trackline schema NAME` takes, and the file under docs/schemas/
    topic: str
    key: str
    about: str
    build: Callable[[], dict[str, Any]]

    @property
    def file_name(self) -> str:
        return f"{self.name}.schema.json"


class _AsPublished(GenerateJsonSchema):
    """An output as consumers read it: model_dump_json writes every field, and enums are open."""

    def field_is_required(self, field: Any, total: bool) -> bool:
        return True

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        generated = super().enum_schema(schema)
        if not issubclass(schema["cls"], OpenEnum):
            return generated
        # Not in "description": pydantic sets that from the enum's docstring after this returns.
        generated["anyOf"] = [{"enum": generated.pop("enum"), "description": "known to this version"},
                              {"description": OPEN_ENUM}]
        return generated


def _published(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="serialization", schema_generator=_AsPublished)


def _preferences() -> dict[str, Any]:
    schema = CustomerPreferences.model_json_schema()
    # pydantic says format "time", which is RFC 3339's 22:00:00Z; trackline wants a local wall
    # clock, and a time with an offset cannot be compared with one (quiet_hours_end).
    for end in ("start", "end"):
        schema["$defs"]["QuietHours"]["properties"][end] = {
            "type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
            "description": "local time in the customer's time_zone, HH:MM; a window may run over midnight"}
    schema["properties"]["time_zone"]["description"] = "an IANA time zone name, e.g. Europe/Berlin"
    return schema


def _notifications() -> dict[str, Any]:
    schema = _published(NotificationCommand)
    # The policy addresses every command before it reaches this topic (models.preferences.address).
    schema["properties"]["channels"]["minItems"] = 1
    schema["properties"]["send_after"] = {
        "type": "string", "format": "date-time",
        "description": "do not send before this instant: the end of the customer's quiet hours, "
                       "or when the command was decided"}
    return schema


PUBLIC = {t.name: t for t in [
    PublicTopic("fc-events", topics.FC_EVENTS, "order id",
                "Fulfillment-center and order-management events, one JSON object per record: `type` selects "
                "the event and its fields. Times carry an offset. " + INPUT,
                fulfillment_json_schema),
    PublicTopic("customer-preferences", topics.CUSTOMER_PREFERENCES, "customer id",
                "A customer's notification preferences, compacted: the latest record per customer counts, "
                "and a tombstone (null value) restores the defaults (e-mail, no quiet hours). email and "
                "phone reach notification workers only. " + INPUT,
                _preferences),
    PublicTopic("generic-carrier", f"{topics.CARRIER_SCANS_RAW} with header {topics.SOURCE_HEADER}: {generic.SOURCE}",
                "tracking number",
                "The generic carrier format, for carriers without an aggregator: a package's scans, one JSON "
                "object per record. trackline ignores fields it does not know; a missing required field or a "
                "wrong type sends the record to trackline.dlq. An unknown status or reason is kept as "
                "unknown / other, never refused.",
                generic.json_schema),
    PublicTopic("notifications", topics.NOTIFICATIONS, "order id",
                "Notification commands, addressed: channels, locale and send_after come from the customer's "
                "preferences; contact details do not (read email and phone from "
                f"{topics.CUSTOMER_PREFERENCES}). command_id depends only on the order, package and "
                "milestone, so a replay repeats it: send each (command_id, channel) once. " + OUTPUT,
                _notifications),
    PublicTopic("alerts", topics.ALERTS, "order id (empty for unmatched_scans, which concern a carrier feed)",
                "Delay and stale-tracking detections for ops tooling: a record with state open when a deadline "
                "passed and, with the same alert_id, one with state closed when it cleared. " + OUTPUT,
                lambda: _published(Alert)),
]}


def find(name: str) -> PublicTopic | None:
    """The contract by its name or its topic's name (``notifications``, ``trackline.notifications``)."""
    return PUBLIC.get(name.removeprefix("trackline."))


def json_schema(name: str) -> dict[str, Any]:
    public = PUBLIC[name]
    schema = public.build()
    return {"$schema": DIALECT, "$id": f"urn:trackline:schema:{public.name}",
            **schema,
            "title": public.topic,
            "description": f"Topic {public.topic}, keyed by {public.key}. {public.about}"}


def document(name: str) -> str:
    """The schema as committed under docs/schemas/ and printed by `trackline schema NAME`."""
    return json.dumps(json_schema(name), indent=2) + "\n"
