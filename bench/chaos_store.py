"""Chaos for the stores: PostgreSQL restarted under a stream of messages, and the mail
listener killed with SIGKILL in the middle of a batch of mails.

Both scenarios run the real processes (`python -m contactcenter serve|worker|mail-listen`,
bench/chaos_support.py) on a PostgreSQL of this run's own: initdb in a temporary folder, the
`postgres` of the pgserver wheel on 127.0.0.1 and a free port, run as a child of this command
so that it can be stopped and started again (a server this command did not start is never
touched), and a redis-server of its own (one database per scenario).

postgres_restart
    A web process and a worker; one online agent with room for everything. `--messages`
    customers each open a web chat (POST /v1/web/conversations), started at `--rate` a
    second, each sent again with its same client_message_id after the Retry-After of a 503,
    until it is acknowledged (2xx). When k/(restarts+1) of the messages have been sent (and
    the API served again after the previous restart), PostgreSQL is stopped, a fast shutdown
    (SIGINT) and a crash (SIGQUIT: crash recovery at the next start) in turn, kept down
    `--down-seconds`, and started again on the same port and data. Every answer is counted by
    status; a 503 without Retry-After, another 5xx, a 4xx or no answer within
    REQUEST_TIMEOUT_SECONDS (a hang) are failures. Then PostgreSQL is read: every acknowledged
    message must be stored once, in the conversation its answer named, and routed (assigned).

listener_kill
    pymap (the IMAP server of the tests, tests/mailservers.py), a worker and `mail-listen`
    with the mailbox in its environment. The listener connects once (its checkpoint set) and
    is stopped gracefully; a backlog of mails is appended; it is started again and fetches
    them in batches of FETCH_BATCH from the first untaken one. `--kills` times, when it has
    taken half of a batch (the batch nearest to k/(kills+1) of the run), it is killed with
    SIGKILL, a few mails are appended while it is down, and it is started again. Its lease in
    Redis outlives it by up to LEASE_SECONDS: the new process waits for that (`--lease wait`,
    as in production), or the lease is deleted at the kill (`--lease expire`, standing in for
    the expiry to keep a short run short). Then every appended mail must be stored once and
    routed, none quarantined or logged as taken twice, and the checkpoint at the last UID.

Each scenario prints one JSON object, on one line, to stdout (logs go to stderr): sent,
acknowledged (a 2xx; for mails, an APPEND answered OK), refused_503 (503s with Retry-After),
errors_5xx_other, stored, routed, duplicated, lost (acknowledged, not stored), and under
"fault" what shows the fault really happened.

Run it from the repository root:

    python -m bench.chaos_store [--scenario postgres_restart|listener_kill|all]
        [--messages 200] [--restarts 2] [--kills 3] [--lease wait|expire] [--keep]

BENCH_DATABASE_URL and BENCH_REDIS_URL are not used: the servers are always the run's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import aioimaplib
import asyncpg
import psutil
from arq.connections import ArqRedis
from pgserver._commands import POSTGRES_BIN_PATH

from bench.chaos_support import (
    Child,
    RedisServer,
    product_env,
    start_web,
    start_worker,
    wait_for,
)
from bench.ingest import machine
from channels.email.listener import FETCH_BATCH, LEASE_SECONDS
from contactcenter import db
from contactcenter.conns import create_redis
from contactcenter.domain.enums import Presence, Role
from contactcenter.embedded import free_port, postgres_url_with_database
from contactcenter.migrate import migrate
from contactcenter.services.agents import MAX_CAPACITY, create_agent
from contactcenter.store import agents as agents_store
from tests.mailservers import ImapServer

logger = logging.getLogger("bench.chaos_store")

SCENARIOS = ("postgres_restart", "listener_kill")
TEXT = "Hello, my parcel has not arrived yet. Can you help?"
SUPPORT = "support@example.com"
# the user `postgres` runs as when this command runs as root (initdb refuses root); the one
# pgserver itself uses
PG_SYSTEM_USER = "pgserver"
# a request with no answer by then counts as a hang
REQUEST_TIMEOUT_SECONDS = 15.0
# a 503 without a usable Retry-After is retried after this long (and counted as a failure)
FALLBACK_RETRY_SECONDS = 1.0
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.01
# the processes' SECRET_KEY (it seals the mailbox's IMAP password in the database)
SECRET_KEY = secrets.token_urlsafe(48)
# after the stream: how long the stored and routed counts may take to settle
SETTLE_SECONDS = 60.0
# what PostgreSQL logs at a start after a crash
RECOVERY_LINE = "database system was not properly shut down"
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")

# --- PostgreSQL of our own -----------------------------------------------------------------


def _die_with_parent(signum: int) -> None:
    """In a child between fork and exec (after any change of user, which would clear it):
    `signum` when this process dies, however it dies, so nothing outlives the run."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG


