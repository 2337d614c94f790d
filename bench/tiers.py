"""How fast customer tiers are recomputed, against the floor beneath it.

On a freshly migrated database, N contacts (default 1,000,000) are loaded with COPY, with a
skewed value distribution like a real customer base: 30 % without a value (0), the rest
log-normal (median about 650, a long tail into the millions), and 1 in 1,000 pinned by hand.
Then, for each method (shares, thresholds):

- "floor": a bare single UPDATE by asyncpg that computes the same tiers without history,
  reports or locks, run twice: "first" from every contact in the bottom tier (the worst case:
  a first run, or a new rule), "second" with nothing left to change (a usual night);
- "service": contactcenter.services.tiers.recompute() (advisory lock, one statement that also
  writes a tier_changes row per change, counts), first and second in the same way;
- by shares also "floor_window": the same UPDATE computing every customer's position with
  rank() OVER (ORDER BY value DESC), the textbook way, to show what the service avoids.

Before each "first" run the tiers are reset and the table vacuumed, so each starts alike;
each pair of runs is repeated (--repeat) and the fastest time kept, all times shown. At
the end, setting values by shares (services.tiers.set_values, which finds the bounds in the
current ranking once a call) is timed for one contact a call (PATCH) and 1,000 (an import).

Run it from the repository root:

    python -m bench.tiers [--contacts 1000000] [--seed 1] [--repeat 3]

BENCH_DATABASE_URL (an admin URL: the run creates and drops a database of its own there)
names a PostgreSQL server to use; without it an embedded one is started in a temporary folder
and stopped at the end. One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from bench.ingest import machine, percentile
from contactcenter import db
from contactcenter.clock import utc_now
from contactcenter.conns import Conns
from contactcenter.domain.enums import TierMethod
from contactcenter.embedded import EmbeddedPostgres
from contactcenter.scratch import scratch_database
from contactcenter.services import tiers
from contactcenter.settings import Settings
from contactcenter.store import tiers as tiers_store

logger = logging.getLogger("bench.tiers")

NO_VALUE_SHARE = 0.30
PINNED_EVERY = 1000
SET_VALUE_SAMPLES = 50
STATEMENT_TIMEOUT = 1800.0

RESET = """
UPDATE contacts SET computed_tier = 4, tier = coalesce(pinned_tier, 4)
WHERE computed_tier <> 4 OR tier <> coalesce(pinned_tier, 4)
"""

# the floor: the same tiers, by the cheapest statement we know, and nothing else
FLOOR_BOUNDS = {
    TierMethod.THRESHOLDS: "SELECT $1::numeric AS b1, $2::numeric AS b2, $3::numeric AS b3",
    TierMethod.SHARES: """
SELECT (SELECT value FROM contacts WHERE value > 0 AND p1 > 0
        ORDER BY value DESC OFFSET greatest(p1 - 1, 0) LIMIT 1) AS b1,
       (SELECT value FROM contacts WHERE value > 0 AND p2 > 0
        ORDER BY value DESC OFFSET greatest(p2 - 1, 0) LIMIT 1) AS b2,
       (SELECT value FROM contacts WHERE value > 0 AND p3 > 0
        ORDER BY value DESC OFFSET greatest(p3 - 1, 0) LIMIT 1) AS b3
FROM (SELECT floor($1::numeric * n / 100)::bigint AS p1, floor($2::numeric * n / 100)::bigint AS p2,
             floor($3::numeric * n / 100)::bigint AS p3
      FROM (SELECT count(*) AS n FROM contacts WHERE value > 0) customers) ends
""",
}
FLOOR_UPDATE = """
WITH bounds AS MATERIALIZED ({bounds})
UPDATE contacts c
SET computed_tier = (CASE WHEN c.value <= 0 THEN 4 WHEN c.value >= b.b1 THEN 1
                          WHEN c.value >= b.b2 THEN 2 WHEN c.value >= b.b3 THEN 3 ELSE 4 END),
    tier = coalesce(c.pinned_tier, CASE WHEN c.value <= 0 THEN 4 WHEN c.value >= b.b1 THEN 1
                                        WHEN c.value >= b.b2 THEN 2 WHEN c.value >= b.b3 THEN 3
                                        ELSE 4 END)
FROM bounds b
WHERE c.computed_tier <> (CASE WHEN c.value <= 0 THEN 4 WHEN c.value >= b.b1 THEN 1
                               WHEN c.value >= b.b2 THEN 2 WHEN c.value >= b.b3 THEN 3 ELSE 4 END)
