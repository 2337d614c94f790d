"""Helpers for tests: waiting on conditions, workers, and factories with sensible defaults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from arq.worker import Worker

from contactcenter.clock import utc_now
from contactcenter.domain.enums import Presence, Role
from contactcenter.services.agents import create_agent
from contactcenter.settings import Settings
from contactcenter.store import agents as agents_store
from workers.settings import create_worker


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float = 10.0, interval: float = 0.02
) -> Any:
    """Wait until `check()` returns something truthy; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(interval)


def make_worker(settings: Settings, *, cron: bool = False, **overrides: Any) -> Worker:
    """A real arq worker on the test settings; cron jobs (the reconciler) only when asked."""
    options: dict[str, Any] = {"handle_signals": False, "poll_delay": 0.01}
    if not cron:
        options["cron_jobs"] = []
    options.update(overrides)
    return create_worker(settings, **options)


async def make_agent(
    db: asyncpg.Pool,
    *,
    name: str = "Agent",
    email: str | None = None,
    role: Role = Role.AGENT,
    team: str | None = None,
    capacity: int = 3,
    online: bool = True,
) -> tuple[int, str]:
    """An agent in `team` (default: the default team); returns (id, token)."""
    created = await create_agent(
        db,
        name=name,
        email=email or f"{uuid.uuid4().hex[:10]}@agents.example",
        role=role,
        team_name=team,
        capacity=capacity,
    )
    if online:
        async with db.acquire() as conn:
            await agents_store.set_presence(conn, created.id, Presence.ONLINE, utc_now())
    return created.id, created.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_client_id() -> str:
    return uuid.uuid4().hex


async def start_chat(
    client: TestClient[Any, Any], text: str = "Hello, I need help", **fields: Any
) -> dict[str, Any]:
    """A visitor opens a web conversation; returns the 201 body."""
    body = {"text": text, "client_message_id": new_client_id(), **fields}
    response = await client.post("/v1/web/conversations", json=body)
    assert response.status == 201, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def stop_worker(worker: Worker, task: asyncio.Task[None]) -> None:
    """Stop a worker as a deployment does: no new jobs, running ones finish, then close."""
    # the polling loop ends by itself after its current round, waiting for the running jobs
    # (cancelling it could cut a Redis pipeline in half)
    worker.allow_pick_jobs = False
    worker.burst = True
    worker.max_burst_jobs = 0
    try:
        await asyncio.wait_for(asyncio.shield(task), 15)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await worker.close()


async def call(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
) -> tuple[int, Any]:
    """One JSON request; (status, decoded body or None)."""
    response = await client.request(method, path, json=body, headers=headers)
    text = await response.text()
    return response.status, (json.loads(text) if text else None)


def error_code(body: Any) -> str:
    return str(body["error"]["code"])


async def table_digests(
    db: asyncpg.Pool, tables: tuple[str, ...] | None = None
) -> dict[str, tuple[int, str]]:
    """Each table's row count and a checksum of its rows (every table when none are named):
    equal before and after a request means it wrote nothing."""
    if tables is None:
        tables = tuple(
            r["table_name"]
            for r in await db.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
        )
    digests = {}
    for table in tables:
        row = await db.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            f' AS digest FROM "{table}" AS t'
        )
        assert row is not None
        digests[table] = (row["n"], row["digest"])
    return digests
