"""Order lookup for support agents and customer-facing pages, served by the worker.

``GET /api/orders/{order_id}`` answers from the orders table; ``table_route`` forwards the
request to the worker that owns the order's partition.
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from models.order import order_view
from streams import order_store


def register(app: faust.App, orders: Any) -> None:
    @app.page("/api/orders/{order_id}")
    class OrderLookup(View):
        @app.table_route(table=orders, match_info="order_id")
        async def get(self, request: Request, order_id: str) -> Response:
            stored = orders.get(order_id.encode())
            if not stored:
                return self.bytes(orjson.dumps({"error": "order not found", "order_id": order_id}),
                                  content_type="application/json", status=404)
            body = orjson.dumps(order_view(order_store.decode(stored)))
            return self.bytes(body, content_type="application/json")