"""
# every customer's position by a window function
FLOOR_WINDOW = """
WITH customers AS (SELECT count(*) AS n FROM contacts WHERE value > 0),
ranked AS (
    SELECT id, rank() OVER (ORDER BY value DESC) AS position FROM contacts WHERE value > 0
),
computed AS (
    SELECT r.id, (CASE WHEN r.position * 100 <= $1 * n THEN 1
                       WHEN r.position * 100 <= $2 * n THEN 2
                       WHEN r.position * 100 <= $3 * n THEN 3 ELSE 4 END)::smallint AS tier
    FROM ranked r, customers
)
UPDATE contacts c SET computed_tier = n.tier, tier = coalesce(c.pinned_tier, n.tier)
FROM computed n
WHERE c.id = n.id AND c.computed_tier <> n.tier
"""
DISTRIBUTION = "SELECT computed_tier, count(*) FROM contacts GROUP BY 1 ORDER BY 1"


def values(count: int, seed: int) -> Iterator[tuple[Decimal]]:
    """A customer base's values: many without, most small, a few very large."""
    rng = random.Random(seed)
    for _ in range(count):
        if rng.random() < NO_VALUE_SHARE:
            yield (Decimal(0),)
        else:
            amount = min(rng.lognormvariate(math.log(650), 2.0), 9e13)
            yield (Decimal(round(amount * 100)) / 100,)


async def load(url: str, count: int, seed: int) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table("contacts", records=values(count, seed), columns=["value"])
        await conn.execute(
            "UPDATE contacts SET pinned_tier = 1, tier = 1 WHERE id % $1 = 0", PINNED_EVERY
        )
        await conn.execute("VACUUM ANALYZE contacts")
        logger.info("loaded %d contacts in %.1fs", count, time.perf_counter() - started)
        row = await conn.fetchrow(
            "SELECT count(*) AS contacts, count(*) FILTER (WHERE value > 0) AS customers,"
            " count(pinned_tier) AS pinned FROM contacts"
        )
        assert row is not None
        return dict(row)
    finally:
        await conn.close()


async def reset(conn: asyncpg.Connection, method: TierMethod) -> None:
    await conn.execute("UPDATE tier_settings SET method = $1, recomputed_at = NULL", str(method))
    await conn.execute(RESET, timeout=STATEMENT_TIMEOUT)
    await conn.execute("TRUNCATE tier_changes")
    await conn.execute("VACUUM ANALYZE contacts", timeout=STATEMENT_TIMEOUT)


