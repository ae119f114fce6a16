"""One way to configure: ``TRACKLINE_*`` environment variables, overridden by CLI flags.

A secret may also come from a file named by ``<VARIABLE>_FILE`` (container secrets: Docker,
Kubernetes), never from a flag, and it is never printed: ``trackline config`` shows it masked.
A value that does not fit gives one line naming the variable and what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "TRACKLINE_"
# Sources that sign their webhooks, each with its own secrets (comma-separated: several while
# one is rotated out). ``fc`` is the fulfillment-center endpoint.
WEBHOOK_SOURCES = ("aftership", "easypost", "shippo", "generic", "x12_214", "fc")
SECRETS = ("support_token", "tracking_page_keys", "smtp_password", "notifier_http_secret",
           *(f"secret_{source}" for source in WEBHOOK_SOURCES))
LISTS = ("tracking_page_keys", *(f"secret_{source}" for source in WEBHOOK_SOURCES))  # comma-separated


class ConfigError(ValueError):
    """A setting that does not fit; the message is one line per problem, naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    kafka: str = ""  # bootstrap servers; empty = start the embedded broker
    clickhouse: str = ""  # http(s)://... or chdb:///path; empty = chDB under data_dir
    data_dir: Path = Path("data")
    partitions: int = Field(4, ge=1, le=10_000)
    web_port: int = Field(6066, ge=0, le=65_535)
    web_bind: str = "127.0.0.1"  # the worker's listen address; 0.0.0.0 to serve other hosts
    # The host other workers reach this one at, to forward an order lookup or tracking page to
    # the worker that owns the order; empty: the bind address, or this host's name when binding
    # every interface.
    web_host: str = ""
    # The ingest service (``trackline ingest``): where it listens, the largest body it takes, and
    # how long a request waits for the broker's acknowledgement before it answers 503.
    ingest_port: int = Field(8080, ge=0, le=65_535)
    ingest_bind: str = "127.0.0.1"
    ingest_max_body_bytes: int = Field(1_048_576, ge=1)
    ingest_ack_timeout: float = Field(5.0, gt=0, le=300)
    # Prometheus ``/metrics`` of the sink, the notifier and the ingest service, each on its own
    # port (0: not served); the worker serves it on its web port.
    metrics_port: int = Field(0, ge=0, le=65_535)
    metrics_bind: str = "127.0.0.1"
    # Days a dead letter keeps its original bytes (they may hold personal data); the row, with
    # the reason, stays 90 days.
    dlq_payload_days: int = Field(30, ge=1, le=90)
    log_level: Literal["crit", "error", "warn", "info", "debug"] = "info"
    thresholds: str = ""  # TOML file of detection thresholds; empty = config/detection.toml defaults
    tick_interval: float = Field(5.0, gt=0)  # seconds between deadline ticks
    # What a partition read to its end contributes to the watermark: the wall clock (live
    # traffic), or the newest record time processed anywhere ("records": replays and backfills
    # of history, make quality; time then stands still while nothing arrives).
    watermark_clock: Literal["wall", "records"] = "wall"
    # Our own estimate (models.transit): lanes learn from delivered packages and the customer
    # sees the model's date where it was measured closer than the carrier's. Off: the carrier's
    # date or the promise only, and no predicted_late alerts. Runs compared with the oracle
    # (make chaos, make bench) turn it off: when a model version reaches each order partition
    # depends on the run's timing, which a one-process oracle cannot know.
    own_estimate: bool = True
    # Support agents' bearer token (order lookup, support tracking page).
    support_token: SecretStr | None = None
    secret_aftership: list[SecretStr] = Field(default_factory=list)
    secret_easypost: list[SecretStr] = Field(default_factory=list)
    secret_shippo: list[SecretStr] = Field(default_factory=list)
    secret_generic: list[SecretStr] = Field(default_factory=list)
    secret_x12_214: list[SecretStr] = Field(default_factory=list)
    secret_fc: list[SecretStr] = Field(default_factory=list)
    # The customer's tracking page: the public base URL the links in commands start with (no
    # default: without it commands carry no tracking page link), and the keys its tokens are
    # signed with, as "<key id>:<secret>" items, comma-separated; the first signs new links,
    # all of them are accepted (rotation).
    tracking_page_base_url: str = Field("", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$")
    tracking_page_keys: list[SecretStr] = Field(default_factory=list)
    tracking_page_refresh_seconds: int = Field(60, ge=1, le=3600)
    # The notifier's channels: e-mail over SMTP when a host is set, SMS and push as signed HTTP
    # POSTs when their URLs are set; channels without one go to the JSON-lines file.
    smtp_host: str = ""
    smtp_port: int = Field(25, ge=1, le=65_535)
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = Field("trackline@localhost", pattern=r"^[^\s@]+@[^\s@]+$|^.+<[^\s@]+@[^\s@]+>$")
    sms_url: str = Field("", pattern=r"^(https?://\S+)?$")
    push_url: str = Field("", pattern=r"^(https?://\S+)?$")
    notifier_http_secret: SecretStr | None = None  # signs the HTTP channels' requests (X-Trackline-Signature)
    notifier_max_attempts: int = Field(5, ge=1, le=100)
    notifier_retry_base_seconds: float = Field(1.0, gt=0)
    notifier_retry_cap_seconds: float = Field(300.0, gt=0)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``from_env`` reads the environment it is given (and the *_FILE secrets) itself, so a
        # test or an embedding program never picks up this process's variables by accident.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """The settings from ``environ`` (``TRACKLINE_*``), with ``overrides`` (flags) on top;
        an override of None means the flag was not given."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            variable = ENV_PREFIX + name.upper()
            raw = environ.get(variable)
            if name in SECRETS and not raw and (path := environ.get(variable + "_FILE")):
                try:
                    raw = Path(path).read_text().strip()
                except OSError as error:
                    raise ConfigError(f"{variable}_FILE: cannot read {path}: {error.strerror}") from None
            if not raw:  # unset, or set empty (compose's ${VAR:-}): the default applies
                continue
            if name in LISTS:
                values[name] = [part.strip() for part in raw.split(",") if part.strip()]
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = cls(**values)
        except ValidationError as error:
            raise ConfigError("; ".join(_explain(e) for e in error.errors())) from None
        return settings.model_copy(update={"data_dir": Path(settings.data_dir).resolve()})

    @property
    def clickhouse_dsn(self) -> str:
        dsn = self.clickhouse or f"chdb://{self.data_dir / 'clickhouse'}"
        # "chdb://data/clickhouse" means a directory relative to here; clickhouse-connect would
        # open a database "clickhouse" in a directory "data" instead.
        scheme, _, rest = dsn.partition("://")
        location, query = rest.partition("?")[::2]
        if scheme == "chdb" and location and not location.startswith("/") \
                and location.split("/")[0] not in ("memory", ":memory:"):
            return f"chdb://{Path(location).resolve()}" + (f"?{query}" if query else "")
        return dsn

    @property
    def advertised_web_host(self) -> str:
        if self.web_host:
            return self.web_host
        if self.web_bind in ("0.0.0.0", "::", ""):
            import socket

            return socket.getfqdn()
        return self.web_bind

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka

    def webhook_secrets(self, source: str) -> list[str]:
        """The secrets a source's webhooks may be signed with (empty: none configured)."""
        field = f"secret_{source.replace('-', '_')}"
        return [s.get_secret_value() for s in getattr(self, field, [])]

    @field_validator("tracking_page_keys")
    @classmethod
    def _key_items(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            key_id, sep, secret = key.get_secret_value().partition(":")
            if not sep or not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", key_id) or len(secret) < 16:
                raise ValueError("each item is <key id>:<secret>, the id 1-16 letters, digits, - or _, "
                                 "the secret at least 16 characters")
        return keys

    @model_validator(mode="after")
    def _http_channels_signed(self) -> Settings:
        if (self.sms_url or self.push_url) and self.notifier_http_secret is None:
            raise ValueError("TRACKLINE_NOTIFIER_HTTP_SECRET is required with TRACKLINE_SMS_URL or TRACKLINE_PUSH_URL "
                             "(the receivers check the signature)")
        return self

    def tracking_keys(self) -> dict[str, str]:
        """Key id -> secret, every key a tracking page token may be signed with."""
        return dict(k.get_secret_value().partition(":")[::2] for k in self.tracking_page_keys)

    def tracking_page_link(self, order_id: str) -> str:
        """The customer's tracking page URL for ``order_id``; empty without a base URL or a key."""
        if not self.tracking_page_base_url or not self.tracking_page_keys:
            return ""
        from models.tracking_page import tracking_page_url

        key_id, _, key = self.tracking_page_keys[0].get_secret_value().partition(":")
        return tracking_page_url(self.tracking_page_base_url, order_id, key_id, key)

    def effective(self) -> dict[str, Any]:
        """Every setting as ``trackline config`` prints it: secrets masked, never their values."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in SECRETS and name not in LISTS:
                shown[name] = "********" if value is not None else None
            elif name in LISTS:
                shown[name] = f"{len(value)} secret(s) set" if value else "none"
            else:
                shown[name] = str(value) if isinstance(value, Path) else value
        return shown


def _explain(error: Any) -> str:
    if not error.get("loc"):  # a rule across settings: its message names the variables (and no values)
        return str(error["msg"]).removeprefix("Value error, ")
    name = str(error["loc"][0])
    variable = ENV_PREFIX + name.upper()
    if name in SECRETS:  # never echo what was given for a secret
        return f"{variable}: {error['msg']}"
    return f"{variable}: {error['msg']} (got {error.get('input')!r})"
