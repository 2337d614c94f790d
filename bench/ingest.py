"""How fast each channel's ingest accepts new conversations, against the floor beneath it.

Two measurements per channel on one freshly migrated database, at the same concurrency and
duration:

- "api": the real web process(es) (`python -m contactcenter serve`, as production runs it) in
  processes of their own on 127.0.0.1, loaded over real HTTP by `--concurrency` aiohttp client
  tasks (requests go round-robin over the `--web` processes), each posting a new customer's
  first message:
  - web: POST /v1/web/conversations with a fresh client message id (201);
  - sms: POST /v1/webhooks/twilio/sms, the form Twilio posts for an incoming text from a new
    number, signed as Twilio signs it (X-Twilio-Signature by the twilio package's
    RequestValidator over PUBLIC_BASE_URL + the path, with the number's auth token) (200);
  - email: POST /v1/webhooks/email/raw, one raw RFC 822 mail from a new address
    (message/rfc822, X-Webhook-Secret) (202, stored, not quarantined);
- "floor": the same rows written by bare asyncpg, one transaction per message (contact,
  identity, conversation due for routing, inbound message), then one arq enqueue of
  route_conversation, with a pool of the web process's size and as many tasks, once the web
  processes are stopped; with `--web N` above 1, in N processes of their own (this command,
  run as floor processes) sharing the tasks, as many processes as the API had.

Each reports accepted messages per second, p50 and p99 acknowledgement latency in ms, and the
errors; "ratio" is api / floor. Requests started during the warm-up are not counted in the
rates and latencies. Every acknowledged message (warm-up included) is then looked up in
PostgreSQL by its external id: "acknowledged", "stored" and "lost" (acknowledged, not stored:
always 0, or invariant 1 is broken). No worker runs: the route jobs wait in Redis, for both,
and are deleted at the end.

Run it from the repository root:

    python -m bench.ingest [--channel web|sms|email|all] [--concurrency 32] [--seconds 10]
                           [--warmup 2] [--web 1]

One JSON object goes to stdout: "channels" holds {"api", "floor", "ratio"} per channel
measured; with one channel (the default, web) its "api", "floor" and "ratio" are also at the
top level, as before the other channels were measured.

BENCH_DATABASE_URL (an admin URL: the run creates and drops a database of its own there) and
BENCH_REDIS_URL (a Redis database no worker listens to) name servers to use; without them,
embedded PostgreSQL and Redis are started in a temporary folder and stopped at the end.
Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name, job_key_prefix
from twilio.request_validator import RequestValidator

from contactcenter.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
)
from contactcenter.scratch import scratch_database
from contactcenter.settings import Settings

logger = logging.getLogger("bench.ingest")

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Hello, my parcel has not arrived yet. Can you help?"
SERVER_START_TIMEOUT_SECONDS = 30.0
SERVER_STOP_TIMEOUT_SECONDS = 15.0
# the web process's pool, pinned in its environment so the floor gets exactly the same
POOL_MIN = Settings().db_pool_min
POOL_MAX = Settings().db_pool_max

CHANNELS = ("web", "sms", "email")
# what every web process is configured with (the same for all, as behind a load balancer):
# the Twilio number texts come in on, the public URL Twilio signs, the mail address mails go to
TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_NUMBER = "+14155552671"
PUBLIC_BASE_URL = "https://contact.bench.example"
SMS_PATH = "/v1/webhooks/twilio/sms"
MAIL_PATH = "/v1/webhooks/email/raw"
SUPPORT_ADDRESS = "support@bench.example"
SUBJECT = "Where is my parcel?"
# the customers' numbers: valid North American numbers, a block of BLOCK per process
AREA_CODES = (201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218)
LINES_PER_AREA = 8_000_000
BLOCK = 10_000_000

# the floor: what ingest of a new customer's first message has to write, and nothing else
INSERT_CONTACT = "INSERT INTO contacts DEFAULT VALUES RETURNING id"
INSERT_IDENTITY = "INSERT INTO contact_identities (contact_id, kind, value) VALUES ($1, $2, $3)"
INSERT_CONVERSATION = """
INSERT INTO conversations (contact_id, channel, subject, sms_number_id, route_requested_at,
                           route_version, last_message_at)
