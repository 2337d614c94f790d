"""The load benchmarks at a tiny size: each command runs as `python -m bench.<name>` against
the suite's servers, prints one JSON object, and every message it acknowledged is accounted
for. (Figures are not checked: this machine is shared; the lead measures on a quiet one.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.load_support import Member, slope_per_minute
from bench.soak import judge

ROOT = Path(__file__).resolve().parents[1]
# each command's own bound: it starts processes, so it is killed with all of them past it
COMMAND_TIMEOUT_SECONDS = 100
SUMMARY_KEYS = {"messages_per_second", "accepted", "p50_ms", "p99_ms", "errors"}
SPREAD_KEYS = {"p50_ms", "p99_ms", "max_ms"}


def run_bench(name: str, args: str, server_urls: tuple[str, str]) -> Any:
    """Run the command in a process group of its own; kill the group (the bench and the web,
    worker and floor processes it started) if it overruns or fails."""
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": server_urls[0],
        "BENCH_REDIS_URL": server_urls[1],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", *args.split()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
    finally:
        # the whole group, whatever is left of it (nothing, when the bench stopped its own)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out)


def check_spread(spread: dict[str, Any]) -> None:
    assert set(spread) == SPREAD_KEYS
    assert 0 <= spread["p50_ms"] <= spread["p99_ms"] <= spread["max_ms"]


def test_ingest_every_channel_with_two_web_processes(server_urls: tuple[str, str]) -> None:
    report = run_bench(
        "ingest",
        "--channel all --web 2 --concurrency 4 --seconds 0.3 --warmup 0.1",
        server_urls,
    )
    assert {"benchmark", "machine", "date", "channels", "settings"} <= set(report)
    assert "api" not in report  # several channels: only under "channels"
    assert set(report["channels"]) == {"web", "sms", "email"}
    assert report["settings"]["web_processes"] == 2
    for channel, figures in report["channels"].items():
        assert set(figures) == {"api", "floor", "ratio"}, channel
        for side in ("api", "floor"):
            summary = figures[side]
            assert SUMMARY_KEYS | {"acknowledged", "stored", "lost"} == set(summary)
            assert summary["errors"] == 0, (channel, side)
            assert 0 < summary["accepted"] <= summary["acknowledged"], (channel, side)
            # every message acknowledged (the Twilio webhook's signed texts and the piped
            # mails too) is in PostgreSQL
            assert summary["stored"] == summary["acknowledged"], (channel, side)
            assert summary["lost"] == 0
        assert figures["ratio"] > 0


def test_ingest_default_is_the_web_channel(server_urls: tuple[str, str]) -> None:
    report = run_bench("ingest", "--concurrency 2 --seconds 0.2 --warmup 0.1", server_urls)
    assert list(report["channels"]) == ["web"]
    # one channel: its figures at the top level too, as before
    assert report["api"] == report["channels"]["web"]["api"]
    assert report["floor"]["stored"] == report["floor"]["acknowledged"] > 0
    assert report["settings"]["channel"] == "web"


def test_assignment_latency_with_two_web_and_two_worker_processes(
    server_urls: tuple[str, str],
) -> None:
    report = run_bench(
        "assignment_latency",
        "--rates 20 --seconds 1 --warmup 0.3 --web 2 --workers 2 --agents 3",
        server_urls,
    )
    assert {"benchmark", "target", "product", "floor", "agents_over_capacity", "settings"} <= set(
        report
    )
    assert report["settings"]["web_processes"] == report["settings"]["worker_processes"] == 2
    assert report["target"]["met"] is None  # 200 msg/s was not offered
    assert report["agents_over_capacity"] == 0
    for side in ("product", "floor"):
        (figures,) = report[side]
        assert figures["offered_per_second"] == 20
        assert figures["sent"] == round(20 * 1.3)
        assert figures["errors"] == 0, figures["first_error"]
        # no message lost on the way: each acknowledged one stored and assigned
        assert figures["acknowledged"] == figures["sent"]
        assert figures["stored"] == figures["assigned"] == figures["acknowledged"]
        assert figures["unassigned"] == 0
        assert figures["measured"] == figures["sent"] - round(20 * 0.3)
        check_spread(figures["commit_to_assigned"])
    product = report["product"][0]
    check_spread(product["commit_to_event"])
    assert product["events_missing"] == product["events_repeated"] == 0


def test_soak_samples_each_process_and_loses_nothing(server_urls: tuple[str, str]) -> None:
    report = run_bench(
        "soak",
        "--minutes 0.05 --rate 4 --interval 0.5 --warmup 0.5",
        server_urls,
    )
    assert {"load", "counts", "processes", "verdict", "samples", "settings"} <= set(report)
    load, counts = report["load"], report["counts"]
    assert load["failed"] == {}, load["first_error"]
    started = load["done"]["start"]
    assert started == 12  # 4 a second for 3 s
    # each conversation lived its whole life
    for step in ("assigned", "inbox", "reply", "visitor_message", "history", "resolve"):
        assert load["done"][step] == started, step
    assert counts["inbound_acknowledged"] == counts["inbound_stored"] == 2 * started
    assert counts["inbound_lost"] == 0
    assert counts["replies_acknowledged"] == counts["replies_stored"] == started
    assert counts["replies_sent"] == started
    assert counts["resolved_acknowledged"] == counts["resolved_stored"] == started
    assert set(report["processes"]) == {"web-0", "worker-0"}
    for name, judged in report["processes"].items():
        assert judged["verdict"] in {"steady", "growing", "unknown"}
        # the probes found the process's own connections on both servers
        assert judged["pg_connections"]["max"] >= 1, name
        assert judged["redis_connections"]["max"] >= 1, name
        assert judged["rss_mib"]["first"] > 0
    assert report["verdict"] in {"steady", "growing", "unknown"}
    assert len(report["samples"]) >= 3
    for sample in report["samples"]:
        assert set(sample["processes"]) == {"web-0", "worker-0"}


# --- the verdict, on series made up --------------------------------------------------------


class _Process:
    pid = 1


def _samples(rss: list[float], pg: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "t": float(t * 10),
            "queued": 0,
            "processes": {
                "web-0": {"rss_mib": r, "fds": 20, "pg_connections": p, "redis_connections": 3}
            },
        }
        for t, (r, p) in enumerate(zip(rss, pg, strict=True))
    ]


def _judge(samples: list[dict[str, Any]], warmup: float) -> Any:
    member = Member("web-0", _Process())  # type: ignore[arg-type]
    return judge(samples, member, "web", warmup)


def test_slope_is_per_minute() -> None:
    assert slope_per_minute([(0, 1), (30, 2), (60, 3)]) == 2.0
    assert slope_per_minute([(0, 5)]) == 0.0


def test_warm_up_growth_is_not_judged_but_later_growth_is() -> None:
    # grows during the first 20 s, then flat: steady once the warm-up is left out
    flat_after = _samples([50, 80, 100, 100.2, 99.9, 100.1, 100], [2, 5, 6, 6, 6, 6, 6])
    assert _judge(flat_after, warmup=20)["verdict"] == "steady"
    assert _judge(flat_after, warmup=0)["verdict"] == "growing"
    # a leak: 10 MiB and a connection every 10 s
    leak = _samples([100 + 10 * n for n in range(8)], [2 + n for n in range(8)])
    judged = _judge(leak, warmup=10)
    assert judged["verdict"] == "growing"
    assert {w.split()[0] for w in judged["why"]} == {"rss_mib", "pg_connections"}
    # too short to say
    assert _judge(_samples([100, 100], [2, 2]), warmup=0)["verdict"] == "unknown"