class OwnPostgres:
    """A cluster in `data_dir` on 127.0.0.1 and a free port, with `postgres` a child of this
    process: stop() it (a fast shutdown, or SIGQUIT: a crash) and start() it again on the same
    port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.log_path = self.data_dir.parent / "postgres.log"
        self.port = free_port()
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return postgres_url_with_database(self.admin_url, database)

    async def init(self) -> None:
        await asyncio.to_thread(self._initdb)

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True)
        if self.user is not None:
            _prepare_system_user(self.user, self.data_dir)
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                *("-D", str(self.data_dir), "-U", "postgres", "--auth=trust"),
                *("--encoding=utf8", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )

    async def start(self) -> str:
        """Start, and wait until it accepts connections; what it logged meanwhile."""
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.process = await asyncio.create_subprocess_exec(
                str(POSTGRES_BIN_PATH / "postgres"),
                *("-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port)),
                *("-c", "unix_socket_directories=", "-c", "max_connections=100"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_fd,
                user=self.user,
                start_new_session=True,  # a Ctrl-C meant for this command is not its
                preexec_fn=partial(_die_with_parent, signal.SIGQUIT),
            )
        finally:
            os.close(log_fd)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"postgres exited at start:\n{self._log_tail()}")
            try:
                conn = await asyncpg.connect(self.admin_url, timeout=2)
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready in time:\n{self._log_tail()}") from None
                await asyncio.sleep(0.05)
            else:
                await conn.close()
                with self.log_path.open("rb") as log:
                    log.seek(log_from)
                    return log.read().decode(errors="replace")

    async def stop(self, *, crash: bool = False) -> int | None:
        """Fast shutdown (SIGINT: sessions are ended, then a checkpoint), or with `crash` an
        immediate one (SIGQUIT: no checkpoint, crash recovery at the next start). Returns the
        exit status."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGQUIT if crash else signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
        return process.returncode

    def _log_tail(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-2000:]


def _prepare_system_user(user: str, data_dir: Path) -> None:
    """As root: the user exists, can reach the data folder and run the wheel's binaries."""
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(user)
    assert entry is not None
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    os.chmod(data_dir, 0o700)