VALUES ($1, $2, $3, $4, now(), 1, now())
RETURNING id
"""
INSERT_MESSAGE = """
INSERT INTO messages (conversation_id, direction, channel, external_id, body_text, status,
                      body_full, email_meta)
VALUES ($1, 'inbound', $2, $3, $4, 'received', $5, $6::jsonb)
"""
SMS_NUMBER = "SELECT id FROM sms_numbers ORDER BY id LIMIT 1"
STORED = "SELECT count(*) FROM messages WHERE channel = $1 AND external_id = ANY($2::text[])"

# a message sent; returns its external id (as the product stores it) once acknowledged
Send = Callable[[], Awaitable[str]]


class Refused(Exception):
    """A message that was not accepted (an answer other than the channel's 2xx, a job id
    already taken)."""


@dataclass
class LoadResult:
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    # the external id of every message acknowledged, warm-up included
    acknowledged: list[str] = field(default_factory=list)
    # of those, how many PostgreSQL holds (looked up after the run)
    stored: int | None = None

    @property
    def rate(self) -> float:
        """Accepted messages per second."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        found: dict[str, Any] = {}
        if self.stored is not None:
            found = {
                "acknowledged": len(self.acknowledged),
                "stored": self.stored,
                "lost": len(self.acknowledged) - self.stored,
            }
        return {
            "messages_per_second": round(self.rate, 1),
            "accepted": len(ordered),
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "errors": self.errors,
            **found,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "elapsed": self.elapsed,
            "latencies": self.latencies,
            "errors": self.errors,
            "first_error": self.first_error,
            "acknowledged": self.acknowledged,
        }

    @classmethod
    def merged(cls, parts: list[dict[str, Any]]) -> LoadResult:
        """One result of several processes' (as_json), run over the same window."""
        return cls(
            elapsed=max((p["elapsed"] for p in parts), default=0.0),
            latencies=[x for p in parts for x in p["latencies"]],
            errors=sum(p["errors"] for p in parts),
            first_error=next((p["first_error"] for p in parts if p["first_error"]), None),
            acknowledged=[x for p in parts for x in p["acknowledged"]],
        )


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when it is empty)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100), at least 1
    return ordered[int(rank) - 1]


async def run_load(send: Send, *, concurrency: int, warmup: float, seconds: float) -> LoadResult:
    """`concurrency` tasks call `send` back to back until the deadline; calls started during
    the warm-up are not counted, and the elapsed time runs until the last call returns."""
    measure_from = time.perf_counter() + warmup
    deadline = measure_from + seconds
    result = LoadResult(elapsed=0.0)

    async def one_client() -> None:
        while (started := time.perf_counter()) < deadline:
            try:
                external_id = await send()
            except Exception as exc:  # every kind of failure counts, the first is reported
                if started >= measure_from:
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                continue
            result.acknowledged.append(external_id)
            if started >= measure_from:
                result.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - measure_from
    if result.errors:
        logger.warning("%d errors; the first: %s", result.errors, result.first_error)
    return result


# --- what the customers send ------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """What the web processes are configured with and the clients sign with."""

    auth_token: str
    webhook_secret: str

    @classmethod
    def new(cls) -> Secrets:
        return cls(auth_token=secrets.token_hex(16), webhook_secret=secrets.token_urlsafe(24))

    def env(self) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": TWILIO_NUMBER,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "EMAIL_WEBHOOK_SECRET": self.webhook_secret,
        }


