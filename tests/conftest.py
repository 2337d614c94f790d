"""Real PostgreSQL and Redis for every test.

TEST_DATABASE_URL / TEST_REDIS_URL name servers to use (CI sets them to the machine's);
without them the session starts the embedded ones, as `contactcenter up` does. Either way the
suite works in a throwaway database of its own, migrated once, emptied before each test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from arq.worker import Worker

from contactcenter import db as db_module
from contactcenter.api.app import create_app
from contactcenter.api.middleware import AccessLogger
from contactcenter.conns import Conns, create_redis
from contactcenter.domain.enums import Role
from contactcenter.embedded import EmbeddedPostgres, EmbeddedRedis
from contactcenter.scratch import scratch_database
from contactcenter.settings import Settings
from tests.helpers import bearer, make_agent, make_worker, stop_worker
from tests.mailservers import imap_server, smtp_server  # noqa: F401  (fixtures)
from tests.openapi_check import OpenApiChecker
from tests.twilio_fake import twilio_client, twilio_fake  # noqa: F401  (fixtures)

TABLES = (
    "attachments, messages, conversations, contact_identities, contacts, team_members, agents,"
    " teams, email_quarantine, imap_state, mailboxes, sms_consent_events, sms_consent,"
    " sms_numbers, tier_changes, routing_rules, business_hours, sla_policies"
)
# tiers name sla_policies, so the TRUNCATE above (CASCADE) empties them: the seed goes back in
RESET_TIERS = """
UPDATE tiers SET label = '~reset ' || rank;
INSERT INTO tiers (rank, label, min_value, share_percent)
VALUES (1, 'platinum', 100000, 1), (2, 'gold', 20000, 4), (3, 'silver', 2000, 15),
       (4, 'bronze', NULL, NULL)
ON CONFLICT (rank) DO UPDATE SET label = excluded.label, min_value = excluded.min_value,
    share_percent = excluded.share_percent, sla_policy_id = NULL;
UPDATE tier_settings SET method = 'shares', recomputed_at = NULL;
"""
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL): the named servers, or embedded ones."""
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    pg_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    base = tmp_path_factory.mktemp("servers")
    if not pg_url:
        postgres = EmbeddedPostgres(Path(base) / "postgres")
        pg_url = postgres.start("postgres")
    if not redis_url:
        redis = EmbeddedRedis(Path(base) / "redis", persistent=False)
        redis_url = redis.start()
    try:
        yield pg_url, redis_url
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()


@pytest.fixture(scope="session")
async def database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    async with scratch_database(server_urls[0], prefix="cc_test") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, server_urls: tuple[str, str]) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=server_urls[1],
        secret_key=TEST_SECRET,
        db_pool_min=1,
        db_pool_max=10,
        reconcile_after_seconds=3.0,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await db_module.create_pool(settings.database, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    client = await create_redis(settings.redis)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def clean_state(db: asyncpg.Pool, redis: ArqRedis) -> None:
    """Each test starts from a freshly migrated database (the default team only) and an
    empty Redis."""
    async with db.acquire() as conn:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        # the seed of migrations/0001_spine.sql
        await conn.execute("INSERT INTO teams (name, is_default) VALUES ('General', true)")
        # the seeds of migrations/0004_routing.sql that tests may change
        await conn.execute(RESET_TIERS)
    await redis.flushdb()


@pytest.fixture
def conns(db: asyncpg.Pool, redis: ArqRedis, settings: Settings) -> Conns:
    return Conns(db=db, redis=redis, settings=settings)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    """The real web app on a real socket. Every request it serves is checked against the
    app's OpenAPI document (tests/openapi_check.py); what does not fit fails the test."""
    app = create_app(settings)
    checker = OpenApiChecker()
    app.middlewares.insert(0, checker.middleware)
    yield await aiohttp_client(app, server_kwargs={"access_log_class": AccessLogger})
    assert not checker.problems, "responses that do not fit /v1/openapi.json:\n" + "\n".join(
        checker.problems
    )


@pytest.fixture
async def supervisor(db: asyncpg.Pool) -> dict[str, str]:
    """The Authorization header of a supervisor (offline: takes no work)."""
    _, token = await make_agent(db, name="Supervisor", role=Role.SUPERVISOR, online=False)
    return bearer(token)


@pytest.fixture
async def admin(db: asyncpg.Pool) -> dict[str, str]:
    """The Authorization header of an admin."""
    _, token = await make_agent(db, name="Admin", role=Role.ADMIN, online=False)
    return bearer(token)


@pytest.fixture
def run_jobs(settings: Settings) -> Callable[..., Awaitable[int]]:
    """Run a real arq worker in burst mode until the queue is empty; returns jobs completed."""

    async def run(*, cron: bool = False) -> int:
        worker = make_worker(settings, cron=cron, burst=True)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker.jobs_complete

    return run


@pytest.fixture
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """A real arq worker running beside the test, as in production."""
    worker = make_worker(settings)
    task = asyncio.create_task(worker.async_run())
    yield worker
    await stop_worker(worker, task)
