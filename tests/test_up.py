"""`contactcenter up --demo` on the embedded default, as a newcomer runs it: the loop by HTTP
and WebSocket against the real processes, a clean stop on SIGTERM, and data kept across a
restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from contactcenter.embedded import free_port
from tests.helpers import eventually

STARTUP_SECONDS = 90


def clean_env() -> dict[str, str]:
    """This machine's environment without server URLs or secret: the embedded default."""
    unset = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")
    return {k: v for k, v in os.environ.items() if k not in unset}


class Up:
    def __init__(self, process: asyncio.subprocess.Process, base: str, lines: list[str]) -> None:
        self.process = process
        self.base = base
        self.lines = lines

    def value(self, pattern: str) -> str:
        for line in self.lines:
            found = re.search(pattern, line)
            if found:
                return found.group(1)
        raise AssertionError(f"{pattern!r} not in the output:\n" + "\n".join(self.lines))

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        rest = await asyncio.wait_for(self.process.stdout.read(), 60)  # type: ignore[union-attr]
        self.lines.extend(rest.decode().splitlines())
        return await asyncio.wait_for(self.process.wait(), 30)


async def start_up(data_dir: Path, *extra: str) -> Up:
    port = free_port()
    env = clean_env()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "contactcenter",
        "up",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    lines: list[str] = []
    assert process.stdout is not None
    async with asyncio.timeout(STARTUP_SECONDS):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError("up exited during start:\n" + "".join(lines))
            lines.append(line.rstrip())
            if "contactcenter is up" in line:
                break
    return Up(process, f"http://127.0.0.1:{port}", lines)


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "data"


async def test_up_demo_runs_the_whole_loop_and_stops_cleanly(data_dir: Path) -> None:
    up = await start_up(data_dir, "--demo")
    try:
        assert "PostgreSQL: embedded" in "\n".join(up.lines)
        admin = up.value(r"ADMIN_TOKEN=(\S+)")
        agents = [up.value(rf"token {who}@demo.example\s+(\S+)") for who in ("alice", "bob")]
        async with aiohttp.ClientSession(up.base) as http:
            started = await http.post(
                "/v1/web/conversations",
                json={"text": "Hello from a real customer", "client_message_id": uuid.uuid4().hex},
            )
            assert started.status == 201
            chat = await started.json()
            conversation_id = chat["conversation_id"]
            visitor = await http.ws_connect(
                f"/v1/web/conversations/{conversation_id}/ws?token={chat['visitor_token']}"
            )

            async def assigned() -> int | None:
                answer = await http.get(
                    f"/v1/conversations/{conversation_id}",
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assignee: int | None = (await answer.json())["assignee_id"]
                return assignee

            await eventually(assigned, within=20)
            # one of the demo's two online agents got it, and sees it in their inbox
            holders = 0
            for token in agents:
                mine = await http.get(
                    "/v1/inbox?view=mine", headers={"Authorization": f"Bearer {token}"}
                )
                holders += conversation_id in [item["id"] for item in (await mine.json())["items"]]
            assert holders == 1

            reply = await http.post(
                f"/v1/conversations/{conversation_id}/replies",
                json={"text": "Hello! How can we help?"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert reply.status == 202
            pushed = await visitor.receive_json(timeout=20)
            assert pushed["message"]["text"] == "Hello! How can we help?"
            await visitor.close()
        # one `up` per data folder: a second one refuses, and leaves the first alone
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "contactcenter",
            "up",
            "--port",
            str(free_port()),
            "--data-dir",
            str(data_dir),
            env=clean_env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, refused = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode != 0
        assert b"another `contactcenter up` is running" in refused
    finally:
        code = await up.stop()
    assert code == 0
    assert up.lines[-1] == "contactcenter stopped"
    await assert_all_stopped(up, data_dir)

    # a second start finds the same data: the conversation is still there
    again = await start_up(data_dir, "--demo")
    try:
        admin = again.value(r"ADMIN_TOKEN=(\S+)")
        assert "Migrations: 0 applied" in "\n".join(again.lines)
        async with aiohttp.ClientSession(again.base) as http:
            answer = await http.get(
                f"/v1/conversations/{conversation_id}",
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert answer.status == 200
            texts = [m["body_text"] for m in (await answer.json())["messages"]]
            assert texts == ["Hello from a real customer", "Hello! How can we help?"]
    finally:
        # closing the terminal (SIGHUP) stops everything as cleanly as Ctrl-C
        assert await again.stop(signal.SIGHUP) == 0
    await assert_all_stopped(again, data_dir)


async def assert_all_stopped(up: Up, data_dir: Path) -> None:
    """Nothing of that `up` still runs: no web server, no PostgreSQL, no Redis."""
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(f"{up.base}/healthz")
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    redis_port = int(up.value(r"embedded on redis://127\.0\.0\.1:(\d+)/"))
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", redis_port)