async def timed(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[float, str]:
    started = time.perf_counter()
    status = await conn.execute(sql, *args, timeout=STATEMENT_TIMEOUT)
    return round(time.perf_counter() - started, 3), status


async def distribution(conn: asyncpg.Connection) -> dict[str, int]:
    return {str(r[0]): r[1] for r in await conn.fetch(DISTRIBUTION)}


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The last run's counts with each time the fastest of the repeats (the machine's other
    load only ever adds time)."""
    result = dict(runs[-1])
    for key in ("first_s", "second_s"):
        result[key] = min(run[key] for run in runs)
        result[key.replace("_s", "_all_s")] = [run[key] for run in runs]
    return result


async def measure_floor(
    conn: asyncpg.Connection, method: TierMethod, bounds: tuple[Any, ...], sql: str, repeat: int
) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        await reset(conn, method)
        first, status = await timed(conn, sql, *bounds)
        second, again = await timed(conn, sql, *bounds)
        logger.info("floor %s: %.2fs (%s), %.2fs (%s)", method, first, status, second, again)
        runs.append(
            {
                "first_s": first,
                "first_updated": int(status.split()[-1]),
                "second_s": second,
                "second_updated": int(again.split()[-1]),
            }
        )
    return {**best(runs), "tiers": await distribution(conn)}


async def measure_service(
    conn: asyncpg.Connection, conns: Conns, method: TierMethod, repeat: int
) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        await reset(conn, method)
        run: dict[str, Any] = {}
        for which in ("first", "second"):
            started = time.perf_counter()
            report = await tiers.recompute(conns)
            run[f"{which}_s"] = round(time.perf_counter() - started, 3)
            run[f"{which}_changed"] = report.changed
            run[f"{which}_recomputed"] = report.recomputed
            logger.info(
                "service %s %s: %.2fs, %d changed", method, which, run[f"{which}_s"], report.changed
            )
        run["examined"] = report.examined
        runs.append(run)
    result = best(runs)
    result["history_rows"] = await conn.fetchval("SELECT count(*) FROM tier_changes")
    result["tiers"] = await distribution(conn)
    return result


async def measure_set_value(conns: Conns, count: int, seed: int) -> dict[str, Any]:
    """Values set by shares, as PATCH (one contact a call) and an import (a batch a call) set
    them: each call counts the customers and finds the bounds in the current ranking."""
    rng = random.Random(seed + 1)
    config = await tiers_store.load_config(conns.db)

    def new_value() -> Decimal:
        return Decimal(round(rng.lognormvariate(math.log(650), 2.0) * 100)) / 100

    async def one_call(batch: int) -> float:
        values = {rng.randint(1, count): new_value() for _ in range(batch)}
        started = time.perf_counter()
        async with conns.db.acquire() as conn, conn.transaction():
            await tiers.set_values(conn, values, utc_now(), config)
        return time.perf_counter() - started

    async def calls(batch: int, samples: int) -> dict[str, Any]:
        ordered = sorted([await one_call(batch) for _ in range(samples)])
        return {
            "contacts_per_call": batch,
            "calls": samples,
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
        }

    result = {"one": await calls(1, SET_VALUE_SAMPLES), "batch": await calls(1000, 5)}
    # the index-only scans that count the customers need a fresh visibility map
    async with conns.db.acquire() as conn:
        await conn.execute("VACUUM contacts", timeout=STATEMENT_TIMEOUT)
    result["one_after_vacuum"] = await calls(1, SET_VALUE_SAMPLES)
    return result


async def measure(args: argparse.Namespace, admin_url: str) -> dict[str, Any]:
    async with scratch_database(admin_url, prefix="bench") as url:
        base = await load(url, args.contacts, args.seed)
        pool = await db.create_pool(url, min_size=1, max_size=2)
        # the tier services touch no Redis
        conns = Conns(db=pool, redis=None, settings=Settings(), clock=utc_now)  # type: ignore[arg-type]
        conn = await asyncpg.connect(url)
        results: dict[str, Any] = {"data": base}
        try:
            for method in (TierMethod.SHARES, TierMethod.THRESHOLDS):
                await conn.execute("UPDATE tier_settings SET method = $1", str(method))
                bounds = (await tiers_store.load_config(conn)).bounds()
                sql = FLOOR_UPDATE.format(bounds=FLOOR_BOUNDS[method])
                floor = await measure_floor(conn, method, bounds, sql, args.repeat)
                entry: dict[str, Any] = {"floor": floor}
                if method == TierMethod.SHARES:
                    entry["floor_window"] = await measure_floor(
                        conn, method, bounds, FLOOR_WINDOW, args.repeat
                    )
                service = await measure_service(conn, conns, method, args.repeat)
                entry["service"] = service
                entry["same_tiers_as_floor"] = service["tiers"] == floor["tiers"]
                entry["ratio_first"] = round(service["first_s"] / floor["first_s"], 2)
                entry["ratio_second"] = round(service["second_s"] / floor["second_s"], 2)
                results[str(method)] = entry
            await conn.execute("UPDATE tier_settings SET method = 'shares'")
            results["set_value_by_shares"] = await measure_set_value(
                conns, args.contacts, args.seed
            )
        finally:
            await conn.close()
            await pool.close()
    return results


@contextlib.contextmanager
def postgres(workdir: Path, database_url: str | None) -> Iterator[str]:
    """The given PostgreSQL admin URL, or an embedded server's in `workdir`."""
    if database_url:
        yield database_url
        return
    server = EmbeddedPostgres(workdir / "postgres")
    logger.info("starting embedded PostgreSQL")
    try:
        yield server.start("postgres")
    finally:
        server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tiers", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--contacts", type=int, default=1_000_000, help="contacts to load (default 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the values")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement, the fastest kept (3)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL admin URL (default: BENCH_DATABASE_URL, else an embedded server)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-tiers-") as tmp,
        postgres(Path(tmp), args.database_url) as admin_url,
    ):
        results = asyncio.run(measure(args, admin_url))
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        "contacts": args.contacts,
        **results,
        "settings": {
            "seed": args.seed,
            "repeat": args.repeat,
            "server": "given" if args.database_url else "embedded",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
