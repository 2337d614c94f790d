"""The PostgreSQL pool and its codecs."""

from __future__ import annotations

import json

import asyncpg
from asyncpg.connection import Connection
from asyncpg.pool import Pool

__all__ = ["Connection", "Executor", "Pool", "create_pool"]

# what a read runs on: a connection (inside a transaction) or the pool (on its own)
Executor = Connection | Pool


async def _init_connection(conn: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, statement_cache_size: int = 100
) -> Pool:
    """`statement_cache_size=0` behind PgBouncer in transaction mode, where a prepared
    statement may live on another server connection than the next query's."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        statement_cache_size=statement_cache_size,
    )
    assert pool is not None
    return pool
