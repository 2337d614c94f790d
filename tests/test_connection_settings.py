"""Settings that tune the processes' connections: the pool's prepared-statement cache (on by
default, off with DB_STATEMENT_CACHE_SIZE=0, what PgBouncer in transaction mode needs: a
statement prepared on one server connection is not there on the next transaction's), and how
often a worker looks at the queue."""

from __future__ import annotations

import pytest

from contactcenter import db
from contactcenter.settings import Settings

PREPARED = "SELECT count(*) FROM pg_prepared_statements"


@pytest.mark.parametrize(("size", "prepared"), [(100, True), (0, False)])
async def test_the_statement_cache_is_what_the_setting_says(
    settings: Settings, size: int, prepared: bool
) -> None:
    configured = Settings.from_env({"DB_STATEMENT_CACHE_SIZE": str(size)})
    assert configured.db_statement_cache_size == size
    pool = await db.create_pool(
        settings.database, min_size=1, max_size=1, statement_cache_size=size
    )
    try:
        async with pool.acquire() as conn:
            for _ in range(2):
                assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
            assert (await conn.fetchval(PREPARED) > 0) is prepared
    finally:
        await pool.close()


def test_the_default_keeps_asyncpgs_cache() -> None:
    assert Settings.from_env({}).db_statement_cache_size == 100


def test_workers_look_at_the_queue_as_often_as_the_setting_says() -> None:
    from workers.settings import worker_options

    secret = {
        "DATABASE_URL": "postgresql://x@h/db",
        "REDIS_URL": "redis://h",
        "SECRET_KEY": "k" * 40,
    }
    assert worker_options(Settings.from_env(secret))["poll_delay"] == 0.01
    slower = Settings.from_env({**secret, "WORKER_POLL_SECONDS": "0.05"})
    assert worker_options(slower)["poll_delay"] == 0.05
