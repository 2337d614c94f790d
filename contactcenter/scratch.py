"""A throwaway database: created on a server, migrated, dropped at the end.

For the test suite and the benchmarks, which must never touch a database they did not make.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from contactcenter.embedded import postgres_url_with_database
from contactcenter.migrate import migrate


@contextlib.asynccontextmanager
async def scratch_database(
    admin_url: str, *, prefix: str, migrated: bool = True
) -> AsyncIterator[str]:
    """Yields the URL of a new database on the server of `admin_url` (which needs CREATEDB)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = postgres_url_with_database(admin_url, name)
            if migrated:
                await migrate(url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