class Customers:
    """New customers, none seen before: process `index` numbers its own block of phones."""

    def __init__(self, index: int = 0) -> None:
        self._numbers = itertools.count(index * BLOCK)

    def phone(self) -> str:
        n = next(self._numbers)
        area = AREA_CODES[(n // LINES_PER_AREA) % len(AREA_CODES)]
        return f"+1{area}{2_000_000 + n % LINES_PER_AREA:07d}"

    @staticmethod
    def address() -> str:
        return f"customer-{uuid.uuid4().hex[:16]}@mail.example"


def web_external_id(client_message_id: str) -> str:
    """The external id the web API stores for a conversation's first message."""
    return "new:" + hashlib.sha256(client_message_id.encode()).hexdigest()


def sms_form(sender: str, message_sid: str) -> dict[str, str]:
    """What Twilio posts to a number's incoming-message webhook for a one-segment text."""
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "ToCity": "",
        "ToZip": "",
        "FromCountry": "US",
        "FromState": "",
        "FromCity": "",
        "FromZip": "",
        "SmsMessageSid": message_sid,
        "SmsSid": message_sid,
        "MessageSid": message_sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "Body": TEXT,
        "To": TWILIO_NUMBER,
        "From": sender,
        "AccountSid": TWILIO_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }


def twilio_signature(form: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature of a POST of `form` to the public URL of the SMS webhook."""
    validator = RequestValidator(auth_token)
    return str(validator.compute_signature(PUBLIC_BASE_URL + SMS_PATH, form))


def raw_mail(sender: str, message_id: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"A customer <{sender}>"
    mail["To"] = SUPPORT_ADDRESS
    mail["Subject"] = SUBJECT
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = message_id
    mail.set_content(TEXT)
    return mail.as_bytes()


def new_message_id() -> str:
    return f"<{uuid.uuid4().hex}@mail.example>"


# --- servers ----------------------------------------------------------------------------


@contextlib.contextmanager
def servers(
    workdir: Path, database_url: str | None, redis_url: str | None
) -> Iterator[tuple[str, str]]:
    """(PostgreSQL admin URL, Redis URL): the given servers, or embedded ones in `workdir`."""
    with contextlib.ExitStack() as stack:
        if not database_url:
            postgres = EmbeddedPostgres(workdir / "postgres")
            logger.info("starting embedded PostgreSQL")
            database_url = postgres.start("postgres")
            stack.callback(postgres.stop)
        if not redis_url:
            redis = EmbeddedRedis(workdir / "redis", persistent=False)
            logger.info("starting embedded Redis")
            redis_url = redis.start()
            stack.callback(redis.stop)
        yield database_url, redis_url


@contextlib.asynccontextmanager
async def web_process(
    database_url: str,
    redis_url: str,
    log_path: Path,
    *,
    extra_env: dict[str, str] | None = None,
    secret_key: str | None = None,
    on_start: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> AsyncIterator[str]:
    """`python -m contactcenter serve` on a free port; yields its base URL. Several processes
    behind one balancer share `secret_key` (a visitor token or a sealed secret one signed
    opens on all); `on_start` is told of the process as soon as it is started."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key or secrets.token_urlsafe(48),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DB_POOL_MIN": str(POOL_MIN),
        "DB_POOL_MAX": str(POOL_MAX),
        "LOG_LEVEL": "INFO",  # the production default: an access log line per request
        **(extra_env or {}),
    }
    # its JSON logs go to a file, read back only if it fails to start
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "contactcenter", "serve"),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_fd,
        )
    finally:
        os.close(log_fd)
    base_url = f"http://127.0.0.1:{port}"
    try:
        if on_start is not None:
            on_start(process)
        await wait_ready(process, base_url, log_path)
        yield base_url
    finally:
        await stop(process)


@contextlib.asynccontextmanager
async def web_processes(
    count: int, database_url: str, redis_url: str, workdir: Path, extra_env: dict[str, str]
) -> AsyncIterator[list[str]]:
    """`count` web processes on one database and Redis, with one SECRET_KEY; their URLs
    (started one after another: a failed start stops those already up)."""
    secret_key = secrets.token_urlsafe(48)
    async with contextlib.AsyncExitStack() as stack:
        urls = [
            await stack.enter_async_context(
                web_process(
                    database_url,
                    redis_url,
                    workdir / f"web-{n}.log",
                    extra_env=extra_env,
                    secret_key=secret_key,
                )
            )
            for n in range(count)
        ]
        yield urls


