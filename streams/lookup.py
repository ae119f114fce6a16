"""Order lookup and tracking pages, served by the worker.

``GET /track/{token}`` is the customer's tracking page (``models.tracking_page``); the token
names the order, so the request goes to the worker that owns it. A forged or unknown token
gets the same plain "not found". ``GET /support/orders/{order_id}`` is the same page for
support agents, with the open detections, behind the support token.

``GET /api/orders/{order_id}`` answers from the orders table; ``table_route`` forwards the
request (its headers included) to the worker that owns the order's partition. It needs the
support token as ``Authorization: Bearer <token>``; without a configured token
(``TRACKLINE_SUPPORT_TOKEN``) the lookup is closed to everyone.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from jinja2 import Environment, FileSystemLoader, select_autoescape

from models.order import order_view
from models.settings import Settings
from models.tracking_page import order_in_token, page_view
from streams import order_store
from trackline.metrics import exposition


def bearer_token_ok(authorization: str | None, token: str | None) -> bool:
    """True if the ``Authorization`` header carries ``token`` (compared in constant time)."""
    if not token or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer "):].strip().encode(), token.encode())


log = logging.getLogger(__name__)
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))  # carriers' words are untrusted input


def register(app: faust.App, orders: Any, settings: Settings) -> None:
    support_token = settings.support_token.get_secret_value() if settings.support_token else None
    tracking_keys = settings.tracking_keys()
    page = TEMPLATES.get_template("tracking_page.html")

    def html(view_: View, view: dict | None, status: int = 200, support: bool = False) -> Response:
        body = page.render(view=view, support=support, refresh_seconds=settings.tracking_page_refresh_seconds)
        return view_.html(body, status=status, headers={
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})

    def stored_state(order_id: str) -> Any:
        """The order's state; None if unknown or removed by retention."""
        stored = orders.get(order_id.encode())
        return order_store.decode(stored) if stored and order_store.marker(stored) is None else None

    def stored_view(order_id: str, support: bool) -> dict | None:
        state = stored_state(order_id)
        return page_view(state, alerts=support) if state else None

    def unreadable(view_: View, order_id: str, exc: order_store.UnreadableState) -> Response:
        log.error("order %s: stored state does not decode: %s", order_id[:64], exc)
        return view_.text("this order cannot be shown right now", status=500)

    @app.page("/track/{token}")
    class TrackingPage(View):
        async def get(self, request: Request, token: str) -> Response:
            order_id = order_in_token(token, tracking_keys)
            if order_id is None:
                return html(self, None, 404)
            if not app.assignor.assigned_actives():
                return self.text("starting, try again in a moment", status=503, headers={"Retry-After": "2"})
            try:  # the token names the order: ask the worker that owns it
                return await app.router.route_req(orders.name, order_id, self.web, request)
            except SameNode:
                try:
                    view = stored_view(order_id, support=False)
                except order_store.UnreadableState as exc:
                    return unreadable(self, order_id, exc)
                return html(self, view, 200 if view else 404)

    @app.page("/support/orders/{order_id}")
    class SupportPage(View):
        async def get(self, request: Request, order_id: str) -> Response:
            if not bearer_token_ok(request.headers.get("Authorization"), support_token):
                return self.text("support token required", status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="trackline"'})
            if not app.assignor.assigned_actives():
                return self.text("starting, try again in a moment", status=503, headers={"Retry-After": "2"})
            return await self.owned(request, order_id=order_id)  # type: ignore[call-arg]  # Faust stub: see owned

        # Faust's stubs type a routed handler as (view, request) only; it passes the URL parameter on at run time.
        @app.table_route(table=orders, match_info="order_id")  # type: ignore[arg-type]
        async def owned(self, request: Request, order_id: str) -> Response:
            try:
                view = stored_view(order_id, support=True)
            except order_store.UnreadableState as exc:
                return unreadable(self, order_id, exc)
            return html(self, view, 200 if view else 404, support=True)

    @app.page("/healthz")
    class Health(View):
        """Liveness for orchestrators (compose, Kubernetes): says nothing about any order."""

        async def get(self, request: Request) -> Response:
            owned = len(app.assignor.assigned_actives())
            return self.bytes(orjson.dumps({"status": "ok", "partitions_assigned": owned}),
                              content_type="application/json")

    @app.page("/metrics")
    class Metrics(View):
        """Prometheus scrape: counts by topic, source, reason and partition, never an order."""

        async def get(self, request: Request) -> Response:
            body, content_type = exposition()
            return self.bytes(body, headers={"Content-Type": content_type})

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
            return await self.owned(request, order_id=order_id)  # type: ignore[call-arg]  # Faust stub: see owned

        # Faust's stubs type a routed handler as (view, request) only; it passes the URL parameter on at run time.
        @app.table_route(table=orders, match_info="order_id")  # type: ignore[arg-type]
        async def owned(self, request: Request, order_id: str) -> Response:
            try:
                state = stored_state(order_id)
            except order_store.UnreadableState as exc:  # its events wait in the DLQ (unreadable_order_state)
                log.error("order %s: stored state does not decode: %s", order_id[:64], exc)
                return self.bytes(orjson.dumps({"error": "order state unreadable; its events wait in the dead "
                                                         "letters", "order_id": order_id}),
                                  content_type="application/json", status=500)
            if state is None:  # unknown, or removed by retention (README: what is kept, how long)
                return self.bytes(orjson.dumps({"error": "order not found", "order_id": order_id}),
                                  content_type="application/json", status=404)
            body = orjson.dumps(order_view(state))
            return self.bytes(body, content_type="application/json")
