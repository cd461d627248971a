"""HTTP adapter of the metrics: `GET /metrics` (JSON, or the Prometheus text format with
`?format=prometheus` or a scraper's `Accept: text/plain;version=0.0.4`)."""

from __future__ import annotations

from aiohttp import web

from ..errors import Invalid
from ..http.responses import json_response
from .metrics import PROMETHEUS_TYPE, Metrics, prometheus

METRICS = web.AppKey("metrics", Metrics)


def _wants_prometheus(request: web.Request) -> bool:
    wanted = request.query.get("format")
    if wanted is not None:
        if wanted not in ("json", "prometheus"):
            raise Invalid(f"format must be json or prometheus, got {wanted!r}")
        return wanted == "prometheus"
    accept = request.headers.get("Accept", "")
    # What Prometheus sends: "application/openmetrics-text;...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1".
    return "version=0.0.4" in accept.replace(" ", "") and "application/json" not in accept


async def get_metrics(request: web.Request) -> web.Response:
    snapshot = await request.app[METRICS].snapshot()
    if _wants_prometheus(request):
        response = web.Response(body=prometheus(snapshot).encode())
        response.headers["Content-Type"] = PROMETHEUS_TYPE
        return response
    return json_response(snapshot)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", get_metrics, allow_head=False)
