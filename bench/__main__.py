"""Every benchmark in one command, or one of them by name.

    python -m bench all [--short] [--only NAME,...] [--skip NAME,...] [--timeout SECONDS]
    python -m bench NAME [its own arguments]      # the same as python -m bench.NAME ...
    python -m bench list                          # the benchmarks, with their two sets of args

`all` runs each benchmark of BENCHES in turn, each as a process of its own (`python -m
bench.NAME` with the arguments of its row: the issue's sizes, or a small set with --short),
and prints one JSON object: the machine (cores, memory, the date, Python, the PostgreSQL and
Redis servers' versions), "benches" {name: the JSON it printed (a list when it printed one
object a line)}, "runs" {name: its arguments, seconds and exit status}, and "failed" and
"missing" (lists of names). A benchmark fails when it exits with an error, prints no JSON or
outlives --timeout (it is then stopped: SIGTERM to its process group, SIGKILL after a grace);
the command's exit status is then 1. Their logs go to stderr as they come.

BENCH_DATABASE_URL and BENCH_REDIS_URL name the servers every benchmark uses; without them
`all` starts an embedded PostgreSQL and Redis once, for all of them, and stops them at the
end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio

from contactcenter.embedded import die_with_parent

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class Bench:
    name: str  # bench/<name>.py
    full: tuple[str, ...]  # the sizes (mostly each module's defaults)
    short: tuple[str, ...]  # a small run: seconds, for CI and a quick look


BENCHES: tuple[Bench, ...] = (
    Bench("ingest", ("--channel", "all"), ("--seconds", "2", "--warmup", "0.5")),
    Bench(
        "assignment_latency",
        (),
        ("--rates", "20", "--seconds", "2", "--warmup", "0.5", "--drain", "10", "--agents", "5"),
    ),
    Bench("imap", (), ("--mails", "20", "--rate", "10")),
    Bench("routing", (), ("--conversations", "100", "--rules", "10")),
    Bench("sla_timers", (), ("--timers", "2000", "--due", "100", "--window", "3")),
    Bench(
        "inbox",
        (),
        (
            *("--messages", "20000", "--conversations", "2000", "--agents", "20"),
            *("--requests", "20", "--warmup", "10"),
        ),
    ),
    Bench("care", (), ("--contacts", "20000")),
    Bench("tiers", (), ("--contacts", "20000", "--repeat", "1")),
    Bench(
        "contact_import",
        (),
        (
            "--rows",
            "2000",
        ),
    ),
    Bench("soak", (), ("--minutes", "0.5", "--rate", "2", "--interval", "2")),
    Bench("chaos_queue", (), ("--messages", "60", "--rate", "20", "--kills", "2")),
    Bench(
        "chaos_store",
        (),
        ("--messages", "20", "--restarts", "1", "--kills", "1", "--lease", "expire"),
    ),
    Bench("fuzz_api", (), ("--examples", "2")),
)
# Being written now (issue 9) by other hands: until each one is in the repository, `all` runs
# without it, says so on stderr and lists it under "missing". Take a name out of here once its
# module is committed; a missing benchmark not named here fails the run.
NOT_YET_WRITTEN: frozenset[str] = frozenset()
NAMES = tuple(b.name for b in BENCHES)


def exists(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


# --- the machine -----------------------------------------------------------------------------


async def server_versions(database_url: str, redis_url: str) -> tuple[str, str]:
    """(PostgreSQL's version(), Redis's redis_version)."""
    conn = await asyncpg.connect(database_url)
    try:
        postgres = str(await conn.fetchval("SELECT version()"))
    finally:
        await conn.close()
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return postgres, str(info["redis_version"])


def machine(database_url: str, redis_url: str) -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kib = next(
        int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")
    )
    postgres, redis_version = asyncio.run(server_versions(database_url, redis_url))
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024**2, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": postgres,
        "redis": redis_version,
    }


# --- one benchmark in a process of its own ---------------------------------------------------


@dataclass
class Run:
    args: list[str]
    seconds: float
    exit_code: int | None  # None: stopped at the timeout
    result: Any
    error: str | None

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "args": self.args,
            "seconds": round(self.seconds, 1),
            "exit_code": self.exit_code,
        }
        if self.error is not None:
            facts["error"] = self.error
        return facts


def parse_output(text: str) -> Any:
    """The JSON a benchmark printed: one object, or several (one a line) as a list."""
    text = text.strip()
    if not text:
        raise ValueError("it printed nothing")
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = 0
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        found.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return found[0] if len(found) == 1 else found


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the benchmark's process group (it and the servers it started), SIGKILL
    after a grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_one(name: str, args: Sequence[str], env: dict[str, str], timeout: float) -> Run:
    argv = [sys.executable, "-m", f"bench.{name}", *args]
    logger.info("=== %s: %s", name, " ".join(argv[1:]))
    started = time.monotonic()
    # a group of its own, so that a timeout stops what it started too; its logs pass through
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(process)
        seconds = time.monotonic() - started
        return Run(list(args), seconds, None, None, f"stopped after the {timeout:g}s timeout")
    except BaseException:
        stop_group(process)
        raise
    seconds = time.monotonic() - started
    text = out.decode(errors="replace")
    try:
        result = parse_output(text)
    except ValueError as exc:
        return Run(list(args), seconds, process.returncode, None, f"no JSON on stdout: {exc}")
    error = None if process.returncode == 0 else f"exit status {process.returncode}"
    return Run(list(args), seconds, process.returncode, result, error)


# --- all of them -----------------------------------------------------------------------------


def chosen(only: Sequence[str], skip: Sequence[str]) -> list[Bench]:
    return [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]


def run_all(args: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_DATABASE_URL": database_url, "BENCH_REDIS_URL": redis_url}
    report: dict[str, Any] = {
        "machine": machine(database_url, redis_url),
        "mode": "short" if args.short else "full",
        "benches": {},
        "runs": {},
        "failed": [],
        "missing": [],
    }
    for bench in chosen(args.only, args.skip):
        if not exists(bench.name):
            if bench.name not in NOT_YET_WRITTEN:
                logger.error("=== %s: bench/%s.py is not there", bench.name, bench.name)
                report["failed"].append(bench.name)
                report["runs"][bench.name] = {"error": "the module is not there"}
                continue
            logger.warning(
                "=== %s: NOT RUN: bench/%s.py is not written yet (NOT_YET_WRITTEN in "
                "bench/__main__.py); its figures are missing from this report",
                bench.name,
                bench.name,
            )
            report["missing"].append(bench.name)
            continue
        run = run_one(bench.name, bench.short if args.short else bench.full, env, args.timeout)
        report["runs"][bench.name] = run.facts()
        if run.result is not None:
            report["benches"][bench.name] = run.result
        if run.error is not None:
            logger.error("=== %s failed: %s", bench.name, run.error)
            report["failed"].append(bench.name)
        else:
            logger.info("=== %s done in %.1fs", bench.name, run.seconds)
    return report


def names(text: str) -> list[str]:
    given = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(given) - set(NAMES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(NAMES)}")
    return given


def parse_all_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench all", description="Run every benchmark; print one JSON object."
    )
    parser.add_argument("--short", action="store_true", help="small sizes: seconds each")
    parser.add_argument("--only", type=names, default=[], help="comma-separated names")
    parser.add_argument("--skip", type=names, default=[], help="comma-separated names")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds each benchmark may take (default 3600, with --short 600)",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 600.0 if args.short else 3600.0
    return args


def main_all(argv: Sequence[str]) -> int:
    from bench.ingest import servers  # the embedded servers, as every benchmark starts them

    args = parse_all_args(argv)
    # SIGTERM ends the run as Ctrl-C does: the benchmark running is stopped with what it started
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with (
        tempfile.TemporaryDirectory(prefix="bench-all-") as tmp,
        servers(
            Path(tmp), os.environ.get("BENCH_DATABASE_URL"), os.environ.get("BENCH_REDIS_URL")
        ) as (database_url, redis_url),
    ):
        report = run_all(args, database_url, redis_url)
    print(json.dumps(report, indent=2))
    if report["missing"]:
        logger.warning("NOT RUN, not written yet: %s", ", ".join(report["missing"]))
    if report["failed"]:
        logger.error("FAILED: %s", ", ".join(report["failed"]))
        return 1
    return 0


def print_list() -> None:
    for bench in BENCHES:
        state = "" if exists(bench.name) else "  (not written yet)"
        print(f"{bench.name}{state}")
        print(f"    full:  {' '.join(bench.full) or '(its defaults)'}")
        print(f"    short: {' '.join(bench.short)}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(NAMES))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "all":
        return main_all(rest)
    if command == "list":
        print_list()
        return 0
    if command not in NAMES:
        print(f"unknown benchmark {command!r}; choose from all, list, {', '.join(NAMES)}")
        return 2
    # as `python -m bench.NAME ...` runs it (not every main() takes its arguments)
    module = importlib.import_module(f"bench.{command}")
    sys.argv = [f"{sys.argv[0]} {command}", *rest]
    module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
