"""The everyday commands: `agentwatch agents`, `agentwatch findings`, `agentwatch trace`.

They read a running agentwatch over its query API (so they work while `serve` holds the
data dir; see `_api_client` for where the API and its token come from) and print a
table or a tree with `rich`: coloured on a terminal, plain text when piped (whole
lines then, unless `COLUMNS` is set). `--json` prints the API's answer as it came.

Exit status: 0 (also when nothing matched), 2 bad arguments, an unreachable API, a
refused token or an unknown trace (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from agentwatch import _api_client
from agentwatch._api_client import ApiClient, ApiError
from api._time import parse_time

_MAX_LIMIT = 1000  # the API's largest page
_PIPED_WIDTH = 100_000  # piped output: never cut a line
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_SEVERITY_STYLES = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "dim"}
EVALUATION_EVENT = "gen_ai.evaluation.result"
MARKER_KEY = "agentwatch.marker"
_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


# -- arguments --------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    _api_client.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def add_agents_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="7d", help="RFC 3339, Unix time or '7d' ago (7d)")
    _common(parser)


def add_findings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--open", action="store_true", help="only the open ones")
    parser.add_argument("--kind", nargs="+", action="extend", metavar="K", help="only these kinds")
    parser.add_argument("--agent", metavar="A", help="only this agent's")
    parser.add_argument(
        "--since", default="24h", help="open at some point since then (default 24h)"
    )
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (50)")
    parser.add_argument(
        "--ids", "-v", action="store_true", help="full finding ids (default: 8 characters)"
    )
    _common(parser)


def add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace_id", metavar="TRACE_ID", help="32 hex characters")
    parser.add_argument(
        "--markers", action="store_true", help="include agentwatch_sdk heartbeats and pending"
    )
    _common(parser)


# -- running ----------------------------------------------------------------------------


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """`agentwatch agents|findings|trace`, from parsed arguments: the exit status."""
    environ = os.environ if environ is None else environ
    command: Callable[[ApiClient, argparse.Namespace, Console], None] = {
        "agents": agents,
        "findings": findings,
        "trace": trace,
    }[args.command]
    try:
        with ApiClient(_api_client.target_from_args(args, environ)) as client:
            command(client, args, make_console(environ))
    except ApiError as exc:
        print(f"agentwatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head` has read enough: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
    return 0


def make_console(environ: Mapping[str, str]) -> Console:
    console = Console(highlight=False, emoji=False, markup=False)
    if not console.is_terminal and not environ.get("COLUMNS"):
        console.width = _PIPED_WIDTH
    return console


def show(console: Console, renderable: RenderableType) -> None:
    """Print; piped, without the spaces that pad a table's lines to its width."""
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as capture:
        console.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in capture.get().splitlines()))
    console.file.flush()


def _note(command: str, message: str) -> None:
    print(f"agentwatch {command}: {message}", file=sys.stderr)


