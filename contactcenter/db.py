"""The PostgreSQL pool and its codecs."""

from __future__ import annotations

import json

import asyncpg
from asyncpg.connection import Connection
from asyncpg.pool import Pool

__all__ = ["Connection", "Executor", "Pool", "create_pool", "database_away"]

# what a read runs on: a connection (inside a transaction) or the pool (on its own)
Executor = Connection | Pool


# PostgreSQL away or restarting, not a bug: a connection refused, ended under a statement
# ("terminating connection"), closed or released under a transaction, or a protocol left in a
# state it cannot leave (MagicStack/asyncpg#784). The pool replaces the connection; the caller
# should come back. Bad input to a query is an InterfaceError too (DataError): that one is ours.
_AWAY: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def database_away(error: BaseException) -> bool:
    return isinstance(error, _AWAY) and not isinstance(error, asyncpg.DataError)


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
