"""Chaos for the stores, the short form of bench/chaos_store.py: PostgreSQL restarted twice
(a fast shutdown, then a crash) under a stream of web chats, and the mail listener killed with
SIGKILL twice in the middle of a batch of mails from a real pymap. Nothing acknowledged is
lost or stored twice, every answer meanwhile is a 2xx or a 503 with Retry-After, and the
reports show the faults really happened.

Then the regressions those runs found: a connection that PostgreSQL terminates under a
request (as a restart does) answered 500 instead of 503, and the same asyncpg state error in
mail intake would have put a good mail in quarantine instead of trying it again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from channels.email import intake
from contactcenter.api.middleware import error_envelope, request_context
from contactcenter.conns import Conns
from contactcenter.settings import Settings
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[1]
# a run takes 10-40 s; one still going after this is interrupted (and given STOP_SECONDS to
# stop what it started), within the suite's 120 s per test
RUN_TIMEOUT_SECONDS = 80.0
STOP_SECONDS = 20.0
MESSAGES = 40
MAILS = 50

Client = TestClient[Any, Any]


async def run_bench(tmp_path: Path, *argv: str) -> dict[str, Any]:
    """`python -m bench.chaos_store ...` as CI runs it; its one report. A run that does not end
    in time is interrupted (it stops every server and process it started on the way out)."""
    log_path = tmp_path / "chaos_store.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.chaos_store", *argv),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
    log = log_path.read_text(errors="replace")
    assert process.returncode == 0, log[-4000:]
    [line] = stdout.decode().splitlines()
    report: dict[str, Any] = json.loads(line)
    return report


async def test_postgres_restarts_answer_503_then_recover_and_lose_nothing(tmp_path: Path) -> None:
    report = await run_bench(
        tmp_path,
        *("--scenario", "postgres_restart", "--messages", str(MESSAGES), "--rate", "10"),
        *("--restarts", "2", "--down-seconds", "1"),
    )
    counts = {key: report[key] for key in ("sent", "acknowledged", "stored", "routed")}
    assert counts == dict.fromkeys(counts, MESSAGES), report
    assert report["lost"] == 0 and report["duplicated"] == 0, report
    # meanwhile only 2xx and 503 with a Retry-After, every answer within the client's timeout
    assert report["errors_5xx_other"] == 0, report["first_error"]
    assert report["refused_503_without_retry_after"] == 0, report["first_error"]
    assert report["timeouts"] == 0 and report["errors_other"] == 0, report["first_error"]
    # the faults happened: PostgreSQL went down twice, the API said so, then served again
    assert report["refused_503"] > 0, report
    fast, crash = report["fault"]["restarts"]
    assert fast["mode"].startswith("fast") and crash["mode"].startswith("crash"), report
    assert crash["crash_recovery"] and not fast["crash_recovery"], report
    for restart in (fast, crash):
        assert restart["first_503_ms"] is not None, restart
        assert restart["recovered_ms"] is not None, restart


async def test_a_listener_killed_mid_batch_misses_and_repeats_nothing(tmp_path: Path) -> None:
    report = await run_bench(
        tmp_path,
        *("--scenario", "listener_kill", "--messages", str(MAILS), "--kills", "2"),
        *("--lease", "expire"),
    )
    counts = {key: report[key] for key in ("sent", "acknowledged", "stored", "routed")}
    assert counts == dict.fromkeys(counts, MAILS), report
    assert report["lost"] == 0 and report["duplicated"] == 0, report
    assert report["quarantined"] == 0 and report["taken_twice"] == 0, report
    assert report["checkpoint_uid"] == report["last_appended_uid"], report
    # the faults happened: killed twice, each time part-way through a batch it had fetched,
    # with mail arriving while it was down, and a new listener took over
    kills = report["fault"]["kills"]
    assert len(kills) == 2, report
    for kill in kills:
        first, last = kill["batch"]
        assert kill["exit_status"] == -signal.SIGKILL, kill
        assert 0 < kill["taken_of_batch"] < last - first + 1, kill
        assert kill["appended_while_down"] > 0 and kill["resumed_ms"] is not None, kill


# --- regressions -----------------------------------------------------------------------------

Handler = Callable[[asyncpg.Pool, asyncpg.Connection], Awaitable[None]]


@pytest.fixture
async def killer(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection that terminates others' backends, as PostgreSQL's shutdown does."""
    conn = await asyncpg.connect(settings.database)
    yield conn
    await conn.close()


