"""`contactcenter up`: the whole product in one command.

Starts the embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset (data under
./.data, kept across restarts), migrates, optionally seeds the demo, then runs the web and
worker processes as children. Ctrl-C or SIGTERM stops the children first, then the embedded
servers. A child that dies takes the others down with it, so nothing half-runs unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from contactcenter.embedded import EmbeddedPostgres, EmbeddedRedis
from contactcenter.migrate import migrate
from contactcenter.settings import Settings

CHILDREN = ("serve", "worker")
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def say(text: str) -> None:
    print(text, flush=True)


def up(settings: Settings, *, demo: bool, data_dir: str) -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    data = Path(data_dir)
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    try:
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data / "postgres")
            settings = settings.replace(database_url=postgres.start())
            say(f"PostgreSQL: embedded, data in {postgres.data_dir}")
        else:
            say("PostgreSQL: DATABASE_URL")
        if settings.redis_url is None:
            redis = EmbeddedRedis(data / "redis")
            settings = settings.replace(redis_url=redis.start())
            say(f"Redis:      embedded on {redis.url}, data in {redis.data_dir}")
        else:
            say("Redis:      REDIS_URL")
        if settings.secret_key is None:
            settings = settings.replace(secret_key=_development_secret(data))
            say(f"SECRET_KEY: generated for development, kept in {data / 'secret_key'}")
        settings.require("secret_key")

        applied = asyncio.run(migrate(settings.database))
        say(f"Migrations: {len(applied)} applied")
        if demo:
            _print_demo(settings, asyncio.run(_seed_demo(settings)))
        return _supervise(settings)
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        say("contactcenter stopped")


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


def _supervise(settings: Settings) -> int:
    env = _child_env(settings)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in CHILDREN:
            # a session of their own: Ctrl-C reaches only us, and we stop them in order
            children[name] = subprocess.Popen(
                [sys.executable, "-m", "contactcenter", name], env=env, start_new_session=True
            )
        base = f"http://{settings.host}:{settings.port}"
        _wait_ready(base, children)
        say(f"contactcenter is up: {base} (Ctrl-C stops it)")
        while True:
            for name, child in children.items():
                if child.poll() is not None:
                    say(f"the {name} process exited with {child.returncode}; stopping")
                    return 1
            time.sleep(0.2)
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_children(children)


def _wait_ready(base: str, children: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
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
    say("Demo: team Support; agents alice@demo.example and bob@demo.example (online);")
    say("      admin admin@demo.example; customer Wang Fang <wang.fang@example.com>")
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