async def new_database(pg: OwnPostgres, name: str) -> str:
    """A migrated database of its own on the server; its URL."""
    admin = await asyncpg.connect(pg.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = pg.url(name)
    await migrate(url)
    return url


async def add_online_agent(database_url: str) -> int:
    """One agent in the default team, online, with room for every conversation."""
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        created = await create_agent(
            pool,
            name="Chaos Agent",
            email="chaos.agent@agents.example",
            role=Role.AGENT,
            capacity=MAX_CAPACITY,
        )
        async with pool.acquire() as conn:
            await agents_store.set_presence(conn, created.id, Presence.ONLINE, datetime.now(UTC))
        return created.id
    finally:
        await pool.close()


# --- the product's processes ---------------------------------------------------------------


def alive(child: Child) -> None:
    if not child.alive:
        raise child.failed("exited")


@contextlib.asynccontextmanager
async def stopped_at_end() -> AsyncIterator[list[Child]]:
    """Every child put in the list is stopped at the end, whatever happens."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            await child.stop()


# --- postgres_restart --------------------------------------------------------------------


@dataclass
class Restart:
    crash: bool
    stopped_at: float = 0.0
    exit_status: int | None = None
    started_at: float = 0.0  # accepting connections again
    first_refusal_at: float | None = None
    recovered_at: float | None = None  # the first 2xx to a request sent after the start
    crash_recovery: bool = False  # PostgreSQL said it had not been shut down properly

    def report(self) -> dict[str, Any]:
        def ms(at: float | None) -> float | None:
            return None if at is None else round((at - self.stopped_at) * 1000)

        return {
            "mode": "crash (SIGQUIT)" if self.crash else "fast shutdown (SIGINT)",
            "exit_status": self.exit_status,
            "crash_recovery": self.crash_recovery,
            "down_ms": ms(self.started_at),
            "first_503_ms": ms(self.first_refusal_at),
            "recovered_ms": ms(self.recovered_at),
        }


@dataclass
class Stream:
    """What the clients saw."""

    sent: set[str] = field(default_factory=set)
    # client_message_id -> the conversation its 2xx answer named
    acknowledged: dict[str, int] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    refused_503: int = 0
    refused_503_without_retry_after: int = 0
    errors_5xx_other: int = 0
    timeouts: int = 0
    errors_other: int = 0
    first_error: str | None = None
    longest_answer: float = 0.0
    restarts: list[Restart] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.first_error = self.first_error or text


def external_id(client_message_id: str) -> str:
    """The web ingest's external id of a conversation's first message (channels/web/api.py)."""
    return "new:" + hashlib.sha256(client_message_id.encode()).hexdigest()


def retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


async def send_one(
    session: aiohttp.ClientSession, url: str, stream: Stream, deadline: float
) -> None:
    """One customer's first message, sent until it is acknowledged or the deadline passes."""
    client_message_id = uuid.uuid4().hex
    body = {"text": TEXT, "client_message_id": client_message_id}
    stream.sent.add(client_message_id)
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        started = loop.time()
        wait = FALLBACK_RETRY_SECONDS
        try:
            async with session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            ) as response:
                answer = await response.read()
                status, header = response.status, response.headers.get("Retry-After")
        except TimeoutError:
            stream.timeouts += 1
            stream.error(f"no answer within {REQUEST_TIMEOUT_SECONDS}s")
            continue
        except aiohttp.ClientError as exc:
            stream.errors_other += 1
            stream.error(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(wait)
            continue
        answered = loop.time()
        stream.longest_answer = max(stream.longest_answer, answered - started)
        stream.statuses[str(status)] += 1
        if status in (200, 201):
            stream.acknowledged[client_message_id] = json.loads(answer)["conversation_id"]
            for restart in stream.restarts:
                if (
                    restart.recovered_at is None
                    and restart.started_at
                    and started >= (restart.started_at)
                ):
                    restart.recovered_at = answered
            return
        if status == 503:
            seconds = retry_after(header)
            if seconds is None:
                stream.refused_503_without_retry_after += 1
                stream.error(f"503 without a Retry-After: {answer[:200]!r}")
            else:
                stream.refused_503 += 1
                wait = seconds
            for restart in stream.restarts:
                if restart.first_refusal_at is None and started >= restart.stopped_at:
                    restart.first_refusal_at = answered
        elif status >= 500:
            stream.errors_5xx_other += 1
            stream.error(f"HTTP {status}: {answer[:300]!r}")
        else:
            stream.errors_other += 1
            stream.error(f"HTTP {status}: {answer[:300]!r}")
        await asyncio.sleep(min(wait, max(0.0, deadline - loop.time())))


async def send_stream(base_url: str, stream: Stream, args: argparse.Namespace) -> None:
    """`--messages` customers, customer i starting at i / rate seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    give_up = (
        start
        + args.messages / args.rate
        + SETTLE_SECONDS
        + args.restarts * (args.down_seconds + 10)
    )
    url = f"{base_url}/v1/web/conversations"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        for number in range(args.messages):
            await asyncio.sleep(max(0.0, start + number / args.rate - loop.time()))
            tasks.append(asyncio.create_task(send_one(session, url, stream, give_up)))
        await asyncio.gather(*tasks)


async def restart_postgres(
    pg: OwnPostgres, stream: Stream, args: argparse.Namespace, sending: asyncio.Task[None]
) -> None:
    """Restart k (1-based) once k / (restarts + 1) of the messages have been sent and the
    previous restart has been recovered from."""
    loop = asyncio.get_running_loop()
    for number in range(1, args.restarts + 1):
        threshold = number * args.messages // (args.restarts + 1)
        while len(stream.sent) < threshold or (
            stream.restarts and stream.restarts[-1].recovered_at is None
        ):
            if sending.done():
                logger.warning("the stream ended before restart %d", number)
                return
            await asyncio.sleep(POLL_SECONDS)
        restart = Restart(crash=number % 2 == 0)
        stream.restarts.append(restart)
        restart.stopped_at = loop.time()
        restart.exit_status = await pg.stop(crash=restart.crash)
        logger.info(
            "postgres stopped (%s) with %d messages sent; down for %ss",
            "crash" if restart.crash else "fast",
            len(stream.sent),
            args.down_seconds,
        )
        await asyncio.sleep(args.down_seconds)
        log = await pg.start()
        restart.started_at = loop.time()
        restart.crash_recovery = RECOVERY_LINE in log
        logger.info("postgres accepts connections again")


STORED_WEB = """
SELECT m.external_id, m.conversation_id, c.assignee_id IS NOT NULL AS routed
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.channel = 'web' AND m.external_id = ANY($1::text[])
"""


async def settle_web(database_url: str, stream: Stream) -> dict[str, Any]:
    """Read PostgreSQL until every acknowledged message is stored and routed (or the time is
    up), and count."""
    wanted = {external_id(cid): cid for cid in stream.sent}
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            rows = await conn.fetch(STORED_WEB, list(wanted))
            routed = {row["external_id"] for row in rows if row["routed"]}
            acknowledged = {external_id(cid) for cid in stream.acknowledged}
            if acknowledged <= routed or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        conversations = await conn.fetchval("SELECT count(*) FROM conversations")
    finally:
        await conn.close()
    per_message = Counter(row["external_id"] for row in rows)
    stored_in = {row["external_id"]: row["conversation_id"] for row in rows}
    acknowledged_ids = {external_id(cid): conv for cid, conv in stream.acknowledged.items()}
    # a second row for one message, a conversation its answer did not name, or a
    # conversation no message of the stream opened
    duplicated = sum(count - 1 for count in per_message.values())
    duplicated += sum(
        1
        for eid, conversation_id in acknowledged_ids.items()
        if eid in stored_in and stored_in[eid] != conversation_id
    )
    duplicated += max(0, conversations - len(set(stored_in.values())))
    return {
        "stored": sum(1 for eid in acknowledged_ids if eid in stored_in),
        # stored although the client never saw a 2xx (its answer was lost): allowed
        "stored_unacknowledged": sum(1 for eid in stored_in if eid not in acknowledged_ids),
        "routed": sum(1 for eid in acknowledged_ids if eid in routed),
        "duplicated": duplicated,
        "lost": sum(1 for eid in acknowledged_ids if eid not in stored_in),
    }


async def postgres_restart(
    pg: OwnPostgres, redis_url: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    redis = await create_redis(redis_url)
    try:
        return await _postgres_restart(pg, redis, redis_url, workdir, args)
    finally:
        await redis.aclose()


async def _postgres_restart(
    pg: OwnPostgres, redis: ArqRedis, redis_url: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    database_url = await new_database(pg, "chaos_postgres_restart")
    await add_online_agent(database_url)
    env = product_env(database_url, redis_url, SECRET_KEY)
    stream = Stream()
    async with stopped_at_end() as children:
        web, base_url = await start_web(env, workdir / "web.log")
        children.append(web)
        children.append(await start_worker(env, workdir / "worker.log", redis))
        logger.info(
            "postgres_restart: %d messages at %s/s, %d restarts of %ss",
            args.messages,
            args.rate,
            args.restarts,
            args.down_seconds,
        )
        sending = asyncio.create_task(send_stream(base_url, stream, args))
        restarting = asyncio.create_task(restart_postgres(pg, stream, args, sending))
        try:
            await asyncio.gather(sending, restarting)
        finally:
            for task in (sending, restarting):
                task.cancel()
            await asyncio.gather(sending, restarting, return_exceptions=True)
            if pg.process is None:  # cut short while it was down
                await pg.start()
        counts = await settle_web(database_url, stream)
        for child in children:
            alive(child)
    if stream.first_error:
        logger.warning("first failure: %s", stream.first_error)
    return {
        "scenario": "postgres_restart",
        "sent": len(stream.sent),
        "acknowledged": len(stream.acknowledged),
        "refused_503": stream.refused_503,
        "refused_503_without_retry_after": stream.refused_503_without_retry_after,
        "errors_5xx_other": stream.errors_5xx_other,
        "timeouts": stream.timeouts,
        "errors_other": stream.errors_other,
        **counts,
        "answers": dict(sorted(stream.statuses.items())),
        "longest_answer_ms": round(stream.longest_answer * 1000),
        "first_error": stream.first_error,
        "fault": {"restarts": [restart.report() for restart in stream.restarts]},
        "settings": {
            "messages": args.messages,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "restarts": args.restarts,
            "down_seconds": args.down_seconds,
            "request_timeout_seconds": REQUEST_TIMEOUT_SECONDS,
        },
    }


# --- listener_kill -----------------------------------------------------------------------


def new_mail(number: int) -> tuple[str, bytes]:
    """(Message-ID, raw mail): a first mail from a customer of its own."""
    message_id = make_msgid(domain="customer.example")
    message = EmailMessage()
    message["From"] = f"Customer {number} <customer{number}@example.com>"
    message["To"] = SUPPORT
    message["Subject"] = f"My parcel {number} is late"
    message["Message-ID"] = message_id
    message.set_content(TEXT)
    return message_id, bytes(message)


@dataclass
class Appends:
    sent: int = 0
    # Message-ID -> UID, for every APPEND answered OK
    acknowledged: dict[str, int] = field(default_factory=dict)


async def append_all(imap: ImapServer, mails: list[tuple[str, bytes]], appends: Appends) -> None:
    """APPEND the mails one after another over one connection, as fast as the server takes
    them."""
    async with imap.connect(folder=None) as client:
        for message_id, raw in mails:
            appends.sent += 1
            response = await client.append(raw, mailbox=aioimaplib.quoted("INBOX"))
            if response.result != "OK":
                raise RuntimeError(f"APPEND answered {response.result}: {response.lines!r}")
            found = (_APPENDUID.search(line) for line in response.lines if isinstance(line, bytes))
            uid = next((int(match.group(1)) for match in found if match), None)
            if uid is None:
                raise RuntimeError(f"APPEND gave no APPENDUID: {response.lines!r}")
            appends.acknowledged[message_id] = uid


STORED_MAIL = """
SELECT m.external_id, c.assignee_id IS NOT NULL AS routed
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.channel = 'email' AND m.external_id = ANY($1::text[])
"""


async def mailbox_ready(conn: asyncpg.Connection, listener: Child) -> int:
    """The environment's mailbox id, once its listener has set its first checkpoint (every
    mail appended from then on is new to it)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        alive(listener)
        mailbox_id = await conn.fetchval(
            "SELECT mailbox_id FROM imap_state s JOIN mailboxes m ON m.id = s.mailbox_id"
            " WHERE m.from_environment"
        )
        if mailbox_id is not None:
            return int(mailbox_id)
        if time.monotonic() > deadline:
            raise listener.failed("did not connect in time")
        await asyncio.sleep(0.05)


