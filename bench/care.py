"""How fast the care crons schedule and enqueue a day's birthday greetings, against the floor.

Issue 7 asks: the cron jobs select in set-based SQL and enqueue in batches; a million contacts
(about 3,000 birthdays that day) scanned and enqueued in under a minute, and a second run the
same day enqueuing nothing.

One freshly migrated database holds `--contacts` contacts, written set-based (one INSERT ...
SELECT over generate_series): every one has a birthday, spread evenly over the days from
1950-01-01 to 2005-12-31 (so about contacts / 365.25 share a calendar day, and a quarter of
that 29 February); the time zones go round UTC, Asia/Shanghai, America/Los_Angeles,
Europe/Berlin, Asia/Tokyo, Pacific/Auckland and none (the settings' default, UTC); every second
contact has an e-mail identity and an e-mail consent. The tables are then vacuumed and
analysed, as autovacuum leaves a table that has been there a while.

The clock is fixed (`--at`, default 2025-02-28 09:30 UTC, a common year's 28 February, so the
29 February birthdays are kept that day too). At that instant the greeting hour (09:00 local)
has passed in every zone but Los Angeles (01:30 there): its greetings are scheduled, due at
17:00 UTC, and not dispatched. Auckland is at 22:30, so an hour later it is still the same day.

- "product": the cron's path as workers/jobs.care_tick runs it, from this process:
  services/care.schedule_birthdays (one INSERT ... SELECT in store/care.py) then
  services/care.dispatch (the due rows, one `care_send` arq job each, job id care:{id}).
  "first" at the clock, "second" at the same clock, "hour_later" an hour on: each with the
  rows scheduled, the jobs enqueued (as dispatch counts them) and arq's queue length after.
  No worker runs: the first run's jobs stay queued, so a second enqueue of an id is refused.
- "floor": bare asyncpg doing the same selection (today in each contact's zone, 29 February
  kept on a common year's 28 February) as one plain INSERT ... SELECT into a scratch table
  keyed on (contact, year) with ON CONFLICT DO NOTHING, then the due rows read and as many
  trivial jobs enqueued by bare arq `enqueue_job` into a queue of their own, one after another
  as dispatch does ("enqueue"), and by ENQUEUE_CONCURRENCY tasks ("enqueue_concurrent").
  The floor runs after the product, on the same (warm) tables; it checks no time zone name.
- "explain": EXPLAIN (ANALYZE, BUFFERS) of the product's statement as a first run (its rows
  deleted in a transaction rolled back after) and as a second run, and of the floor's.

    python -m bench.care [--contacts 1000000] [--at 2025-02-28T09:30:00+00:00]

Quick: `--contacts 50000`. BENCH_DATABASE_URL (an admin URL: the run makes and drops a
database of its own) and BENCH_REDIS_URL (a Redis database of the run's own: it is emptied at
the start and at the end) name servers to use; without them embedded ones are started and
stopped. One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from arq.connections import ArqRedis
from arq.constants import default_queue_name
from arq.constants import job_key_prefix as JOB_KEY_PREFIX

from bench.ingest import machine, server_arguments, servers
from contactcenter import db
from contactcenter.conns import Conns, create_redis
from contactcenter.scratch import scratch_database
from contactcenter.services import care
from contactcenter.settings import Settings
from contactcenter.store import care as care_store

logger = logging.getLogger("bench.care")

DEFAULT_AT = datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
LATER = timedelta(hours=1)
AIM_SECONDS = 60.0
# None: no zone of its own, the settings' default (UTC)
ZONES: tuple[str | None, ...] = (
    "UTC",
    "Asia/Shanghai",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Pacific/Auckland",
    None,
)
BORN_FROM = date(1950, 1, 1)
BORN_DAYS = (date(2006, 1, 1) - BORN_FROM).days
# a prime (Knuth's multiplicative hash): n * SPREAD mod BORN_DAYS visits every day once in
# BORN_DAYS contacts, and is independent of n mod 7 (the zone) and n mod 2 (the consent)
SPREAD = 2654435761
EMAIL_EVERY = 2
ENQUEUE_CONCURRENCY = 32
FLOOR_QUEUE = "bench:care:floor"
FLOOR_FUNCTION = "floor_care"
STATEMENT_TIMEOUT = 1800.0

INSERT_CONTACTS = """
INSERT INTO contacts (name, birthday, timezone)
SELECT 'care bench ' || n, $2::date + ((n * $3::bigint) % $4)::int,
       ($5::text[])[(n % cardinality($5::text[])) + 1]
