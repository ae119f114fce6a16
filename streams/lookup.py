"""Order lookup for support agents, served by the worker.

``GET /api/orders/{order_id}`` answers from the orders table; ``table_route`` forwards the
request (its headers included) to the worker that owns the order's partition. It needs the
support token as ``Authorization: Bearer <token>``; without a configured token
(``TRACKLINE_SUPPORT_TOKEN``) the lookup is closed to everyone.
"""

from __future__ import annotations

import hmac
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from models.order import order_view
from streams import order_store


def bearer_token_ok(authorization: str | None, token: str | None) -> bool:
    """True if the ``Authorization`` header carries ``token`` (compared in constant time)."""
    if not token or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer "):].strip().encode(), token.encode())


def register(app: faust.App, orders: Any, support_token: str | None) -> None:
    @app.page("/healthz")
    class Health(View):
        """Liveness for orchestrators (compose, Kubernetes): says nothing about any order."""

        async def get(self, request: Request) -> Response:
            owned = len(app.assignor.assigned_actives())
            return self.bytes(orjson.dumps({"status": "ok", "partitions_assigned": owned}),
                              content_type="application/json")

    @app.page("/api/orders/{order_id}")
    class OrderLookup(View):
        async def get(self, request: Request, order_id: str) -> Response:
            # Checked before routing: a request without the token goes nowhere.
            if not bearer_token_ok(request.headers.get("Authorization"), support_token):
                reason = ("support token required: Authorization: Bearer <TRACKLINE_SUPPORT_TOKEN>"
                          if support_token else "order lookup is closed: set TRACKLINE_SUPPORT_TOKEN")
                return self.bytes(orjson.dumps({"error": reason}), content_type="application/json", status=401,
                                  headers={"WWW-Authenticate": 'Bearer realm="trackline"'})
            if not app.assignor.assigned_actives():  # no partitions yet: the router cannot say who owns it
                return self.bytes(orjson.dumps({"error": "worker not ready: no partitions assigned yet"}),
                                  content_type="application/json", status=503, headers={"Retry-After": "2"})
            return await self.owned(request, order_id=order_id)

        @app.table_route(table=orders, match_info="order_id")
        async def owned(self, request: Request, order_id: str) -> Response:
            stored = orders.get(order_id.encode())
            if not stored:
                return self.bytes(orjson.dumps({"error": "order not found", "order_id": order_id}),
                                  content_type="application/json", status=404)
            body = orjson.dumps(order_view(order_store.decode(stored)))
            return self.bytes(body, content_type="application/json")
