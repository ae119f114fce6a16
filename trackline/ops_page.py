"""A read-only ops page: the Grafana dashboards in dashboards/, rendered from the same JSON
and the same panel SQL, for machines without Grafana (the demo, a laptop).

Grafana cannot read the embedded engine from outside the process that holds it, so the
sink serves this page with its own ClickHouse client (``trackline sink --ops-port``);
against a ClickHouse server any process can. The page only runs the SQL of a dashboard's
panels and variables, with the plugin's macros expanded; requests choose a dashboard, a
panel, the time range and variable values (checked against a safe character set), never
SQL.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from trackline.grafana_sql import ALL, expand

log = logging.getLogger("trackline.ops_page")
# Package data (dashboards/): found from a checkout and from an installed wheel alike.
DASHBOARDS = Path(str(resources.files("dashboards")))
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+\- ]{0,128}$")
Query = Callable[[str], tuple[list[str], list[tuple]]]


class OpsPage:
    def __init__(self, query: Query, dashboards: Path = DASHBOARDS) -> None:
        self.query = query
        self.dashboards = {d["uid"]: d for d in (json.loads(p.read_text()) for p in sorted(dashboards.glob("*.json")))}

    def serve(self, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, content_type, body = page.respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="ops-page", daemon=True).start()
        return server

    def respond(self, path: str) -> tuple[int, str, bytes]:
        url = urlparse(path)
        parts = [p for p in url.path.split("/") if p]
        params = {k: v for k, v in parse_qs(url.query).items()}
        try:
            if not parts:
                return 200, "text/html; charset=utf-8", self.index().encode()
            if parts[0] == "d" and len(parts) == 2 and parts[1] in self.dashboards:
                return 200, "text/html; charset=utf-8", PAGE.replace("__UID__", parts[1]).encode()
            if parts[:2] == ["api", "dashboards"] and len(parts) == 3 and parts[2] in self.dashboards:
                return 200, "application/json", json.dumps(self.dashboards[parts[2]]).encode()
            if parts[:2] == ["api", "variable"] and len(parts) == 4:
                return self._json(self.variable_options(parts[2], parts[3]))
            if parts[:2] == ["api", "panel"] and len(parts) == 4:
                return self._json(self.panel_rows(parts[2], int(parts[3]), params))
        except StopIteration:
            return 404, "application/json", b'{"error": "no such panel or variable"}'
        except (KeyError, ValueError) as error:
            return 400, "application/json", json.dumps({"error": str(error)}).encode()
        except Exception as error:  # a query the engine refused: say so on the panel
            log.warning("ops page query failed: %s", error)
            return 500, "application/json", json.dumps({"error": str(error)[:500]}).encode()
        return 404, "application/json", b'{"error": "not found"}'

    def index(self) -> str:
        links = "".join(f'<li><a href="/d/{uid}">{d["title"]}</a> <small>{d.get("description", "")}</small></li>'
                        for uid, d in self.dashboards.items())
        return f"<!doctype html><title>trackline ops</title><h1>trackline ops</h1><ul>{links}</ul>"

    def variable_options(self, uid: str, name: str) -> dict:
        variable = next(v for v in self.dashboards[uid]["templating"]["list"] if v["name"] == name)
        if variable.get("type") != "query":
            return {"options": []}
        _, rows = self.query(variable["query"])
        return {"options": [str(r[0]) for r in rows], "includeAll": bool(variable.get("includeAll"))}

    def panel_rows(self, uid: str, panel_id: int, params: dict[str, list[str]]) -> dict:
        dashboard = self.dashboards[uid]
        panel = next(p for p in dashboard["panels"] if p["id"] == panel_id)
        now = datetime.now(UTC)
        start = _time(params.get("from", [""])[0], now - timedelta(hours=24))
        end = _time(params.get("to", [""])[0], now)
        variables: dict[str, str | list[str]] = {}
        for variable in dashboard.get("templating", {}).get("list", []):
            values = params.get(f"var-{variable['name']}") or self._default(uid, variable)
            for value in values:
                if not SAFE_VALUE.match(value):
                    raise ValueError(f"value {value!r} of {variable['name']} is not allowed")
            variables[variable["name"]] = values if variable.get("includeAll") else values[0]
        seconds = max(1, int((end - start).total_seconds() / 100))  # about 100 points, as Grafana picks
        sql = expand(panel["targets"][0]["rawSql"], start, end, interval_s=seconds, variables=variables)
        columns, rows = self.query(sql)
        return {"columns": columns, "rows": [[_cell(v) for v in row] for row in rows[:500]]}

    def _default(self, uid: str, variable: dict) -> list[str]:
        """As Grafana starts: "All", or a query variable's first option."""
        if variable.get("includeAll"):
            return [ALL]
        if variable.get("type") == "query":
            return self.variable_options(uid, variable["name"])["options"][:1] or [""]
        return [(variable.get("current") or {}).get("value", "")]

    @staticmethod
    def _json(payload: dict) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(payload).encode()