FROM generate_series(1, $1::bigint) AS n
"""
INSERT_IDENTITIES = """
INSERT INTO contact_identities (contact_id, kind, value)
SELECT id, 'email', 'care' || id || '@example.com' FROM contacts WHERE id % $1 = 0
"""
INSERT_CONSENTS = """
INSERT INTO contact_consents (contact_id, channel, granted, source)
SELECT id, 'email', true, 'import' FROM contacts WHERE id % $1 = 0
"""
DATA = """
SELECT count(*) AS contacts, count(birthday) AS with_birthday,
       count(*) FILTER (WHERE extract(month FROM birthday) = 2
                          AND extract(day FROM birthday) = 29) AS born_29_february,
       (SELECT count(*) FROM contact_consents WHERE channel = 'email' AND granted)
           AS email_consent,
       (SELECT count(DISTINCT contact_id) FROM contact_identities WHERE kind = 'email')
           AS email_identity,
       (SELECT count(*) FROM contact_consents k
        WHERE k.channel = 'email' AND k.granted AND EXISTS (
            SELECT 1 FROM contact_identities i
            WHERE i.contact_id = k.contact_id AND i.kind = 'email')) AS email_reachable
FROM contacts
"""
DATA_BY_ZONE = """
SELECT coalesce(timezone, 'default') AS zone, count(*) AS contacts FROM contacts
GROUP BY 1 ORDER BY 1
"""

SCHEDULED_BY_ZONE = """
SELECT coalesce(c.timezone, 'default') AS zone, count(*) AS scheduled,
       count(*) FILTER (WHERE s.due_at <= $1) AS due,
       count(*) FILTER (WHERE extract(month FROM c.birthday) = 2
                          AND extract(day FROM c.birthday) = 29) AS born_29_february,
       min(s.due_at) AS due_at, min(s.occasion) AS occasion
FROM care_sends s JOIN contacts c ON c.id = s.contact_id
WHERE s.kind = 'birthday'
GROUP BY 1 ORDER BY 1
"""
DUE_CARE_SENDS = "SELECT id FROM care_sends WHERE status = 'scheduled' AND due_at <= $1"

# the floor: the same rows, by the plainest statement that selects them
FLOOR_TABLE = """
CREATE TABLE bench_floor_birthdays (
    contact_id  bigint NOT NULL,
    year        int NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (contact_id, year)
)
"""
FLOOR_SCHEDULE = """
INSERT INTO bench_floor_birthdays (contact_id, year, due_at)
SELECT id, extract(year FROM today)::int, (today + make_time($4, 0, 0)) AT TIME ZONE tz
FROM (
    SELECT id, birthday, tz, ($1::timestamptz AT TIME ZONE tz)::date AS today
    FROM (SELECT id, birthday, coalesce(timezone, $5) AS tz FROM contacts
          WHERE birthday IS NOT NULL
            AND (extract(month FROM birthday)::int, extract(day FROM birthday)::int)
                IN (SELECT * FROM unnest($2::int[], $3::int[]))) candidates
) l
WHERE (extract(month FROM birthday), extract(day FROM birthday))
      = (extract(month FROM today), extract(day FROM today))
   OR (extract(month FROM birthday) = 2 AND extract(day FROM birthday) = 29
       AND extract(month FROM today) = 2 AND extract(day FROM today) = 28
       AND extract(month FROM today + 1) = 3)
