"""Ingest benchmark: spans/s accepted and stored, export latency, peak RSS.

Starts `agentwatch serve` (embedded chDB, fresh data dir) in its own process, drives it
with the shared pre-encoded OTLP load generator (`shared/tools/otlp_load.py`) in
another, and waits until every accepted span is confirmed stored by the store
(the `agentwatch_spans_stored_total` counter, which only moves after an insert
succeeded, so the spans are queryable).

    .venv/bin/python -m bench.ingest                      # gRPC, 2000 x 100 spans
    .venv/bin/python -m bench.ingest --transport http --requests 1000
    make bench ARGS="--requests 4000 --concurrency 8"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness import AgentwatchProcess

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOAD_TOOL = ROOT.parent / "shared" / "tools" / "otlp_load.py"


def counter(api: str, name: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def child_pids(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def peak_rss_mib(pid: int) -> dict[str, float]:
    """Peak RSS of the server and of its detector process (its one child)."""

    def peak(process: int) -> float:
        status = Path(f"/proc/{process}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    return {
        "server": peak(pid),
        "detectors": sum(peak(child) for child in child_pids(pid)),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, all its threads (ClickHouse's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(pid: int) -> dict[str, float]:
    """CPU seconds so far of the server and of its detector process (its one child)."""
    return {
        "server": cpu_seconds(pid),
        "detectors": sum(cpu_seconds(child) for child in child_pids(pid)),
    }


def run_load(args: argparse.Namespace, endpoints: dict[str, str]) -> dict[str, Any]:
    target = (
        ["--target", endpoints["otlp_grpc"]]
        if args.transport == "grpc"
        else ["--http", f"{endpoints['otlp_http']}/v1/traces"]
    )
    command = [
        sys.executable,
        str(args.load_tool),
        *target,
        "--requests",
        str(args.requests),
        "--spans-per-request",
        str(args.spans_per_request),
        "--concurrency",
        str(args.concurrency),
        "--retries",
        "20",
        "--json",
        "-",
        "--quiet",
    ]
    if args.gzip:
        command.append("--gzip")
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    result: dict[str, Any] = json.loads(out[out.index("{") :])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--spans-per-request", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--load-tool", type=Path, default=DEFAULT_LOAD_TOOL)
    args = parser.parse_args()
    if not args.load_tool.exists():
        raise SystemExit(f"load generator not found: {args.load_tool} (use --load-tool)")

    with tempfile.TemporaryDirectory(prefix="agentwatch-bench-") as tmp:
        server = AgentwatchProcess(Path(tmp) / "data", "--log-level", "warning").start()
        endpoints = server.endpoints
        assert server.proc is not None
        try:
            idle_cpu = cpu_by_process(server.proc.pid)
            load = run_load(args, endpoints)
            # The load tool pre-encodes its requests before it starts the clock; its
            # wall_s covers sending only. Storing ends when the last span is stored.
            load_ended = time.monotonic()
            accepted = load["accepted_spans"]
            walls = {}
            for stage, metric in (
                ("stored", "agentwatch_spans_stored_total"),
                ("detected", "agentwatch_detector_spans_total"),
            ):
                while counter(endpoints["api"], metric) < accepted:
                    if time.monotonic() - load_ended > 900:
                        raise SystemExit(f"spans were not all {stage} within 900 s")
                    time.sleep(0.05)
                walls[stage] = load["wall_s"] + (time.monotonic() - load_ended)
            inserts = counter(endpoints["api"], "agentwatch_store_write_seconds_count")
            rss = peak_rss_mib(server.proc.pid)
            busy_cpu = cpu_by_process(server.proc.pid)
        finally:
            server.stop()
    figures = {
        "transport": args.transport,
        "gzip": args.gzip,
        "spans": accepted,
        "spans_per_request": args.spans_per_request,
        "concurrency": args.concurrency,
        "accepted_spans_per_s": round(load["accepted_spans_per_s"]),
        "stored_spans_per_s": round(accepted / walls["stored"]),
        "detected_spans_per_s": round(accepted / walls["detected"]),
        "export_latency_p50_ms": round(load["latency_ms"]["p50"], 1),
        "export_latency_p99_ms": round(load["latency_ms"]["p99"], 1),
        "failed_requests": load["failed_requests"],
        # Each insert has a fixed cost (query analysis), so spans per insert matter.
        "store_inserts": round(inserts),
        "spans_per_insert": round(accepted / inserts) if inserts else None,
        "retries": load.get("retries", 0),
        "server_peak_rss_mib": round(sum(rss.values())),
        "peak_rss_mib_by_process": {process: round(mib) for process, mib in rss.items()},
        # CPU per span is steadier than spans/s on a shared host: it does not move
        # when a neighbour takes a core. Background merges still running are not in it.
        "cpu_us_per_span": {
            **{
                process: round((busy_cpu[process] - idle_cpu[process]) / accepted * 1e6, 1)
                for process in busy_cpu
            },
        },
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