def _print_json(answer: Any) -> None:
    sys.stdout.write(json.dumps(answer, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _check_time(name: str, text: str) -> str:
    try:
        parse_time(text)
    except ValueError as exc:
        raise ApiError(f"{name}: {exc}") from None
    return text


def _table(*headers: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", no_wrap=True)
    return table


# -- agents -----------------------------------------------------------------------------


def agents(client: ApiClient, args: argparse.Namespace, console: Console) -> None:
    since = _check_time("--since", args.since)
    answer = client.get("/api/v1/agents", {"since": since})
    if args.json:
        _print_json(answer)
        return
    if not answer["agents"]:
        _note("agents", f"no agents seen since {since}")
        return
    numbers = ("RUNS", "FAILED", "SUCCESS", "TOKENS", "OPEN FINDINGS")
    table = _table("AGENT", "SERVICE", "OWNER", *numbers, "LAST SEEN", right=numbers)
    now = datetime.now(UTC)
    for agent in answer["agents"]:
        failed, open_findings = agent["failed_runs"], agent["open_findings"]
        table.add_row(
            Text(agent["name"], style="bold"),
            agent["service_name"] or "-",
            agent["owner"] or "-",
            f"{agent['runs']:,}",
            Text(f"{failed:,}", style="red" if failed else ""),
            percent(agent["success_rate"]),
            f"{agent['input_tokens'] + agent['output_tokens']:,}",
            Text(str(open_findings), style="bold red" if open_findings else ""),
            ago(agent["last_seen"], now),
        )
    show(console, table)


# -- findings ---------------------------------------------------------------------------


def findings(client: ApiClient, args: argparse.Namespace, console: Console) -> None:
    if not 1 <= args.limit <= _MAX_LIMIT:
        raise ApiError(f"--limit: give 1 to {_MAX_LIMIT}")
    params: dict[str, str | list[str]] = {
        "since": _check_time("--since", args.since),
        "limit": str(args.limit),
    }
    if args.open:
        params["state"] = "open"
    if args.kind:
        params["kind"] = list(args.kind)
    if args.agent:
        params["agent"] = args.agent
    answer = client.get("/api/v1/findings", params)
    if args.json:
        _print_json(answer)
        return
    found = answer["findings"]
    if not found:
        _note("findings", f"no {'open ' if args.open else ''}findings since {args.since}")
        return
    table = _table("OPENED", "STATE", "SEVERITY", "KIND", "AGENT", "TOOL", "SUMMARY", "ID")
    table.columns[6].no_wrap = False  # the one column cut to the terminal's width
    now = datetime.now(UTC)
    for finding in found:
        table.add_row(
            ago(finding["opened_at"], now),
            Text(finding["state"], style="bold" if finding["state"] == "open" else "dim"),
            Text(finding["severity"], style=_SEVERITY_STYLES.get(finding["severity"], "")),
            finding["kind"],
            finding["agent_name"] or "-",
            finding["tool_name"] or "-",
            Text(finding["summary"], no_wrap=True, overflow="ellipsis"),
            Text(finding["id"] if args.ids else finding["id"][:8], style="dim"),
        )
    show(console, table)
    if len(found) == args.limit:
        _note("findings", f"showing the newest {args.limit}; --limit N for more")


# -- trace ------------------------------------------------------------------------------


def trace(client: ApiClient, args: argparse.Namespace, console: Console) -> None:
    trace_id = args.trace_id.strip().lower()
    if not _TRACE_ID.match(trace_id):
        raise ApiError(f"{args.trace_id!r} is not a trace id (32 hex characters)")
    params = {"markers": "true"} if args.markers else {}
    answer = client.get(f"/api/v1/traces/{trace_id}", params, missing_ok=True)
    if answer is None:
        raise ApiError(f"trace {trace_id} not found at {client.url}")
    if args.json:
        _print_json(answer)
        return
    show(console, trace_header(answer, datetime.now(UTC)))
    show(console, trace_table(answer))


def trace_header(answer: Mapping[str, Any], now: datetime) -> Text:
    spans = answer["spans"]
    start = min(_time(s["start_time"]) for s in spans)
    end = max(_time(s["end_time"]) for s in spans)
    agent_spans = [s for s in spans if s["operation"] == "invoke_agent"] or spans
    agents = list(dict.fromkeys(s["agent_name"] for s in agent_spans if s["agent_name"]))
    errors = sum(1 for s in spans if s["is_error"])
    header = Text.assemble(("trace ", "bold"), (answer["trace_id"], "bold"))
    parts = [
        ", ".join(agents) or spans[0]["service_name"],
        f"started {start.strftime('%Y-%m-%d %H:%M:%S')}Z ({ago(start, now)})",
        duration(int((end - start).total_seconds() * 1e9)),
        f"{len(spans)} span{'s' if len(spans) != 1 else ''}",
    ]
    for part in parts:
        header.append("  " + part)
    header.append(f"  {errors} error{'s' if errors != 1 else ''}", style="red" if errors else "")
    return header


def trace_table(answer: Mapping[str, Any]) -> Table:
    """The tree as table rows: a span per row under its parent, its events beneath it."""
    spans = {s["span_id"]: s for s in answer["spans"]}
    table = _table("SPAN", "OPERATION", "DURATION", "STATUS", "TOOL/MODEL", "TOKENS IN/OUT")
    for column in (table.columns[0], table.columns[4]):  # narrow terminals cut these first
        column.no_wrap = False
    table.columns[0].min_width = 24
    table.columns[2].justify = table.columns[5].justify = "right"
    for guide, notes_guide, node in walk_tree(answer["tree"]):
        span = spans.get(node["span_id"])
        if span is None:
            continue
        table.add_row(*_span_cells(span, guide))
        for note, kind in span_notes(span):
            line = Text.assemble((notes_guide, "dim"), note, no_wrap=True, overflow="ellipsis")
            table.add_row(line, Text(kind, style="dim"))
    return table


def walk_tree(roots: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(the node's guide, the guide of lines under it, the node), depth first."""
    tee, last, bar = "├─ ", "└─ ", "│  "

    def nodes(level: list[dict[str, Any]], prefix: str, nested: bool) -> Iterator[Any]:
        for n, node in enumerate(level):
            is_last = n == len(level) - 1
            guide = prefix + ((last if is_last else tee) if nested else "")
            below = prefix + (("   " if is_last else bar) if nested else "")
            yield guide, below + (bar if node["children"] else "   "), node
            yield from nodes(node["children"], below, True)

    yield from nodes(roots, "", False)


def _span_cells(span: Mapping[str, Any], guide: str) -> list[Text]:
    marker = span["attributes"].get(MARKER_KEY, "")
    is_tool = span["tool_name"] and span["operation"] != "invoke_agent"
    tool_or_model = Text(
        span["tool_name"] if is_tool else span["model"], no_wrap=True, overflow="ellipsis"
    )
    if marker:  # an agentwatch_sdk heartbeat or pending marker: no duration, no status
        name = Text.assemble((guide, "dim"), (span["name"], "dim"), no_wrap=True)
        return [name, Text(f"({marker})", style="dim"), Text(""), Text(""), tool_or_model]
    error = span["is_error"]
    if error:
        status = Text(f"error {span['error_type']}".strip(), style="bold red")
    else:
        status = Text("ok", style="green")
    tokens = span["input_tokens"] or span["output_tokens"]
    return [
        Text.assemble(
            (guide, "dim"),
            (span["name"], "red" if error else ""),
            no_wrap=True,
            overflow="ellipsis",
        ),
        Text(span["operation"], style="cyan"),
        Text(duration(span["duration_ns"])),
        status,
        tool_or_model,
        Text(f"{span['input_tokens']:,}/{span['output_tokens']:,}" if tokens else ""),
    ]


def span_notes(span: Mapping[str, Any]) -> Iterator[tuple[Text, str]]:
    """The lines under a span: its events (evaluation scores in full) and error message."""
    messages = set()
    for event in span["events"]:
        attributes = event["attributes"]
        if event["name"] == EVALUATION_EVENT:
            yield Text.assemble("◆ ", evaluation_text(attributes)), "evaluation"
        elif event["name"] == "exception":
            message = attributes.get("exception.message", "")
            messages.add(message)
            what = ": ".join(p for p in (attributes.get("exception.type", ""), message) if p)
            yield Text("◆ " + what, style="red"), "exception"
        else:
            yield Text("◆ " + event["name"]), "event"
    if span["is_error"] and span["status_message"] and span["status_message"] not in messages:
        yield Text("◆ " + span["status_message"], style="red"), "status"


def evaluation_text(attributes: Mapping[str, str]) -> Text:
    text = Text(attributes.get("gen_ai.evaluation.name") or "evaluation", style="bold")
    value = attributes.get("gen_ai.evaluation.score.value")
    if value:
        text.append(f" {value}")
    label = attributes.get("gen_ai.evaluation.score.label")
    if label:
        text.append(f" ({label})")
    explanation = attributes.get("gen_ai.evaluation.explanation")
    if explanation:
        text.append(f" {' '.join(explanation.split())}", style="dim")
    return text


# -- formatting -------------------------------------------------------------------------


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)  # Python 3.11 takes "Z" and nanoseconds
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ago(moment: str | datetime | None, now: datetime) -> str:
    """`"just now"`, `"45s ago"`, `"4m ago"`, `"3h ago"`, `"2d ago"` (`"in 5s"` ahead)."""
    if not moment:
        return "-"
    seconds = (now - (_time(moment) if isinstance(moment, str) else moment)).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    size, unit = next(u for u in _UNITS if abs(seconds) >= u[0])
    amount = f"{int(abs(seconds) // size)}{unit}"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def duration(ns: int) -> str:
    """`"850ns"`, `"45µs"`, `"3.1ms"`, `"812ms"`, `"1.20s"`, `"2m10s"`, `"1h02m"`."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f}µs"
    if ns < 10_000_000:
        return f"{ns / 1e6:.1f}ms"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.0f}ms"
    seconds = ns / 1e9
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{second:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def percent(rate: float | None) -> str:
    if rate is None:
        return "-"
    return f"{rate * 100:.1f}".removesuffix(".0") + "%"