ON CONFLICT DO NOTHING
"""
FLOOR_DUE = "SELECT contact_id FROM bench_floor_birthdays WHERE due_at <= $1"
# rows (contact, year, due) in one and not the other, both ways
DIFFERENT_ROWS = """
SELECT count(*) FROM (
    (SELECT contact_id, occasion::int, due_at FROM care_sends WHERE kind = 'birthday'
     EXCEPT SELECT contact_id, year, due_at FROM bench_floor_birthdays)
    UNION ALL
    (SELECT contact_id, year, due_at FROM bench_floor_birthdays
     EXCEPT SELECT contact_id, occasion::int, due_at FROM care_sends WHERE kind = 'birthday')
) d
"""
SETTINGS = "SELECT birthday_hour, default_timezone FROM care_settings"


# --- the data --------------------------------------------------------------------------------


async def load(url: str, count: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                INSERT_CONTACTS,
                count,
                BORN_FROM,
                SPREAD,
                BORN_DAYS,
                list(ZONES),
                timeout=STATEMENT_TIMEOUT,
            )
            await conn.execute(INSERT_IDENTITIES, EMAIL_EVERY, timeout=STATEMENT_TIMEOUT)
            await conn.execute(INSERT_CONSENTS, EMAIL_EVERY, timeout=STATEMENT_TIMEOUT)
        for table in ("contacts", "contact_identities", "contact_consents"):
            await conn.execute(f"VACUUM ANALYZE {table}", timeout=STATEMENT_TIMEOUT)
        seconds = time.perf_counter() - started
        logger.info("loaded %d contacts in %.1fs", count, seconds)
        row = await conn.fetchrow(DATA, timeout=STATEMENT_TIMEOUT)
        assert row is not None
        zones = {r["zone"]: r["contacts"] for r in await conn.fetch(DATA_BY_ZONE)}
    finally:
        await conn.close()
    data = dict(row)
    data["email_reachable_share"] = round(data["email_reachable"] / max(data["contacts"], 1), 3)
    return {**data, "by_zone": zones, "load_s": round(seconds, 1)}


# --- the product -----------------------------------------------------------------------------


def at_clock(conns: Conns, at: datetime) -> Conns:
    """The same connections with "now" fixed at `at`."""
    return dataclasses.replace(conns, clock=lambda: at)


async def product_run(conns: Conns, name: str) -> dict[str, Any]:
    """One pass of the cron (workers/jobs.care_tick): schedule, then dispatch, timed apart."""
    queued_before = await conns.redis.zcard(default_queue_name)
    started = time.perf_counter()
    scheduled = await care.schedule_birthdays(conns)
    scanned = time.perf_counter()
    enqueued = await care.dispatch(conns)
    done = time.perf_counter()
    queued = await conns.redis.zcard(default_queue_name)
    due = [r["id"] for r in await conns.db.fetch(DUE_CARE_SENDS, conns.clock())]
    result = {
        "at": conns.clock().isoformat(),
        "schedule_s": round(scanned - started, 3),
        "dispatch_s": round(done - scanned, 3),
        "total_s": round(done - started, 3),
        "scheduled": scheduled,
        "enqueued": enqueued,
        "due_rows": len(due),
        "jobs_of_due_rows": await jobs_present(conns.redis, [f"care:{i}" for i in due]),
        "queue_length_before": queued_before,
        "queue_length": queued,
    }
    logger.info(
        "product %s: scheduled %d in %.2fs, enqueued %d in %.2fs; queue %d",
        name,
        scheduled,
        result["schedule_s"],
        enqueued,
        result["dispatch_s"],
        queued,
    )
    return result


async def jobs_present(redis: ArqRedis, job_ids: Sequence[str]) -> int:
    """How many of these job ids have a job key (queued, not yet run)."""
    present = 0
    for start in range(0, len(job_ids), 1000):
        keys = [JOB_KEY_PREFIX + job_id for job_id in job_ids[start : start + 1000]]
        present += await redis.exists(*keys)
    return present


async def scheduled_by_zone(pool: asyncpg.Pool, at: datetime) -> dict[str, Any]:
    return {
        r["zone"]: {
            "scheduled": r["scheduled"],
            "due_at_clock": r["due"],
            "born_29_february": r["born_29_february"],
            "due_at": r["due_at"].isoformat(),
            "occasion": r["occasion"],
        }
        for r in await pool.fetch(SCHEDULED_BY_ZONE, at)
    }


async def measure_product(conns: Conns, at: datetime) -> dict[str, Any]:
    first = await product_run(at_clock(conns, at), "first")
    second = await product_run(at_clock(conns, at), "second")
    later = await product_run(at_clock(conns, at + LATER), "hour_later")
    return {
        "first": first,
        "second": second,
        "hour_later": later,
        "by_zone": await scheduled_by_zone(conns.db, at),
    }


# --- the floor -------------------------------------------------------------------------------


async def floor_schedule(conn: asyncpg.Connection, at: datetime) -> tuple[float, int]:
    months, days = care_store.birthday_days(at)
    hour, default_zone = await conn.fetchrow(SETTINGS)
    started = time.perf_counter()
    status = await conn.execute(
        FLOOR_SCHEDULE, at, months, days, hour, default_zone, timeout=STATEMENT_TIMEOUT
    )
    return time.perf_counter() - started, int(status.split()[-1])


async def floor_enqueue(
    conn: asyncpg.Connection, redis: ArqRedis, at: datetime, prefix: str, concurrency: int
) -> tuple[float, int, int]:
    """Read the due rows, enqueue a trivial job for each: (seconds, due rows, enqueued)."""
    started = time.perf_counter()
    due = [r["contact_id"] for r in await conn.fetch(FLOOR_DUE, at)]
    enqueued = 0

    async def enqueue_part(part: Sequence[int]) -> None:
        nonlocal enqueued
        for contact_id in part:
            job = await redis.enqueue_job(
                FLOOR_FUNCTION, contact_id, _job_id=f"{prefix}{contact_id}", _queue_name=FLOOR_QUEUE
            )
            enqueued += job is not None

    if concurrency == 1:
        await enqueue_part(due)
    else:
        await asyncio.gather(*(enqueue_part(due[n::concurrency]) for n in range(concurrency)))
    return time.perf_counter() - started, len(due), enqueued


async def floor_run(
    conn: asyncpg.Connection, redis: ArqRedis, at: datetime, name: str
) -> dict[str, Any]:
    schedule_s, scheduled = await floor_schedule(conn, at)
    dispatch_s, due, enqueued = await floor_enqueue(conn, redis, at, "floor:", 1)
    result = {
        "schedule_s": round(schedule_s, 3),
        "dispatch_s": round(dispatch_s, 3),
        "total_s": round(schedule_s + dispatch_s, 3),
        "scheduled": scheduled,
        "due_rows": due,
        "enqueued": enqueued,
        "queue_length": await redis.zcard(FLOOR_QUEUE),
    }
    logger.info(
        "floor %s: scheduled %d in %.2fs, enqueued %d in %.2fs",
        name,
        scheduled,
        schedule_s,
        enqueued,
        dispatch_s,
    )
    return result


async def measure_floor(url: str, redis: ArqRedis, at: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FLOOR_TABLE)
        first = await floor_run(conn, redis, at, "first")
        second = await floor_run(conn, redis, at, "second")
        seconds, due, enqueued = await floor_enqueue(
            conn, redis, at, "floor-concurrent:", ENQUEUE_CONCURRENCY
        )
        logger.info("floor concurrent enqueue: %d in %.2fs", enqueued, seconds)
        different = await conn.fetchval(DIFFERENT_ROWS)
    finally:
        await conn.close()
    return {
        "first": first,
        "second": second,
        "enqueue_concurrent": {
            "tasks": ENQUEUE_CONCURRENCY,
            "due_rows": due,
            "enqueued": enqueued,
            "seconds": round(seconds, 3),
        },
        "rows_different_from_product": different,
    }


# --- plans -----------------------------------------------------------------------------------


async def explain(
    conn: asyncpg.Connection, sql: str, args: Sequence[Any], *, emptied: str | None
) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) in a transaction rolled back: the rows it writes go, and the
    table `emptied` (its earlier rows) is empty while it runs, as on a day's first pass."""
    tx = conn.transaction()
    await tx.start()
    try:
        if emptied is not None:
            await conn.execute(f"DELETE FROM {emptied}")
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + sql, *args, timeout=STATEMENT_TIMEOUT
        )
    finally:
        await tx.rollback()
    lines = [r[0] for r in rows]
    text = "\n".join(lines)
    executed = re.search(r"Execution Time: ([\d.]+) ms", text)
    return {
        "uses_contacts_birthday_index": "contacts_birthday" in text,
        "execution_ms": float(executed.group(1)) if executed else None,
        "plan": lines,
    }