def lease_key(mailbox_id: int) -> str:
    """The key of the mailbox's listener lease (channels.email.listener.Lease)."""
    return f"cc:mail-lease:{mailbox_id}"


@dataclass
class Kill:
    batch_first: int  # the batch it dies in: the mails stored before it, plus one
    batch_size: int
    stored_at_kill: int = 0
    killed_at: float = 0.0
    exit_status: int | None = None
    stored_after_kill: int = 0
    appended_while_down: int = 0
    resumed_at: float | None = None  # when the next process stored its first mail

    def report(self) -> dict[str, Any]:
        resumed = None if self.resumed_at is None else self.resumed_at - self.killed_at
        return {
            "batch": [self.batch_first, self.batch_first + self.batch_size - 1],
            # seen when the kill was decided, and once its sessions had ended (a COMMIT sent
            # just before it died still completes)
            "stored_at_kill": self.stored_at_kill,
            "stored_after_kill": self.stored_after_kill,
            # 1..batch_size-1: mails of the batch taken when it died
            "taken_of_batch": self.stored_after_kill - self.batch_first + 1,
            "exit_status": self.exit_status,
            "appended_while_down": self.appended_while_down,
            "resumed_ms": None if resumed is None else round(resumed * 1000),
        }


def mails_while_down(messages: int, kills: int) -> int:
    """Mails appended while each killed listener is down."""
    return max(1, messages // (10 * (kills + 1))) if kills else 0


def plan_kill(number: int, kills: int, messages: int, stored: int, appended: int) -> Kill | None:
    """Where kill `number` (1-based) lands: in the middle of a batch of the listener just
    started, which found `stored` mails taken and `appended` on the server. It fetches what
    waits in batches of FETCH_BATCH from the first untaken one; the batch chosen is the one
    nearest to number / (kills + 1) of the run. None when no batch of two or more is left."""
    waiting = appended - stored
    target = number * messages // (kills + 1)
    index = min(max(0, (target - stored) // FETCH_BATCH), max(0, waiting - 1) // FETCH_BATCH)
    while index >= 0:
        size = min(FETCH_BATCH, waiting - index * FETCH_BATCH)
        if size >= 2:
            return Kill(batch_first=stored + index * FETCH_BATCH + 1, batch_size=size)
        index -= 1
    return None


async def stored_count(conn: asyncpg.Connection, message_ids: list[str]) -> int:
    count = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE channel = 'email' AND external_id = ANY($1::text[])",
        message_ids,
    )
    return int(count)


def postgres_client_ports(pid: int, postgres_port: int) -> list[int]:
    """The local ports of the process's connections to PostgreSQL."""
    return [
        connection.laddr.port
        for connection in psutil.Process(pid).net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == postgres_port
    ]


async def sessions_gone(conn: asyncpg.Connection, client_ports: list[int]) -> bool:
    left = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1::int[])", client_ports
    )
    return bool(left == 0)


