"""Operations: liveness, readiness and metrics.

GET /metrics answers the Prometheus text format (contactcenter/metrics.py says what and how);
it needs a supervisor's or admin's token (Prometheus: `authorization: {credentials_file: ...}`).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web

from contactcenter import metrics
from contactcenter.api.auth import require_agent
from contactcenter.api.errors import error_response
from contactcenter.api.keys import CONNS
from contactcenter.api.openapi import Error, Media, View, documented
from contactcenter.domain.enums import Role

READY_TIMEOUT_SECONDS = 2.0
METRICS_READERS = (Role.SUPERVISOR, Role.ADMIN)


class Health(View):
    status: Literal["ok"]


class Ready(View):
    status: Literal["ready"]
    checks: dict[str, str]


@documented("Is the process alive", access="public", responses={200: Health}, tag="operations")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@documented(
    "Are PostgreSQL and Redis reachable",
    access="public",
    responses={
        200: Ready,
        503: Media("application/json", Error, "not_ready: details.checks names what failed"),
    },
    tag="operations",
)
async def readyz(request: web.Request) -> web.Response:
    conns = request.app[CONNS]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await conns.db.fetchval("SELECT 1")
        checks["postgresql"] = "ok"
    except Exception as exc:  # any failure means not ready; the kind is reported
        checks["postgresql"] = type(exc).__name__
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await conns.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = type(exc).__name__
    if all(value == "ok" for value in checks.values()):
        return web.json_response({"status": "ready", "checks": checks})
    return error_response(
        503,
        "not_ready",
        "a dependency is unreachable",
        {"checks": checks},
        headers={"Retry-After": "5"},
    )


@documented(
    "Metrics in the Prometheus text format",
    access="readers",
    responses={200: Media(metrics.CONTENT_TYPE.split(";")[0], {"type": "string"})},
    tag="operations",
)
async def prometheus_metrics(request: web.Request) -> web.Response:
    await require_agent(request, roles=METRICS_READERS)
    body = await metrics.render(request.app[CONNS])
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus_metrics)
