"""`python -m bench all`: every benchmark's JSON in one object, with the machine's facts.

The short form of the smallest benchmark (inbox: seconds) runs as CI would run it, in a
process of its own against the suite's servers. Every row of the table is checked against its
benchmark's own argument parser, so a renamed flag shows here rather than in the lead's full
run; and a benchmark that is not there is reported as the table says (missing when it is
named as not written yet, failed when not).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import bench.__main__ as bench_all
from bench.__main__ import BENCHES, NOT_YET_WRITTEN, Bench, exists, parse_output

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0


def run_bench_all(args: Sequence[str], env: dict[str, str]) -> tuple[int, str, str]:
    """`python -m bench all ...` to its end: (exit status, stdout, stderr). On a timeout, or
    anything else, it is stopped with SIGTERM (it then stops the benchmark it runs, with the
    web process that one started), and killed if it does not end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "all", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.communicate(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_all_short_only_inbox_prints_one_json_object(server_urls: tuple[str, str]) -> None:
    admin_url, redis_url = server_urls
    env = {**os.environ, "BENCH_DATABASE_URL": admin_url, "BENCH_REDIS_URL": redis_url}

    status, out, err = run_bench_all(["--short", "--only", "inbox"], env)

    assert status == 0, err[-4000:]
    report = json.loads(out)
    assert set(report) == {"machine", "mode", "benches", "runs", "failed", "missing"}
    assert report["mode"] == "short"
    assert report["failed"] == [] and report["missing"] == []
    machine = report["machine"]
    assert set(machine) >= {"cores", "memory_gib", "date", "python", "postgres", "redis"}
    assert machine["cores"] == os.cpu_count()
    assert machine["postgres"].startswith("PostgreSQL ")
    # --only: the one benchmark, run with its short arguments
    assert list(report["benches"]) == ["inbox"]
    short = next(b.short for b in BENCHES if b.name == "inbox")
    run = report["runs"]["inbox"]
    assert run["args"] == list(short) and run["exit_code"] == 0
    inbox = report["benches"]["inbox"]
    assert inbox["benchmark"] == "inbox"
    assert inbox["data"]["conversations"] == 2000 and inbox["data"]["messages"] == 20000
    assert inbox["data"]["agents"] == 20
    assert inbox["rows_match"] is True
    for side in ("product", "floor"):
        for kind in ("inbox", "mine", "team", "unassigned", "all", "filtered", "detail"):
            figures = inbox[side][kind]
            assert figures["requests"] >= 20 and figures["p99_ms"] >= figures["p50_ms"] > 0
    assert isinstance(inbox["inbox_p99_ms"], float) and isinstance(inbox["inbox_met"], bool)


class Parsed(Exception):
    """Raised by a patched parser in place of going on to run the benchmark."""


def parse_with_main(module: ModuleType, args: Sequence[str], monkeypatch: Any) -> None:
    """For a benchmark whose main() parses sys.argv itself: parse, then stop."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *given: Any, **named: Any) -> Any:
        raise Parsed(original(self, *given, **named))

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        patch.setattr(sys, "argv", [module.__name__, *args])
        with pytest.raises(Parsed):
            module.main()


def test_every_row_is_accepted_by_its_benchmarks_parser(monkeypatch: Any) -> None:
    refused: list[str] = []
    for bench in BENCHES:
        if not exists(bench.name):
            assert bench.name in NOT_YET_WRITTEN, f"bench/{bench.name}.py is not there"
            continue
        module = importlib.import_module(f"bench.{bench.name}")
        for args in (bench.full, bench.short):
            try:
                if hasattr(module, "parse_args"):
                    module.parse_args(list(args))
                else:
                    parse_with_main(module, args, monkeypatch)
            except SystemExit:
                refused.append(f"{bench.name} {' '.join(args)}")
    assert refused == []


def test_a_benchmark_not_there_is_missing_when_named_so_else_failed(
    server_urls: tuple[str, str], monkeypatch: Any
) -> None:
    monkeypatch.setattr(bench_all, "BENCHES", (Bench("not_yet", (), ()), Bench("gone", (), ())))
    monkeypatch.setattr(bench_all, "NOT_YET_WRITTEN", frozenset({"not_yet"}))
    args = argparse.Namespace(short=True, only=[], skip=[], timeout=10.0)

    report = bench_all.run_all(args, *server_urls)

    assert report["missing"] == ["not_yet"]
    assert report["failed"] == ["gone"]
    assert report["benches"] == {}


def test_the_output_of_a_benchmark_is_one_object_or_a_list_of_them() -> None:
    assert parse_output('{\n  "a": 1\n}\n') == {"a": 1}
    assert parse_output('{"scenario": "x"}\n{"scenario": "y"}\n') == [
        {"scenario": "x"},
        {"scenario": "y"},
    ]
    with pytest.raises(ValueError):
        parse_output("")
    with pytest.raises(ValueError):
        parse_output("not json")
