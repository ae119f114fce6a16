"""How trackline encodes what it wrote itself: one module, so a change of library is one file.

msgspec reads and writes the order state (``models.state``) without validating it field by
field as pydantic did at every assignment; trackline is its only writer. Pydantic stays at
the edges: carrier and fulfillment input, preferences, the published schemas, the API.

The state embeds the pydantic ``NotificationCommand`` (commands decided before the order was
known): the hooks below write it as its JSON document and read it back validated.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import BaseModel

from models.effects import HistoryRecord
from models.events import CarrierScan
from models.formats import keeping_unknown_values
from models.state import OrderState
from models.transit import LaneModelsUpdated, LaneWindow, TransitRecord


def _encode_other(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise NotImplementedError(f"no encoding for {type(value).__name__}")


def _decode_other(kind: type, value: Any) -> Any:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind.model_validate(value)
    raise NotImplementedError(f"no decoding for {kind!r}")


_ENCODER = msgspec.json.Encoder(enc_hook=_encode_other)
_STATE = msgspec.json.Decoder(OrderState, dec_hook=_decode_other)


def encode_state(state: OrderState) -> bytes:
    return _ENCODER.encode(state)


def decode_state(document: bytes) -> OrderState:
    """The state as stored; values a newer worker wrote that this one does not know are kept
    (``models.formats``). Raises ``msgspec.ValidationError`` for a document that is not a state."""
    with keeping_unknown_values():
        return _STATE.decode(document)


_LANE_MODELS = msgspec.json.Decoder(LaneModelsUpdated)
_OBSERVED = msgspec.json.Decoder(TransitRecord)
_WINDOW = msgspec.json.Decoder(LaneWindow)


def encode(value: msgspec.Struct) -> bytes:
    """Any of trackline's own records (lane models, observations, windows) as JSON."""
    return _ENCODER.encode(value)


def decode_lane_models(document: bytes) -> LaneModelsUpdated:
    return _LANE_MODELS.decode(document)


def decode_transit_observed(document: bytes) -> TransitRecord:
    """A delivered package, or one handed over (``models.transit``)."""
    return _OBSERVED.decode(document)


def decode_lane_window(document: bytes) -> LaneWindow:
    return _WINDOW.decode(document)


def copy_state(state: OrderState) -> OrderState:
    """A deep copy, for a batch that must be able to go back to where it started."""
    return decode_state(_ENCODER.encode(state))


def as_dict(value: msgspec.Struct) -> dict[str, Any]:
    """A state record's fields as a dict (one level), for views built from it."""
    return msgspec.structs.asdict(value)


def replace(value: Any, **changes: Any) -> Any:
    """A copy of a state record with some fields changed (shallow)."""
    return msgspec.structs.replace(value, **changes)


_HISTORY = msgspec.json.Decoder(list[HistoryRecord])


def decode_history(document: bytes) -> list[HistoryRecord]:
    """A history envelope (a JSON array of records), as a reader of ``trackline.history`` sees it."""
    return _HISTORY.decode(document)


def encode_scan(scan: CarrierScan) -> bytes:
    """A routed scan for the order hop, as ``model_dump_json`` writes it, without pydantic's
    serializer per scan; the order tracker reads it with pydantic (``models.events``)."""
    return _ENCODER.encode(scan.__dict__)


def checked_history(**fields: Any) -> HistoryRecord:
    """A history row from fields read out of a document (not set by trackline's rules): each
    field's type is checked, as pydantic did, and a wrong one raises ``ValueError``."""
    try:
        return msgspec.convert(fields, HistoryRecord)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