def _time(value: str, default: datetime) -> datetime:
    return datetime.fromtimestamp(float(value), UTC) if value else default


def _cell(value: Any) -> Any:
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return str(value)


def client_query(client: Any, lock: threading.Lock) -> Query:
    def run(sql: str) -> tuple[list[str], list[tuple]]:
        with lock:
            result = client.query(sql)
        return list(result.column_names), list(result.result_rows)

    return run


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>trackline ops</title>
<style>
 body { font-family: sans-serif; margin: 1em; background: #f6f7f9; }
 .grid { display: grid; grid-template-columns: repeat(24, 1fr); gap: 10px; }
 .panel { background: #fff; border: 1px solid #dde; border-radius: 4px; padding: 8px; overflow: auto;
          max-height: 420px; }
 .panel h2 { font-size: 14px; margin: 0 0 6px; }
 table { border-collapse: collapse; font-size: 12px; } td, th { border-bottom: 1px solid #eee; padding: 2px 6px; }
 .state { color: #888; font-size: 12px; } .bar { fill: #5b8def; } svg text { font-size: 10px; }
</style></head>
<body><a href="/">all dashboards</a><h1 id="title">...</h1><p id="description"></p>
<form id="vars"></form><div class="grid" id="grid"></div>
<script>
const uid = "__UID__";
const query = new URLSearchParams(location.search);
function esc(s) { return String(s).replace(/[&<>]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c])); }
function chart(columns, rows) {
  // A bar per row: the first text column against the first numeric column.
  const label = columns.findIndex((c, i) => rows.some(r => typeof r[i] === "string"));
  const value = columns.findIndex((c, i) => rows.every(r => typeof r[i] === "number"));
  if (label < 0 || value < 0 || rows.length > 40) return "";
  const max = Math.max(...rows.map(r => r[value]), 1);
  const bars = rows.map((r, i) => `<text x="0" y="${i * 16 + 11}">${esc(r[label])}</text>` +
    `<rect class="bar" x="160" y="${i * 16 + 2}" height="12" width="${Math.max(1, 300 * r[value] / max)}"></rect>` +
    `<text x="${165 + 300 * r[value] / max}" y="${i * 16 + 11}">${r[value]}</text>`).join("");
  return `<svg width="520" height="${rows.length * 16 + 4}">${bars}</svg>`;
}
function table(columns, rows) {
  return "<table><tr>" + columns.map(c => `<th>${esc(c)}</th>`).join("") + "</tr>" +
    rows.slice(0, 50).map(r => "<tr>" + r.map(v => `<td>${esc(v)}</td>`).join("") + "</tr>").join("") + "</table>";
}
async function main() {
  const dashboard = await (await fetch(`/api/dashboards/${uid}`)).json();
  document.getElementById("title").textContent = dashboard.title;
  document.getElementById("description").textContent = dashboard.description || "";
  const params = new URLSearchParams();
  for (const v of (dashboard.templating || {}).list || []) {
    const picked = query.getAll(`var-${v.name}`);
    let options = [];
    if (v.type === "query") options = (await (await fetch(`/api/variable/${uid}/${v.name}`)).json()).options;
    const values = picked.length ? picked : (v.includeAll ? ["ALL"] : options.slice(0, 1));
    values.forEach(value => params.append(`var-${v.name}`, value));
    const choices = (v.includeAll ? ["ALL"] : []).concat(options);
    document.getElementById("vars").insertAdjacentHTML("beforeend", `<label>${esc(v.label || v.name)} ` +
      `<select name="var-${v.name}" onchange="this.form.submit()">` + choices.map(o =>
      `<option ${values.includes(o) ? "selected" : ""}>${esc(o)}</option>`).join("") + `</select></label> `);
  }
  for (const name of ["from", "to"]) if (query.get(name)) params.set(name, query.get(name));
  const grid = document.getElementById("grid");
  await Promise.all(dashboard.panels.map(async panel => {
    const div = document.createElement("div");
    div.className = "panel"; div.id = `panel-${panel.id}`; div.dataset.state = "loading";
    div.style.gridColumn = `${panel.gridPos.x + 1} / span ${panel.gridPos.w}`;
    div.innerHTML = `<h2>${esc(panel.title)}</h2><div class="state">loading</div>`;
    grid.appendChild(div);
    const response = await fetch(`/api/panel/${uid}/${panel.id}?${params}`);
    const body = await response.json();
    if (!response.ok) { div.dataset.state = "error"; div.innerHTML += `<div class="state">${esc(body.error)}</div>`; }
    else if (!body.rows.length) { div.dataset.state = "empty"; div.innerHTML += `<div class="state">No data</div>`; }
    else {
      div.dataset.state = "data"; div.dataset.rows = body.rows.length;
      div.innerHTML += (panel.type === "table" ? "" : chart(body.columns, body.rows)) + table(body.columns, body.rows);
    }
    div.querySelector(".state").remove();
  }));
  document.body.dataset.rendered = "yes";
}
main();
</script></body></html>
"""