async def answer_to(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    killer: asyncpg.Connection,
    handler: Handler,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, body) of a request whose handler runs `handler` on a pool of its
    own, behind the product's middlewares."""
    pool = await asyncpg.create_pool(settings.database, min_size=1, max_size=2)
    assert pool is not None

    async def endpoint(request: web.Request) -> web.Response:
        await handler(pool, killer)
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[request_context, error_envelope])
    app.router.add_post("/work", endpoint)
    try:
        client = await aiohttp_client(app)
        response = await client.post("/work")
        return response.status, dict(response.headers), await response.json()
    finally:
        await pool.close()


async def terminated_mid_statement(pool: asyncpg.Pool, killer: asyncpg.Connection) -> None:
    async with pool.acquire() as conn, conn.transaction():
        pid = conn.get_server_pid()
        running = asyncio.create_task(conn.fetchval("SELECT pg_sleep(5)"))

        async def sleeping() -> bool:  # the statement runs on the server; then end its backend
            return bool(
                await killer.fetchval(
                    "SELECT state = 'active' FROM pg_stat_activity"
                    " WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%'",
                    pid,
                )
            )

        await eventually(sleeping, within=5)
        await killer.execute("SELECT pg_terminate_backend($1)", pid)
        await running


async def terminated_between_statements(pool: asyncpg.Pool, killer: asyncpg.Connection) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
        await killer.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())

        async def closed() -> bool:
            try:
                return conn.is_closed()
            except asyncpg.InterfaceError:  # the pool takes it back once it is seen closed
                return True

        await eventually(closed, within=5)
        await conn.fetchval("SELECT 2")


async def protocol_state_lost(pool: asyncpg.Pool, killer: asyncpg.Connection) -> None:
    # what asyncpg raised in the bench when a pooled connection had been dropped in the
    # middle of a statement (MagicStack/asyncpg#784); no way to provoke it on purpose
    raise asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )


@pytest.mark.parametrize(
    "handler",
    [terminated_mid_statement, terminated_between_statements, protocol_state_lost],
    ids=lambda handler: handler.__name__,
)
async def test_a_connection_lost_to_a_restart_answers_503_not_500(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    killer: asyncpg.Connection,
    handler: Handler,
) -> None:
    status, headers, body = await answer_to(aiohttp_client, settings, killer, handler)
    assert status == 503, body
    assert body["error"]["code"] == "service_unavailable"
    assert headers["Retry-After"].isdigit()


async def test_bad_query_input_is_still_a_500(
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    killer: asyncpg.Connection,
) -> None:
    """asyncpg's DataError is an InterfaceError too, but a bug of ours, not an outage."""

    async def bad_argument(pool: asyncpg.Pool, killer: asyncpg.Connection) -> None:
        await pool.fetchval("SELECT $1::int", "not a number")

    status, headers, body = await answer_to(aiohttp_client, settings, killer, bad_argument)
    assert status == 500, body
    assert body["error"]["code"] == "internal_error"
    assert "Retry-After" not in headers


async def test_mail_intake_tries_again_after_a_lost_protocol_state(
    conns: Conns, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail whose ingest met asyncpg's state error (a connection dropped under it) is
    tried again later, never put aside in quarantine as if it were unreadable."""

    async def lost_state(*args: Any, **kwargs: Any) -> None:
        await protocol_state_lost(db, None)  # type: ignore[arg-type]

    monkeypatch.setattr(intake, "ingest", lost_state)
    raw = (
        b"From: Customer <customer@example.org>\r\nTo: support@example.com\r\n"
        b"Subject: Where is my parcel\r\nMessage-ID: <parcel-1@example.org>\r\n\r\nHello\r\n"
    )
    with pytest.raises(asyncpg.InternalClientError):
        await intake.take(conns, None, raw)
    assert await db.fetchval("SELECT count(*) FROM email_quarantine") == 0