async def measure_plans(url: str, at: datetime) -> dict[str, Any]:
    months, days = care_store.birthday_days(at)
    conn = await asyncpg.connect(url)
    try:
        hour, default_zone = await conn.fetchrow(SETTINGS)
        product = (at, months, days, hour, default_zone)
        floor = (at, months, days, hour, default_zone)
        plans = {
            "product_first": await explain(
                conn, care_store.SCHEDULE_BIRTHDAYS, product, emptied="care_sends"
            ),
            "product_second": await explain(
                conn, care_store.SCHEDULE_BIRTHDAYS, product, emptied=None
            ),
            "floor_first": await explain(
                conn, FLOOR_SCHEDULE, floor, emptied="bench_floor_birthdays"
            ),
        }
    finally:
        await conn.close()
    for name, plan in plans.items():
        logger.info("%s:\n%s", name, "\n".join(plan["plan"]))
    return plans


# --- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, admin_url: str, redis_url: str) -> dict[str, Any]:
    async with scratch_database(admin_url, prefix="bench_care") as url:
        settings = Settings(database_url=url, redis_url=redis_url, secret_key=secrets.token_hex(24))
        data = await load(url, args.contacts)
        pool = await db.create_pool(settings.database, min_size=1, max_size=2)
        redis = await create_redis(settings.redis)
        try:
            await redis.flushdb()
            conns = Conns(db=pool, redis=redis, settings=settings)
            product = await measure_product(conns, args.at)
            floor = await measure_floor(url, redis, args.at)
            plans = await measure_plans(url, args.at)
            await redis.flushdb()
        finally:
            await redis.aclose()
            await pool.close()
    return {"data": data, "product": product, "floor": floor, "explain": plans}


