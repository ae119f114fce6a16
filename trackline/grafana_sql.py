"""Panel SQL as the grafana-clickhouse-datasource plugin runs it: its macros and template
variables expanded the way the plugin and Grafana expand them. The ops page and the tests
use this to run the dashboards' own queries against trackline's ClickHouse.
"""

from __future__ import annotations

import re
from datetime import datetime

ALL = "ALL"  # the ``allValue`` of every multi-value variable in dashboards/


def expand(sql: str, start: datetime, end: datetime, interval_s: int = 60,
           variables: dict[str, str | list[str]] | None = None) -> str:
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({frm})").replace("$__toTime", f"toDateTime({to})")
    sql = sql.replace("$__interval_s", str(interval_s))
    for name, value in (variables or {}).items():
        values = value if isinstance(value, list) else [value]
        quoted = ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
        sql = sql.replace("${" + name + ":singlequote}", quoted)
        sql = sql.replace("${" + name + "}", ",".join(values)).replace("$" + name, ",".join(values))
    return sql


def variable_defaults(dashboard: dict) -> dict[str, str | list[str]]:
    """What Grafana starts with: "All" (our ``ALL``) for multi-value variables, else the current value."""
    defaults: dict[str, str | list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("includeAll"):
            defaults[variable["name"]] = variable.get("allValue", ALL)
        else:
            defaults[variable["name"]] = (variable.get("current") or {}).get("value", "")
    return defaults
