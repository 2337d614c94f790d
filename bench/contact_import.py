"""How fast POST /v1/admin/contacts/import takes customers, end to end.

On a freshly migrated database (optionally holding --base contacts with values already, so
that the per-batch count of the customer base by shares has something to count), the real
web process (`python -m contactcenter serve`, as production runs it) is sent a CSV of --rows
customers over real HTTP, streamed in 64 KiB pieces without a Content-Length: e-mail, a phone
number without its country code (?region=CN), name, value, tags, a field. Three imports:

- "create": every row a new customer;
- "reimport": the same file again (every row unchanged, nothing written);
- "update": the same file with the value of one row in ten changed (those rows updated, their
  tiers recomputed through services.tiers.set_values).

Each reports rows per second (rows / wall time of the request, from the first byte sent to
the answer) and the answer's counts; the tier method is the default (shares).

Run it from the repository root:

    python -m bench.contact_import [--rows 100000] [--base 0] [--seed 1]

BENCH_DATABASE_URL (an admin URL: the run creates and drops a database of its own there) and
BENCH_REDIS_URL name servers to use; without them embedded PostgreSQL and Redis are started in
a temporary folder and stopped at the end. One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.ingest import machine, server_arguments, servers, web_process
from contactcenter import db
from contactcenter.domain.enums import Role
from contactcenter.scratch import scratch_database
from contactcenter.services.agents import create_agent

logger = logging.getLogger("bench.contact_import")

CHUNK_BYTES = 64 * 1024
HEADER = "email,phone,name,value,tags,field:plan\n"
PLANS = ("basic", "pro", "enterprise")
# the request may take minutes on a big file
REQUEST_TIMEOUT_SECONDS = 3600
BASE_CONTACTS = """
INSERT INTO contacts (value)
SELECT round((exp(random() * 10))::numeric, 2) FROM generate_series(1, $1)
"""


def lines(rows: int, seed: int, *, changed_every: int = 0) -> Iterator[str]:
    """The CSV, a line at a time (the same rows for the same seed)."""
    rng = random.Random(seed)
    yield HEADER
    for i in range(rows):
        value = round(rng.lognormvariate(6.5, 2.0), 2) if rng.random() > 0.3 else 0
        if changed_every and i % changed_every == 0:
            value = round(value * 2 + 1, 2)
        tags = "vip;wholesale" if i % 50 == 0 else ""
        yield (
            f"customer{i}@bench.example,138{i:08d},Customer {i},{value},{tags},"
            f"{PLANS[i % len(PLANS)]}\n"
        )


async def streamed(source: Iterator[str]) -> AsyncIterator[bytes]:
    """The body in pieces of about CHUNK_BYTES, made as they are sent."""
    piece: list[str] = []
    size = 0
    for line in source:
        piece.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(piece).encode()
            piece, size = [], 0
    if piece:
        yield "".join(piece).encode()


async def one_import(
    session: aiohttp.ClientSession, base_url: str, token: str, source: Iterator[str], rows: int
) -> dict[str, Any]:
    started = time.perf_counter()
    async with session.post(
        f"{base_url}/v1/admin/contacts/import?region=CN",
        data=streamed(source),
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {token}"},
    ) as response:
        answer = await response.json()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {str(answer)[:500]}")
    elapsed = time.perf_counter() - started
    return {
        "seconds": round(elapsed, 2),
        "rows_per_second": round(rows / elapsed, 1),
        **{k: answer[k] for k in ("rows", "created", "updated", "unchanged", "error_count")},
    }


async def prepare(database_url: str, base: int) -> str:
    """The base contacts, and an admin; returns the admin's token."""
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        if base:
            logger.info("loading %d base contacts", base)
            await pool.execute(BASE_CONTACTS, base)
            await pool.execute("VACUUM ANALYZE contacts")
        admin = await create_agent(
            pool, name="Bench admin", email="admin@bench.example", role=Role.ADMIN
        )
    finally:
        await pool.close()
    return admin.token


async def measure(
    args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with scratch_database(admin_url, prefix="bench") as database_url:
        token = await prepare(database_url, args.base)
        async with (
            web_process(database_url, redis_url, workdir / "web.log") as base_url,
            aiohttp.ClientSession(timeout=timeout) as session,
        ):
            runs = {
                "create": lines(args.rows, args.seed),
                "reimport": lines(args.rows, args.seed),
                "update": lines(args.rows, args.seed, changed_every=10),
            }
            for name, source in runs.items():
                logger.info("%s: %d rows", name, args.rows)
                results[name] = await one_import(session, base_url, token, source, args.rows)
                logger.info("%s: %s", name, results[name])
        conn = await asyncpg.connect(database_url)
        try:
            results["contacts_after"] = await conn.fetchval("SELECT count(*) FROM contacts")
            results["tier_changes_after"] = await conn.fetchval("SELECT count(*) FROM tier_changes")
        finally:
            await conn.close()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.contact_import", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows (default 100,000)")
    parser.add_argument(
        "--base", type=int, default=0, help="contacts with a value already there (default 0)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    server_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    given = [bool(args.database_url), bool(args.redis_url)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-import-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(measure(args, admin_url, redis_url, Path(tmp)))
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        "rows": args.rows,
        "base_contacts": args.base,
        **results,
        "settings": {
            "seed": args.seed,
            "servers": "given" if all(given) else "embedded" if not any(given) else "mixed",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
