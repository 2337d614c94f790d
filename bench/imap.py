"""How long a mail takes from APPEND on a real IMAP server to a routed conversation.

Everything runs as production runs it, only in one process: pymap (the IMAP server of the
tests, started as a subprocess on a free port) holds the mailbox; a real MailboxListener
(IDLE, UID FETCH, the unified ingest) takes the mails into a freshly migrated database; a
real arq worker (the production worker settings, without cron jobs) routes them to the one
agent online in the default team, whose capacity is large enough for every mail.

From a separate IMAP connection `--mails` distinct mails (each from a sender of its own) are
appended at `--rate` per second; each one's wall time is taken just before its APPEND is
sent. PostgreSQL is polled every 10 ms for conversations whose first message has that
Message-ID and an assignee; the latency of a mail is the row's assigned_at (written by the
worker's clock) minus its append time. Both are `datetime.now(UTC)` in this one process, so
they are on the same clock. A mail not routed within 30 s of the last APPEND counts as lost.

There is no floor here, unlike bench.ingest: IMAP latency has no bare-asyncpg equivalent to
compare with. The figure is compared with the 2 s target of issue 3 (mail in the mailbox to
an agent assigned).

Run it from the repository root:

    python -m bench.imap [--mails 200] [--rate 20]

BENCH_DATABASE_URL (an admin URL: the run creates and drops a database of its own there) and
BENCH_REDIS_URL (a Redis database no other worker listens to) name servers to use; without
them, embedded PostgreSQL and Redis are started in a temporary folder and stopped at the end.
One JSON object goes to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aioimaplib
import asyncpg
from arq.constants import default_queue_name
from arq.worker import Worker

from bench.ingest import machine, percentile, server_arguments, servers
from channels.email.listener import MailboxListener
from contactcenter import db
from contactcenter.conns import Conns, create_redis
from contactcenter.domain.enums import Presence, Role
from contactcenter.domain.mailboxes import Mailbox
from contactcenter.scratch import scratch_database
from contactcenter.services import mailboxes as mailbox_service
from contactcenter.services.agents import MAX_CAPACITY, create_agent
from contactcenter.settings import Settings
from contactcenter.store import agents as agents_store
from contactcenter.store import mailboxes
from tests.mailservers import ImapServer
from workers.settings import create_worker

logger = logging.getLogger("bench.imap")

SUPPORT = "support@example.com"
POLL_SECONDS = 0.01
DEADLINE_SECONDS = 30.0
START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
CLOCK = (
    "UTC wall clock of this process (datetime.now(UTC)): append time taken just before each "
    "APPEND is sent, assigned_at written by the worker's clock in the same process"
)

# the conversations routed so far among those opened by the given Message-IDs
ROUTED = """
SELECT m.external_id, c.assigned_at
FROM conversations c
CROSS JOIN LATERAL (
    SELECT external_id FROM messages WHERE conversation_id = c.id ORDER BY id LIMIT 1
) m
WHERE c.assignee_id IS NOT NULL AND m.external_id = ANY($1::text[])
"""


def new_mail(number: int) -> tuple[str, bytes]:
    """(Message-ID, raw mail): a first mail from a customer of its own."""
    message_id = make_msgid(domain="customer.example")
    message = EmailMessage()
    message["From"] = f"Customer {number} <customer{number}@example.com>"
    message["To"] = SUPPORT
    message["Subject"] = f"My parcel {number} is late"
    message["Message-ID"] = message_id
    message.set_content("Hello, my parcel has not arrived yet. Can you help?")
    return message_id, bytes(message)


# --- setup ------------------------------------------------------------------------------


async def make_mailbox(conns: Conns, imap: ImapServer) -> Mailbox:
    values = {
        "name": "support",
        "address": SUPPORT,
        "display_name": "Example Support",
        "imap_host": imap.host,
        "imap_port": imap.port,
        "imap_security": "none",
        "imap_user": imap.user,
        "imap_password": imap.password,
    }
    row = await mailboxes.insert(
        conns.db, mailbox_service.seal_secrets(conns.settings.secret, values)
    )
    return mailbox_service.to_mailbox(row, conns.settings.secret)


async def make_online_agent(conns: Conns) -> int:
    """One agent in the default team, online, with room for every mail."""
    created = await create_agent(
        conns.db,
        name="Bench Agent",
        email="bench.agent@agents.example",
        role=Role.AGENT,
        capacity=MAX_CAPACITY,
    )
    async with conns.db.acquire() as conn:
        await agents_store.set_presence(conn, created.id, Presence.ONLINE, conns.clock())
    return created.id


@contextlib.asynccontextmanager
async def connections(settings: Settings) -> AsyncIterator[Conns]:
    pool = await db.create_pool(
        settings.database, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        redis = await create_redis(settings.redis)
        try:
            yield Conns(db=pool, redis=redis, settings=settings)
        finally:
            await redis.aclose()
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def imap_server(workdir: Path) -> AsyncIterator[ImapServer]:
    server = ImapServer(log_path=workdir / "pymap.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def listening(conns: Conns, mailbox: Mailbox) -> AsyncIterator[MailboxListener]:
    """A MailboxListener task, caught up (idling) before the block runs."""
    listener = MailboxListener(conns, mailbox)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.idle.wait(), START_TIMEOUT_SECONDS)
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def working(settings: Settings) -> AsyncIterator[Worker]:
    """A real arq worker in a task of this loop, started up before the block runs and
    stopped as a deployment stops it: no new jobs, running ones finish, then close."""
    worker = create_worker(settings, handle_signals=False, cron_jobs=[])
    task = asyncio.create_task(worker.async_run())
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while "conns" not in worker.ctx:  # on_startup has not run yet
                if task.done():
                    task.result()  # raise what stopped it
                await asyncio.sleep(0.01)
        yield worker
    finally:
        worker.allow_pick_jobs = False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        running = [job for job in worker.tasks.values() if not job.done()]
        if running:
            await asyncio.wait(running, timeout=STOP_TIMEOUT_SECONDS)
        await worker.close()


# --- the measurement --------------------------------------------------------------------


async def append_all(
    imap: ImapServer, mails: list[tuple[str, bytes]], rate: float, appended: dict[str, datetime]
) -> None:
    """APPEND the mails over one connection, mail i at i / rate seconds from the start
    (later if the server is slower), recording each append time in `appended`."""
    loop = asyncio.get_running_loop()
    async with imap.connect(folder=None) as client:
        start = loop.time()
        for number, (message_id, raw) in enumerate(mails):
            await asyncio.sleep(max(0.0, start + number / rate - loop.time()))
            appended[message_id] = datetime.now(UTC)
            response = await client.append(raw, mailbox=aioimaplib.quoted("INBOX"))
            if response.result != "OK":
                raise RuntimeError(f"APPEND answered {response.result}: {response.lines!r}")


async def watch_routed(
    database_url: str, appended: dict[str, datetime], appending: asyncio.Task[None]
) -> dict[str, datetime]:
    """assigned_at by Message-ID, polled until every appended mail is routed or the deadline
    (30 s after the last APPEND) has passed."""
    routed: dict[str, datetime] = {}
    deadline: datetime | None = None
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            waiting = [message_id for message_id in appended if message_id not in routed]
            if waiting:
                for row in await conn.fetch(ROUTED, waiting):
                    routed[row["external_id"]] = row["assigned_at"]
            if appending.done():
                appending.result()  # a failed APPEND ends the run
                deadline = deadline or datetime.now(UTC) + timedelta(seconds=DEADLINE_SECONDS)
                if len(routed) == len(appended) or datetime.now(UTC) > deadline:
                    return routed
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await conn.close()


def summary(appended: dict[str, datetime], routed: dict[str, datetime]) -> dict[str, Any]:
    latencies = sorted(
        (routed[message_id] - at).total_seconds() * 1000
        for message_id, at in appended.items()
        if message_id in routed
    )
    return {
        "p50": round(percentile(latencies, 50), 1),
        "p90": round(percentile(latencies, 90), 1),
        "p99": round(percentile(latencies, 99), 1),
        "max": round(latencies[-1], 1) if latencies else 0.0,
        "count": len(latencies),
    }


async def measure(
    args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path
) -> dict[str, Any]:
    async with (
        scratch_database(admin_url, prefix="bench") as database_url,
        imap_server(workdir) as imap,
    ):
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            secret_key=secrets.token_urlsafe(48),
        )
        async with connections(settings) as conns:
            waiting = await conns.redis.zcard(default_queue_name)
            if waiting:
                logger.warning("%d jobs already wait in this Redis database's queue", waiting)
            mailbox = await make_mailbox(conns, imap)
            await make_online_agent(conns)
            async with working(settings), listening(conns, mailbox):
                logger.info("appending %d mails at %s per second", args.mails, args.rate)
                mails = [new_mail(number) for number in range(args.mails)]
                appended: dict[str, datetime] = {}
                appending = asyncio.create_task(append_all(imap, mails, args.rate, appended))
                try:
                    routed = await watch_routed(database_url, appended, appending)
                finally:
                    appending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await appending
    lost = len(appended) - len(routed)
    if lost:
        logger.warning("%d mails were not routed within %ss", lost, DEADLINE_SECONDS)
    return {"append_to_routed_ms": summary(appended, routed), "lost": lost}


# --- the command ------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.imap", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mails", type=int, default=200, help="mails to append (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="appends per second (default 20)")
    server_arguments(parser)
    args = parser.parse_args(argv)
    if args.mails < 1 or args.rate <= 0:
        parser.error("--mails must be at least 1 and --rate above 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    logger.setLevel(logging.INFO)  # the listener and arq log every mail and job at INFO
    given = [bool(args.database_url), bool(args.redis_url)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-imap-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(measure(args, admin_url, redis_url, Path(tmp)))
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        "settings": {
            "mails": args.mails,
            "rate": args.rate,
            "servers": "given" if all(given) else "embedded" if not any(given) else "mixed",
        },
        "clock": CLOCK,
        **results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
