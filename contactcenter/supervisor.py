"""`contactcenter up`: the whole product in one command.

Starts the embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset (data under
./.data, kept across restarts), migrates, optionally seeds the demo, then runs the web and
worker processes as children. Ctrl-C or SIGTERM stops the children first, then the embedded
servers. A child that dies takes the others down with it, so nothing half-runs unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from contactcenter.embedded import EmbeddedPostgres, EmbeddedRedis, die_with_parent
from contactcenter.migrate import migrate
from contactcenter.settings import Settings, SettingsError

CHILDREN = ("serve", "worker", "mail-listen")
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class _StopRequest:
    """Notes SIGTERM, SIGINT (Ctrl-C) or SIGHUP (the terminal closed); the steps of `up` look
    at it between their blocking parts, so a stop never lands half way through one."""

    def __init__(self) -> None:
        self.signal: str | None = None
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum).name

    def __bool__(self) -> bool:
        return self.signal is not None


def say(text: str) -> None:
    print(text, flush=True)


def up(settings: Settings, *, demo: bool, data_dir: str) -> int:
    stop = _StopRequest()
    data = Path(data_dir)
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(say, "contactcenter stopped")
        if settings.database_url is None or settings.redis_url is None:
            cleanup.enter_context(_exclusive(data))
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data / "postgres")
            cleanup.callback(postgres.stop)
            settings = settings.replace(database_url=postgres.start())
            say(f"PostgreSQL: embedded, data in {postgres.data_dir}")
        else:
            say("PostgreSQL: DATABASE_URL")
        if settings.redis_url is None and not stop:
            redis = EmbeddedRedis(data / "redis")
            cleanup.callback(redis.stop)
            settings = settings.replace(redis_url=redis.start())
            say(f"Redis:      embedded on {redis.url}, data in {redis.data_dir}")
        elif settings.redis_url is not None:
            say("Redis:      REDIS_URL")
        if settings.secret_key is None:
            settings = settings.replace(secret_key=_development_secret(data))
            say(f"SECRET_KEY: generated for development, kept in {data / 'secret_key'}")
        settings.require("secret_key")
        if stop:
            return 0
        applied = asyncio.run(migrate(settings.database))
        say(f"Migrations: {len(applied)} applied")
        if demo and not stop:
            _print_demo(settings, asyncio.run(_seed_demo(settings)))
        return 0 if stop else _supervise(settings, stop)
    return 0


@contextlib.contextmanager
def _exclusive(data: Path) -> Iterator[None]:
    """One `up` per data folder: two would run two Redis servers on one append-only file."""
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "up.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SettingsError(
                f"another `contactcenter up` is running on {data}; stop it, or use --data-dir"
            ) from None
        yield


def _development_secret(data: Path) -> str:
    path = data / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    assert settings.database_url and settings.redis_url and settings.secret_key
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        SECRET_KEY=settings.secret_key,
        HOST=settings.host,
        PORT=str(settings.port),
    )
    return env


def _supervise(settings: Settings, stop: _StopRequest) -> int:
    env = _child_env(settings)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in CHILDREN:
            # a session of their own, so Ctrl-C reaches only us and we stop them in order; and
            # they die with us, should we be killed outright
            children[name] = subprocess.Popen(
                [sys.executable, "-m", "contactcenter", name],
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        base = f"http://{settings.host}:{settings.port}"
        _wait_ready(base, children, stop)
        if not stop:
            say(f"contactcenter is up: {base} (Ctrl-C stops it)")
        while not stop:
            for name, child in children.items():
                if child.poll() is not None:
                    say(f"the {name} process exited with {child.returncode}; stopping")
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop_children(children)


def _wait_ready(
    base: str, children: dict[str, subprocess.Popen[bytes]], stop: _StopRequest
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stop:
        for name, child in children.items():
            if child.poll() is not None:
                raise RuntimeError(f"the {name} process exited with {child.returncode} at start")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    if not stop:
        raise RuntimeError(f"the web process did not become ready at {base}")


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, child in children.items():
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            say(f"the {name} process did not stop in time; killing it")
            child.kill()
            child.wait()


async def _seed_demo(settings: Settings) -> dict[str, str]:
    from contactcenter import db, demo

    pool = await db.create_pool(settings.database, min_size=1, max_size=2)
    try:
        return (await demo.seed(pool)).by_email
    finally:
        await pool.close()


def _print_demo(settings: Settings, tokens: dict[str, str]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    admin = tokens["admin@demo.example"]
    say("Demo: team Support (alice@, bob@demo.example) and team Care (carol@demo.example),")
    say("      all online; admin admin@demo.example; the rule 'Complaints go to Care, first';")
    say("      customer Wang Fang <wang.fang@example.com>, platinum")
    for email, token in tokens.items():
        say(f"  token {email:<22} {token}")
    say(f"ADMIN_TOKEN={admin}")
    say("Try it (a customer writes on the web chat, then the inbox shows it):")
    say(
        f"  curl -s -X POST {base}/v1/web/conversations -H 'Content-Type: application/json' "
        '-d \'{"text": "Hello, my order has not arrived", '
        f'"client_message_id": "{secrets.token_hex(16)}", "name": "Wang Fang", '
        '"email": "wang.fang@example.com"}\''
    )
    say(f"  curl -s '{base}/v1/inbox?view=all' -H 'Authorization: Bearer {admin}'")
