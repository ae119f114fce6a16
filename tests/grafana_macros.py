"""Expand grafana-clickhouse-datasource SQL macros as the plugin does, so panel SQL runs as-is."""

from __future__ import annotations

import re
from datetime import datetime


def expand(sql: str, start: datetime, end: datetime, interval_s: int = 60,
           variables: dict[str, str] | None = None) -> str:
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({frm})").replace("$__toTime", f"toDateTime({to})")
    sql = sql.replace("$__interval_s", str(interval_s))
    for name, value in (variables or {}).items():
        sql = sql.replace("${" + name + "}", value).replace("$" + name, value)
    return sql