def ratio(product: float, floor: float) -> float | None:
    return round(product / floor, 2) if floor > 0 else None


def report(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    product, floor = results["product"], results["floor"]
    first, floor_first = product["first"], floor["first"]
    months, days = care_store.birthday_days(args.at)
    return {
        "benchmark": "care",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "contacts": args.contacts,
        "aim_total_s": AIM_SECONDS,
        "clock": {
            "at": args.at.isoformat(),
            "hour_later": (args.at + LATER).isoformat(),
            "birthdays_looked_up": [f"{m:02d}-{d:02d}" for m, d in zip(months, days, strict=True)],
        },
        "data": results["data"],
        "product": product,
        "floor": floor,
        "ratio_first": {
            "schedule": ratio(first["schedule_s"], floor_first["schedule_s"]),
            "dispatch": ratio(first["dispatch_s"], floor_first["dispatch_s"]),
            "total": ratio(first["total_s"], floor_first["total_s"]),
        },
        "ratio_second": {
            "total": ratio(product["second"]["total_s"], floor["second"]["total_s"]),
        },
        "explain": results["explain"],
    }


def parse_at(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError("give the clock with its UTC offset")
    return at.astimezone(UTC)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.care", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--contacts", type=int, default=1_000_000, help="contacts to load (default 1,000,000)"
    )
    parser.add_argument(
        "--at",
        type=parse_at,
        default=DEFAULT_AT,
        help=f"the cron's clock, with its offset (default {DEFAULT_AT.isoformat()})",
    )
    server_arguments(parser)
    args = parser.parse_args(argv)
    if args.contacts < 1:
        parser.error("--contacts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-care-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(run(args, admin_url, redis_url))
    print(json.dumps(report(args, results), indent=2))


if __name__ == "__main__":
    main()
