"""The command line: migrations, agent creation, and refusing to start without secrets."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from contactcenter.migrate import load_migrations, migrate
from contactcenter.scratch import scratch_database
from contactcenter.services.agents import authenticate, hash_token
from contactcenter.settings import Settings


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "contactcenter",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def clean_env(**extra: str) -> dict[str, str]:
    names = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TEST_DATABASE_URL", "TEST_REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


@pytest.fixture
async def empty_database(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    async with scratch_database(server_urls[0], prefix="cc_migrate", migrated=False) as url:
        yield url


async def test_migrations_started_together_apply_each_file_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(4)))
    names = [m.name for m in load_migrations()]
    # exactly one of the four did the work; the others waited for the lock and found it done
    assert sorted(results, key=len) == [[], [], [], names]
    conn = await asyncpg.connect(empty_database)
    try:
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r["name"] for r in recorded] == names

    code, out, _ = await run_cli("migrate", env=clean_env(DATABASE_URL=empty_database))
    assert code == 0
    assert out.strip() == "applied 0 migration(s)"


async def test_create_agent_prints_a_token_and_stores_only_its_hash(
    settings: Settings, db: asyncpg.Pool
) -> None:
    code, out, err = await run_cli(
        "create-agent",
        "--name",
        "Mei Lin",
        "--email",
        "Mei@Example.com",
        "--role",
        "supervisor",
        env=clean_env(DATABASE_URL=settings.database),
    )
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    agent = await authenticate(db, token)
    assert agent is not None
    assert (agent.name, agent.email, agent.role) == ("Mei Lin", "mei@example.com", "supervisor")
    stored = await db.fetchrow("SELECT token_hash FROM agents WHERE id = $1", agent.id)
    assert stored["token_hash"] == hash_token(token)
    assert token.encode() not in bytes(stored["token_hash"])

    # the same e-mail twice is a clear error, not a traceback
    code, _, err = await run_cli(
        "create-agent",
        "--name",
        "Mei again",
        "--email",
        "mei@example.com",
        env=clean_env(DATABASE_URL=settings.database),
    )
    assert code != 0
    assert "agent_exists" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("secret", "says"),
    [(None, "SECRET_KEY is not set"), ("short", "SECRET_KEY is too short")],
)
async def test_serve_refuses_to_start_without_a_real_secret(
    settings: Settings, secret: str | None, says: str
) -> None:
    env = clean_env(DATABASE_URL=settings.database, REDIS_URL=settings.redis)
    if secret is not None:
        env["SECRET_KEY"] = secret
    code, _, err = await run_cli("serve", "--port", "0", env=env)
    assert code != 0
    assert says in err
    assert "Traceback" not in err


async def test_worker_refuses_to_start_without_its_servers() -> None:
    code, _, err = await run_cli("worker", env=clean_env())
    assert code != 0
    assert "DATABASE_URL is not set" in err and "REDIS_URL is not set" in err


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {"PORT": "9000", "MAX_BODY_BYTES": "2048", "RECONCILE_AFTER_SECONDS": "1.5", "HOST": " "}
    )
    assert (settings.port, settings.max_body_bytes, settings.reconcile_after_seconds) == (
        9000,
        2048,
        1.5,
    )
    assert settings.host == "127.0.0.1"  # blank means unset
    with pytest.raises(Exception, match="PORT must be a whole number"):
        Settings.from_env({"PORT": "eighty"})


async def test_email_parse_prints_the_mail_as_json() -> None:
    code, out, err = await run_cli(
        "email-parse",
        str(Path(__file__).parent / "mail" / "gb2312_attachment.eml"),
        env=clean_env(),
    )
    assert code == 0, err
    parsed = json.loads(out)
    for field in (
        "from", "to", "cc", "subject", "text", "html_sanitized", "message_id", "in_reply_to",
        "references", "attachments", "auto_submitted", "is_bounce",
    ):  # fmt: skip
        assert field in parsed
    assert all(set(a) >= {"filename", "content_type", "size"} for a in parsed["attachments"])
