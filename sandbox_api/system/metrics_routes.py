"""HTTP adapter of the metrics: `GET /metrics` (JSON, or the Prometheus text format with
`?format=prometheus` or a scraper's `Accept: text/plain;version=0.0.4`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import Invalid
from ..http import operations
from ..http.operations import Failure, Media, Operation
from ..http.responses import json_response
from ..lazy import OnFirstUse
from .metrics_wire import FORMATS, PROMETHEUS_TYPE, MetricsQuery, MetricsResponse

if TYPE_CHECKING:
    from .metrics import Metrics

METRICS: web.AppKey[OnFirstUse[Metrics]] = web.AppKey("metrics")  # built on the first call


def _wants_prometheus(request: web.Request) -> bool:
    wanted = operations.query(request, MetricsQuery).format
    if wanted is not None:
        if wanted not in FORMATS:
            raise Invalid(f"format must be json or prometheus, got {wanted!r}")
        return wanted == "prometheus"
    accept = request.headers.get("Accept", "")
    # What Prometheus sends: "application/openmetrics-text;...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1".
    return "version=0.0.4" in accept.replace(" ", "") and "application/json" not in accept


async def get_metrics(request: web.Request) -> web.Response:
    prometheus_wanted = _wants_prometheus(request)  # a bad format is refused before anything is read
    snapshot = await request.app[METRICS]().snapshot()
    if prometheus_wanted:
        from .metrics import prometheus  # loaded by the METRICS factory already

        response = web.Response(body=prometheus(snapshot).encode())
        response.headers["Content-Type"] = PROMETHEUS_TYPE
        return response
    return json_response(snapshot)


OPERATIONS = (
    Operation(
        "GET",
        "/metrics",
        get_metrics,
        "system",
        "CPU, memory, disk and load of the sandbox and its managed processes",
        {
            200: Media(
                {
                    "application/json": MetricsResponse,
                    "text/plain": {
                        "type": "string",
                        "description": "With `format=prometheus`: the text exposition format 0.0.4 "
                        f"(`Content-Type: {PROMETHEUS_TYPE}`), series `sandbox_*`.",
                    },
                },
                "The figures as the sandbox's own limits (its cgroup) see them.",
            ),
            400: Failure("A `format` other than `json` or `prometheus`."),
        },
        description="Reads a few files of `/proc` and `/sys` on each call; CPU percents are since the previous "
        "call (null on the first).",
        query=MetricsQuery,
    ),
)


def add_routes(app: web.Application) -> None:
    operations.register(app, OPERATIONS)