async def wait_ready(process: asyncio.subprocess.Process, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
                raise RuntimeError(f"the web process exited at start:\n{tail}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base_url}/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("the web process did not become ready in time")
            await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()  # aiohttp shuts down gracefully on SIGTERM
    try:
        await asyncio.wait_for(process.wait(), SERVER_STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def arq_redis(url: str) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(url))
    try:
        yield redis
    finally:
        await redis.aclose()


async def forget_route_jobs(redis: ArqRedis, database_url: str) -> None:
    """Delete the route jobs the run queued (every conversation of its database has one), so a
    later run on the same Redis finds no job ids taken."""
    conn = await asyncpg.connect(database_url)
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM conversations")]
    finally:
        await conn.close()
    for start in range(0, len(ids), 1000):
        job_ids = [f"route:{i}:1" for i in ids[start : start + 1000]]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrem(default_queue_name, *job_ids)
            pipe.delete(*(job_key_prefix + job_id for job_id in job_ids))
            await pipe.execute()
    logger.info("deleted %d queued route jobs", len(ids))


# --- the API ----------------------------------------------------------------------------


def api_sender(
    channel: str, session: aiohttp.ClientSession, base_urls: list[str], keys: Secrets
) -> Send:
    """One new customer's first message on `channel`, to the next web process in turn."""
    urls = itertools.cycle(base_urls)
    customers = Customers()

    async def web_chat() -> str:
        client_message_id = uuid.uuid4().hex
        body = {"text": TEXT, "client_message_id": client_message_id}
        async with session.post(f"{next(urls)}/v1/web/conversations", json=body) as response:
            answer = await response.read()
            if response.status != 201:
                raise Refused(f"HTTP {response.status}: {answer[:200]!r}")
        return web_external_id(client_message_id)

    async def text() -> str:
        message_sid = "SM" + uuid.uuid4().hex
        form = sms_form(customers.phone(), message_sid)
        headers = {
            "X-Twilio-Signature": twilio_signature(form, keys.auth_token),
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex,
            "User-Agent": "TwilioProxy/1.1",
        }
        async with session.post(f"{next(urls)}{SMS_PATH}", data=form, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise Refused(f"HTTP {response.status}: {answer[:200]!r}")
        return message_sid

    async def mail() -> str:
        message_id = new_message_id()
        headers = {"X-Webhook-Secret": keys.webhook_secret, "Content-Type": "message/rfc822"}
        raw = raw_mail(customers.address(), message_id)
        async with session.post(f"{next(urls)}{MAIL_PATH}", data=raw, headers=headers) as response:
            answer = await response.read()
            # a quarantined mail is acknowledged too, but it is not the message under test
            if response.status != 202 or b'"message_id"' not in answer:
                raise Refused(f"HTTP {response.status}: {answer[:200]!r}")
        return message_id

    return {"web": web_chat, "sms": text, "email": mail}[channel]


async def measure_api(
    channel: str, base_urls: list[str], keys: Secrets, args: argparse.Namespace
) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        send = api_sender(channel, session, base_urls, keys)
        logger.info(
            "%s api: %d clients on %d web process(es) for %ss after %ss",
            channel,
            args.concurrency,
            len(base_urls),
            args.seconds,
            args.warmup,
        )
        return await run_load(
            send, concurrency=args.concurrency, warmup=args.warmup, seconds=args.seconds
        )


# --- the floor --------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorRow:
    """One new customer's first message, as the floor writes it."""

    identity_kind: str
    identity: str
    external_id: str
    subject: str | None = None
    sms_number_id: int | None = None
    body_full: str | None = None
    email_meta: str | None = None  # JSON


def floor_row(channel: str, customers: Customers, sms_number_id: int | None) -> FloorRow:
    if channel == "sms":
        message_sid = "SM" + uuid.uuid4().hex
        return FloorRow("phone", customers.phone(), message_sid, sms_number_id=sms_number_id)
    if channel == "email":
        sender = customers.address()
        meta = json.dumps({"from": sender, "reply_to": None, "to": [SUPPORT_ADDRESS], "cc": []})
        return FloorRow(
            "email", sender, new_message_id(), subject=SUBJECT, body_full=TEXT, email_meta=meta
        )
    return FloorRow("web", uuid.uuid4().hex, f"new:{uuid.uuid4().hex}")


async def measure_floor(
    database_url: str,
    redis: ArqRedis,
    args: argparse.Namespace,
    *,
    channel: str = "web",
    sms_number_id: int | None = None,
    index: int = 0,
    concurrency: int | None = None,
) -> LoadResult:
    tasks = concurrency or args.concurrency
    customers = Customers(index)
    async with asyncpg.create_pool(database_url, min_size=POOL_MIN, max_size=POOL_MAX) as pool:

        async def write() -> str:
            row = floor_row(channel, customers, sms_number_id)
            async with pool.acquire() as conn, conn.transaction():
                contact_id = await conn.fetchval(INSERT_CONTACT)
                await conn.execute(INSERT_IDENTITY, contact_id, row.identity_kind, row.identity)
                conversation_id = await conn.fetchval(
                    INSERT_CONVERSATION, contact_id, channel, row.subject, row.sms_number_id
                )
                await conn.execute(
                    INSERT_MESSAGE,
                    conversation_id,
                    channel,
                    row.external_id,
                    TEXT,
                    row.body_full,
                    row.email_meta,
                )
            job_id = f"route:{conversation_id}:1"
            if (
                await redis.enqueue_job("route_conversation", conversation_id, _job_id=job_id)
                is None
            ):
                raise Refused(f"job id {job_id} was taken")
            return row.external_id

        logger.info(
            "%s floor: %d tasks for %ss after %ss", channel, tasks, args.seconds, args.warmup
        )
        return await run_load(write, concurrency=tasks, warmup=args.warmup, seconds=args.seconds)


def shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` whole shares, each at least 1."""
    return [max(1, total // parts + (1 if n < total % parts else 0)) for n in range(parts)]


async def measure_floor_processes(
    database_url: str,
    redis_url: str,
    args: argparse.Namespace,
    channel: str,
    sms_number_id: int | None,
) -> LoadResult:
    """The floor in `--web` processes of its own (this command with --floor-process), the
    tasks shared among them; each starts its warm-up when all are ready."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for index, tasks in enumerate(shares(args.concurrency, args.web), start=1):
            argv = [sys.executable, "-m", "bench.ingest", "--floor-process", channel]
            argv += ["--floor-index", str(index), "--concurrency", str(tasks)]
            argv += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
            argv += ["--database-url", database_url, "--redis-url", redis_url]
            if sms_number_id is not None:
                argv += ["--floor-sms-number", str(sms_number_id)]
            processes.append(
                await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), SERVER_START_TIMEOUT_SECONDS)
            if line.strip() != b"ready":
                raise RuntimeError(f"a floor process did not start: {line[:200]!r}")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        parts = []
        for process in processes:
            assert process.stdout is not None
            parts.append(json.loads(await process.stdout.read()))
            await process.wait()
        return LoadResult.merged(parts)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def floor_process(args: argparse.Namespace) -> None:
    """One of the floor's processes: ready, wait for go, run, print the result as JSON."""
    async with arq_redis(args.redis_url) as redis:
        loop = asyncio.get_running_loop()
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        result = await measure_floor(
            args.database_url,
            redis,
            args,
            channel=args.floor_process,
            sms_number_id=args.floor_sms_number,
            index=args.floor_index,
        )
    print(json.dumps(result.as_json()), flush=True)


# --- the measurements -------------------------------------------------------------------


async def count_stored(database_url: str, channel: str, result: LoadResult) -> None:
    """How many of the messages acknowledged PostgreSQL holds."""
    conn = await asyncpg.connect(database_url)
    try:
        result.stored = await conn.fetchval(STORED, channel, result.acknowledged)
    finally:
        await conn.close()


async def channel_floor(
    channel: str, args: argparse.Namespace, database_url: str, redis_url: str, redis: ArqRedis
) -> LoadResult:
    conn = await asyncpg.connect(database_url)
    try:
        # the number the web processes registered from their TWILIO_* environment
        sms_number_id = await conn.fetchval(SMS_NUMBER) if channel == "sms" else None
    finally:
        await conn.close()
    if args.web > 1:
        floor = await measure_floor_processes(database_url, redis_url, args, channel, sms_number_id)
    else:
        floor = await measure_floor(
            database_url, redis, args, channel=channel, sms_number_id=sms_number_id
        )
    await count_stored(database_url, channel, floor)
    return floor


async def measure(
    args: argparse.Namespace, admin_url: str, redis_url: str, workdir: Path
) -> dict[str, Any]:
    channels = list(CHANNELS) if args.channel == "all" else [args.channel]
    keys = Secrets.new()
    apis: dict[str, LoadResult] = {}
    floors: dict[str, LoadResult] = {}
    async with (
        scratch_database(admin_url, prefix="bench") as database_url,
        arq_redis(redis_url) as redis,
    ):
        waiting = await redis.zcard(default_queue_name)
        if waiting:
            logger.warning("%d jobs already wait in this Redis database's queue", waiting)
        try:
            # every channel's API, then every floor once the web processes are gone
            async with web_processes(
                args.web, database_url, redis_url, workdir, keys.env()
            ) as base_urls:
                for channel in channels:
                    apis[channel] = await measure_api(channel, base_urls, keys, args)
                    await count_stored(database_url, channel, apis[channel])
            for channel in channels:
                floors[channel] = await channel_floor(channel, args, database_url, redis_url, redis)
        finally:
            await forget_route_jobs(redis, database_url)
    return {
        channel: {
            "api": apis[channel].summary(),
            "floor": floors[channel].summary(),
            "ratio": (
                round(apis[channel].rate / floors[channel].rate, 3)
                if floors[channel].rate
                else None
            ),
        }
        for channel in channels
    }


# --- the command ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kib = next(
        int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024**2, 1),
        "python": platform.python_version(),
    }


def server_arguments(parser: argparse.ArgumentParser) -> None:
    """--database-url and --redis-url, from BENCH_DATABASE_URL / BENCH_REDIS_URL by default."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL admin URL (default: BENCH_DATABASE_URL, else an embedded server)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="Redis URL (default: BENCH_REDIS_URL, else an embedded server)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--channel", choices=[*CHANNELS, "all"], default="web", help="the channel (default web)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="client tasks (default 32)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (default 2)")
    parser.add_argument("--web", type=int, default=1, help="web processes (default 1)")
    # the floor's processes are this command too
    parser.add_argument("--floor-process", choices=CHANNELS, help=argparse.SUPPRESS)
    parser.add_argument("--floor-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--floor-sms-number", type=int, help=argparse.SUPPRESS)
    server_arguments(parser)
    args = parser.parse_args(argv)
    if args.web < 1 or args.concurrency < args.web:
        parser.error("--web must be at least 1 and at most --concurrency")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if args.floor_process:
        asyncio.run(floor_process(args))
        return
    given = [bool(args.database_url), bool(args.redis_url)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
        servers(Path(tmp), args.database_url, args.redis_url) as (admin_url, redis_url),
    ):
        results = asyncio.run(measure(args, admin_url, redis_url, Path(tmp)))
    # one channel: its figures at the top level too, as the command printed them before
    single = next(iter(results.values())) if len(results) == 1 else {}
    report = {
        "benchmark": "ingest",
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        **single,
        "channels": results,
        "settings": {
            "channel": args.channel,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "web_processes": args.web,
            "floor_processes": args.web,
            "servers": "given" if all(given) else "embedded" if not any(given) else "mixed",
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