async def kill_listener(
    conn: asyncpg.Connection,
    postgres_port: int,
    redis: ArqRedis,
    imap: ImapServer,
    listener: Child,
    mailbox_id: int,
    mails: list[tuple[str, bytes]],
    appends: Appends,
    args: argparse.Namespace,
) -> list[Kill]:
    """Start the listener on the backlog, kill it `--kills` times in the middle of a batch,
    append a few mails while it is down, start it again; returns the kills done."""
    message_ids = [message_id for message_id, _ in mails]
    later = mails[len(appends.acknowledged) :]
    down_mails = mails_while_down(args.messages, args.kills)
    resume_timeout = START_TIMEOUT_SECONDS + (LEASE_SECONDS * 1.5 if args.lease == "wait" else 0)

    async def stored_at_least(count: int) -> int:
        if not listener.alive:
            raise listener.failed("exited")
        stored = await stored_count(conn, message_ids)
        return stored if stored >= count else 0

    kills: list[Kill] = []
    stored = 0
    await listener.start()
    for number in range(1, args.kills + 1):
        kill = plan_kill(number, args.kills, args.messages, stored, len(appends.acknowledged))
        if kill is None:
            logger.warning("kill %d: no batch left to die in", number)
            break
        # its connections to PostgreSQL, noted once it takes mails (its pool has opened them
        # by then), well before the kill: reading them takes a while on a busy machine
        await wait_for(
            partial(stored_at_least, stored + 1),
            within=resume_timeout,
            what=f"kill {number}: mails stored",
            interval=POLL_SECONDS,
        )
        assert listener.pid is not None
        ports = await asyncio.to_thread(postgres_client_ports, listener.pid, postgres_port)
        # mid-batch: half of it taken, the rest fetched and not yet taken
        kill.stored_at_kill = await wait_for(
            partial(stored_at_least, kill.batch_first - 1 + kill.batch_size // 2),
            within=resume_timeout,
            what=f"kill {number}: mails stored",
            interval=POLL_SECONDS,
        )
        kill.killed_at = time.monotonic()
        await listener.kill()
        assert listener.process is not None
        kill.exit_status = listener.process.returncode
        # a COMMIT it sent just before dying still completes: count once its sessions are gone
        await wait_for(
            partial(sessions_gone, conn, ports),
            within=STOP_TIMEOUT_SECONDS,
            what="the killed listener's PostgreSQL sessions ended",
            interval=POLL_SECONDS,
        )
        kill.stored_after_kill = await stored_count(conn, message_ids)
        kills.append(kill)
        logger.info(
            "mail-listen killed with %d of batch %d-%d taken",
            kill.stored_at_kill - kill.batch_first + 1,
            kill.batch_first,
            kill.batch_first + kill.batch_size - 1,
        )
        if args.lease == "expire" and not await redis.delete(lease_key(mailbox_id)):
            raise RuntimeError(f"no listener lease at {lease_key(mailbox_id)}")
        arriving, later = later[:down_mails], later[down_mails:]
        await append_all(imap, arriving, appends)
        kill.appended_while_down = len(arriving)
        await listener.start()
        stored = await wait_for(
            partial(stored_at_least, kill.stored_after_kill + 1),
            within=resume_timeout,
            what="mail-listen resumed",
            interval=POLL_SECONDS,
        )
        kill.resumed_at = time.monotonic()
        # what the new listener found taken when it started (it may have taken more since)
        stored = kill.stored_after_kill
    await append_all(imap, later, appends)
    return kills


def taken_twice(log_path: Path) -> int:
    """UIDs the listeners logged as taken more than once (a mail taken again after a kill)."""
    taken: Counter[int] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("message") == "mail taken":
                taken[int(record["uid"])] += 1
    return sum(1 for count in taken.values() if count > 1)


async def settle_mail(
    conn: asyncpg.Connection, mailbox_id: int, appends: Appends
) -> dict[str, Any]:
    """Read PostgreSQL until every appended mail is stored and routed (or the time is up),
    and count."""
    message_ids = list(appends.acknowledged)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        rows = await conn.fetch(STORED_MAIL, message_ids)
        routed = {row["external_id"] for row in rows if row["routed"]}
        if len(routed) == len(message_ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    per_mail = Counter(row["external_id"] for row in rows)
    conversations = await conn.fetchval("SELECT count(*) FROM conversations")
    checkpoint = await conn.fetchval(
        "SELECT last_uid FROM imap_state WHERE mailbox_id = $1", mailbox_id
    )
    quarantined = await conn.fetchval("SELECT count(*) FROM email_quarantine")
    return {
        "stored": len(per_mail),
        "routed": len(routed),
        # a second row for one mail, or a conversation beyond one per mail
        "duplicated": sum(count - 1 for count in per_mail.values())
        + max(0, conversations - len(per_mail)),
        "lost": len(message_ids) - len(per_mail),
        "quarantined": quarantined,
        "checkpoint_uid": checkpoint,
        "last_appended_uid": max(appends.acknowledged.values(), default=None),
    }


@contextlib.asynccontextmanager
async def imap_server(workdir: Path) -> AsyncIterator[ImapServer]:
    server = ImapServer(log_path=workdir / "pymap.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def listener_kill(
    pg: OwnPostgres, redis_url: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    redis = await create_redis(redis_url)
    try:
        return await _listener_kill(pg, redis, redis_url, workdir, args)
    finally:
        await redis.aclose()


async def _listener_kill(
    pg: OwnPostgres, redis: ArqRedis, redis_url: str, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    database_url = await new_database(pg, "chaos_listener_kill")
    await add_online_agent(database_url)
    async with imap_server(workdir) as imap:
        env = product_env(
            database_url,
            redis_url,
            SECRET_KEY,
            IMAP_HOST=imap.host,
            IMAP_PORT=str(imap.port),
            IMAP_SECURITY="none",
            IMAP_USER=imap.user,
            IMAP_PASSWORD=imap.password,
            EMAIL_FROM=SUPPORT,
        )
        listener = Child("mail-listen", ["mail-listen"], env, workdir / "mail-listen.log")
        conn = await asyncpg.connect(database_url)
        try:
            async with stopped_at_end() as children:
                children.append(await start_worker(env, workdir / "worker.log", redis))
                await listener.start()
                children.append(listener)
                mailbox_id = await mailbox_ready(conn, listener)
                # it has run before: a graceful stop (its lease released), then a backlog
                await listener.stop()
                logger.info(
                    "listener_kill: %d mails, %d kills, lease %s",
                    args.messages,
                    args.kills,
                    args.lease,
                )
                mails = [new_mail(number) for number in range(args.messages)]
                appends = Appends()
                backlog = args.messages - args.kills * mails_while_down(args.messages, args.kills)
                await append_all(imap, mails[:backlog], appends)
                kills = await kill_listener(
                    conn, pg.port, redis, imap, listener, mailbox_id, mails, appends, args
                )
                counts = await settle_mail(conn, mailbox_id, appends)
                for child in children:
                    alive(child)
        finally:
            await conn.close()
    return {
        "scenario": "listener_kill",
        "sent": appends.sent,
        "acknowledged": len(appends.acknowledged),
        # no HTTP in this scenario
        "refused_503": None,
        "errors_5xx_other": None,
        **counts,
        "taken_twice": taken_twice(listener.log_path),
        "fault": {"kills": [kill.report() for kill in kills], "fetch_batch": FETCH_BATCH},
        "settings": {"messages": args.messages, "kills": args.kills, "lease": args.lease},
    }


# --- the command ------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> AsyncIterator[dict[str, Any]]:
    """Each scenario's report, as it finishes. One PostgreSQL and one Redis server for the
    run; each scenario has a database of its own on each."""
    pg = OwnPostgres(workdir / "postgres")
    redis_server = RedisServer(workdir / "redis")
    try:
        logger.info("initdb and start of this run's PostgreSQL (port %d)", pg.port)
        await pg.init()
        await pg.start()
        await redis_server.start()
        for number, scenario in enumerate(SCENARIOS):
            if args.scenario not in (scenario, "all"):
                continue
            folder = workdir / scenario
            folder.mkdir()
            redis_url = redis_server.url(number)
            if scenario == "postgres_restart":
                result = await postgres_restart(pg, redis_url, folder, args)
            else:
                result = await listener_kill(pg, redis_url, folder, args)
            yield {
                "benchmark": "chaos_store",
                "machine": machine(),
                "date": datetime.now(UTC).date().isoformat(),
                **result,
            }
    finally:
        await redis_server.stop()
        await pg.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos_store", description=__doc__.split("\n")[0]
    )
    add = parser.add_argument
    add("--scenario", choices=[*SCENARIOS, "all"], default="all")
    add("--messages", type=int, default=200, help="web chats or mails per scenario (200)")
    add("--rate", type=float, default=20.0, help="postgres_restart: chats a second (20)")
    add("--concurrency", type=int, default=32, help="postgres_restart: open requests (32)")
    add("--restarts", type=int, default=2, help="postgres_restart: restarts, fast and crash (2)")
    add("--down-seconds", type=float, default=3.0, help="postgres_restart: time down (3)")
    add("--keep", action="store_true", help="keep the run's folder (the processes' logs)")
    add("--kills", type=int, default=3, help="listener_kill: SIGKILLs of mail-listen (3)")
    add(
        "--lease",
        choices=("wait", "expire"),
        default="wait",
        help="listener_kill: the new listener waits for the killed one's lease to expire, as "
        "in production, or the lease is deleted at the kill to keep a short run short (wait)",
    )
    args = parser.parse_args(argv)
    if args.messages < 2 or args.rate <= 0 or args.concurrency < 1 or args.down_seconds < 0:
        parser.error("--messages must be at least 2, --rate and --concurrency above 0")
    if not 0 <= args.restarts < args.messages or not 0 <= args.kills < args.messages:
        parser.error("--restarts and --kills must be at least 0 and below --messages")
    return args


async def report_all(args: argparse.Namespace, workdir: Path) -> None:
    async for report in run(args, workdir):
        print(json.dumps(report), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    # SIGINT and SIGTERM end the run as Ctrl-C does (also when started with SIGINT ignored,
    # as a shell's background job is): the servers and processes it started are stopped
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="chaos-store-"))
    try:
        asyncio.run(report_all(args, workdir))
    finally:
        if args.keep:
            logger.info("the run's folder, with every process's log: %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
