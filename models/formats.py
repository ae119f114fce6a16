"""Format versions of what trackline stores and passes between its own processes, and how a
worker reads what a newer one wrote during a rolling upgrade.

- Stored order state: ``<next deadline>|<STATE_FORMAT>|<JSON>``. Format 1 (before versions)
  had no middle field; it is read as it was.
- Internal topic records (order events, intents, history, alerts, links, notifications) carry
  the header ``trackline-format: <RECORD_FORMAT>``.
- A newer worker may write an enum value this one does not know (a new package status, a new
  update type). Inside ``keeping_unknown_values()`` such a value is kept as it was written, as a
  member of its enum that only carries the raw value, instead of failing the whole record.
  Outside it (untrusted input at the edges) an unknown value is still an error.
- Fields this version does not know are ignored on read (pydantic's default); fields it
  added have defaults, so a record from an older worker reads too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

STATE_FORMAT = 2
RECORD_FORMAT = 1
FORMAT_HEADER = "trackline-format"
RECORD_HEADERS = [(FORMAT_HEADER, str(RECORD_FORMAT).encode())]

_keep_unknown: ContextVar[bool] = ContextVar("trackline_keep_unknown_enum_values", default=False)


class OpenEnum(StrEnum):
    """An enum whose unknown values are kept, not refused, while reading trackline's own data.

    Known values validate in pydantic's core as before (no Python call); only an unknown one
    reaches ``_missing_``.
    """

    @classmethod
    def _missing_(cls, value: Any) -> Any:
        if not _keep_unknown.get() or not isinstance(value, str):
            return None
        unknown = str.__new__(cls, value)
        unknown._name_ = value
        unknown._value_ = value
        return unknown


def is_known(value: StrEnum) -> bool:
    return value._name_ in type(value).__members__


@contextmanager
def keeping_unknown_values() -> Iterator[None]:
    token = _keep_unknown.set(True)
    try:
        yield
    finally:
        _keep_unknown.reset(token)
