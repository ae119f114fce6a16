"""One way to configure: ``TRACKLINE_*`` environment variables, overridden by CLI flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ENV_PREFIX = "TRACKLINE_"


@dataclass(frozen=True)
class Settings:
    kafka: str = ""  # bootstrap servers; empty = start the embedded broker
    clickhouse: str = ""  # http(s)://... or chdb:///path; empty = chDB under data_dir
    data_dir: Path = Path("data")
    partitions: int = 4
    web_port: int = 6066
    log_level: str = "info"
    thresholds: str = ""  # TOML file of detection thresholds; empty = config/detection.toml defaults
    tick_interval: float = 5.0  # seconds between deadline ticks

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        def get(name: str) -> str | None:
            return environ.get(ENV_PREFIX + name.upper())

        values: dict[str, object] = {}
        for name in ("kafka", "clickhouse", "log_level", "thresholds"):
            if (v := get(name)) is not None:
                values[name] = v
        if (v := get("data_dir")) is not None:
            values["data_dir"] = Path(v)
        for name in ("partitions", "web_port"):
            if (v := get(name)) is not None:
                values[name] = int(v)
        if (v := get("tick_interval")) is not None:
            values["tick_interval"] = float(v)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        return replace(settings, data_dir=Path(settings.data_dir).resolve())

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse or f"chdb://{self.data_dir / 'clickhouse'}"

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka
