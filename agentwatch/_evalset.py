"""`agentwatch export-evalset`: the runs the detectors flagged, as JSONL evaluation cases.

It reads the query API over HTTP (so it works while `serve` holds the data dir):

    --finding ID   the finding's trace, plus the traces its evidence names
                   (`trace_id`, `example_trace_id`, `trace_ids`, `example_trace_ids`)
    --agent NAME   every finding of the agent open at some point in [--since, --until]
                   (default: the last 24 h), their traces, de-duplicated

One line per trace:

    {"case_id", "agent", "service", "run_id", "trace_id", "started_at", "input", "output",
     "tool_calls": [{"name", "arguments", "result", "status", "error_type", "span_id"}],
     "llm_calls": [{"model", "input_tokens", "output_tokens"}],
     "findings": [{"id", "kind", "severity", "summary", "evidence"}],
     "scores": [{"name", "score", "label", "explanation", "span_id", "source"}]}

`input` / `output`: the first agent span's (invoke_agent, OpenInference AGENT, Traceloop
agent), else the first LLM span's input and the last LLM span's output; null when no
span captured one. Read, first found wins: `gen_ai.input.messages` / `gen_ai.output.messages`,
`gen_ai.prompt` / `gen_ai.completion` (also OpenLLMetry's indexed `gen_ai.prompt.0.content`),
`input.value` / `output.value`, `traceloop.entity.input` / `traceloop.entity.output`.
A value that is JSON is parsed. A case's findings are those that name its trace (the
selected ones and any other finding on the trace); its scores are the trace's
`gen_ai.evaluation.result` span events (`source: span_event`) and log records (`log`).

Exit status: 0 cases written, 1 nothing to write (the file is left alone), 2 bad
arguments or no usable API (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from agentwatch import _api_client
from agentwatch._api_client import ApiClient, ApiError, ApiTarget
from api._time import parse_time

if TYPE_CHECKING:
    import httpx

_PROG = "agentwatch export-evalset"
# ingest._conventions.LLM_OPERATIONS (a test keeps them equal), without importing the
# ingest package (the store, ~0.2 s) into a command that only reads the API.
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
DEFAULT_SINCE = "24h"
EVALUATION_EVENT = "gen_ai.evaluation.result"
# Evidence keys naming the runs a finding is about (one id, or a list of them).
EVIDENCE_TRACE_KEYS = ("trace_id", "example_trace_id", "trace_ids", "example_trace_ids")
# Where a span captured its input, output, tool arguments and result: first found wins.
_INPUT_KEYS = ("gen_ai.input.messages", "gen_ai.prompt", "input.value", "traceloop.entity.input")
_OUTPUT_KEYS = (
    "gen_ai.output.messages",
    "gen_ai.completion",
    "output.value",
    "traceloop.entity.output",
)
_TOOL_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input")
_TOOL_RESULT_KEYS = ("gen_ai.tool.call.result", "output.value", "traceloop.entity.output")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_PAGE = 1000  # the API's largest page


# Bad arguments, or no usable API: exit status 2; the message is one line.
ExportError = ApiError


@dataclass(frozen=True)
class ExportOptions:
    finding_id: str | None
    agent: str | None
    since: datetime | None  # --agent only
    until: datetime | None
    out: str  # a path, or "-" for stdout
    api: str
    api_source: str  # where the address came from, for the error message
    token: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finding", metavar="ID", help="the runs one finding names")
    parser.add_argument("--agent", metavar="NAME", help="the runs of every finding of an agent")
    parser.add_argument(
        "--since", help=f"with --agent: RFC 3339, Unix time or '1h' ago (default {DEFAULT_SINCE})"
    )
    parser.add_argument("--until", help="with --agent (default now)")
    parser.add_argument("--out", default="-", metavar="FILE", help="JSONL file, or - (stdout)")
    _api_client.add_arguments(parser)


def options_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> ExportOptions:
    """Check the arguments and fill in defaults; a problem is an ExportError."""
    if bool(args.finding) == bool(args.agent):
        raise ExportError("give exactly one of --finding ID and --agent NAME")
    if args.finding and (args.since or args.until):
        raise ExportError("--since and --until go with --agent, not --finding")
    since = until = None
    if args.agent:
        since = _time_argument("--since", args.since or DEFAULT_SINCE)
        until = _time_argument("--until", args.until) if args.until else None
        if until is not None and until < since:
            raise ExportError("--until is before --since")
    if args.out != "-" and not Path(args.out).resolve().parent.is_dir():
        raise ExportError(f"--out {args.out}: no such directory")
    target = _api_client.target_from_args(args, environ)
    return ExportOptions(
        finding_id=args.finding,
        agent=args.agent,
        since=since,
        until=until,
        out=args.out,
        api=target.url,
        api_source=target.source,
        token=target.token,
    )


def _time_argument(name: str, text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ExportError(f"{name}: {exc}") from None


class QueryClient(ApiClient):
    """The few query API calls the export needs; every failure is an ExportError."""

    def __init__(self, options: ExportOptions, transport: httpx.BaseTransport | None = None):
        super().__init__(ApiTarget(options.api, options.api_source, options.token), transport)

    def finding(self, finding_id: str) -> dict[str, Any]:
        found = self.get(f"/api/v1/findings/{quote(finding_id, safe='')}", missing_ok=True)
        if found is None:
            raise ExportError(f"no finding {finding_id} at {self.url}")
        return dict(found)

    def findings(self, **params: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/findings", {**params, "limit": str(_PAGE)})
        return list(answer["findings"])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        found = self.get(f"/api/v1/traces/{trace_id}", missing_ok=True)
        return dict(found) if found is not None else None

    def evaluation_logs(self, trace_id: str) -> list[dict[str, Any]]:
        params = {"trace_id": trace_id, "event_name": EVALUATION_EVENT, "limit": str(_PAGE)}
        return list(self.get("/api/v1/logs", params)["logs"])


# -- which runs ------------------------------------------------------------------------


def trace_ids_of(finding: Mapping[str, Any]) -> list[str]:
    """The runs a finding names: its trace, then those in its evidence, in order."""
    named: list[Any] = [finding.get("trace_id")]
    evidence = finding.get("evidence")
    if isinstance(evidence, Mapping):
        for key in EVIDENCE_TRACE_KEYS:
            value = evidence.get(key)
            named.extend(value if isinstance(value, list) else [value])
    ids = [value.lower() for value in named if isinstance(value, str)]
    return list(dict.fromkeys(i for i in ids if _TRACE_ID.match(i)))


def runs_of(
    findings: Iterable[dict[str, Any]],
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """trace id -> the findings naming it (first named first); and findings naming none."""
    runs: dict[str, list[dict[str, Any]]] = {}
    unnamed: list[str] = []
    for finding in findings:
        trace_ids = trace_ids_of(finding)
        if not trace_ids:
            unnamed.append(describe(finding))
        for trace_id in trace_ids:
            runs.setdefault(trace_id, []).append(finding)
    return runs, unnamed


def describe(finding: Mapping[str, Any]) -> str:
    signal = (finding.get("evidence") or {}).get("signal")
    kind = f"{finding.get('kind')}, {signal}" if signal else str(finding.get("kind"))
    return f"finding {finding.get('id')} ({kind})"


def select_findings(
    client: QueryClient, options: ExportOptions, err: TextIO
) -> list[dict[str, Any]]:
    if options.finding_id is not None:
        return [client.finding(options.finding_id)]
    since = options.since or parse_time(DEFAULT_SINCE)
    found = client.findings(agent=options.agent or "", since=since.isoformat())
    if len(found) == _PAGE:
        err.write(f"{_PROG}: only the newest {_PAGE} findings are exported\n")
    if options.until is None:
        return found
    until = options.until
    return [f for f in found if parse_time(f["opened_at"]) <= until]


# -- one case --------------------------------------------------------------------------


def parse_value(text: str | None) -> Any:
    """An attribute's value: parsed when it is JSON, else the text; None when absent."""
    if text is None or text == "":
        return None
    if text.lstrip()[:1] in ("{", "[", '"'):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _indexed_messages(attributes: Mapping[str, str], prefix: str) -> list[dict[str, Any]]:
    """OpenLLMetry's flattened messages: `gen_ai.prompt.0.role`, `gen_ai.prompt.0.content`."""
    messages: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        index, dot, field = key.removeprefix(prefix + ".").partition(".")
        if key.startswith(prefix + ".") and dot and index.isdigit():
            messages.setdefault(int(index), {})[field] = parse_value(value)
    return [messages[index] for index in sorted(messages)]


def captured(attributes: Mapping[str, str], keys: tuple[str, ...]) -> Any:
    """The first of `keys` a span captured (with `gen_ai.prompt.N.*` after `gen_ai.prompt`)."""
    for key in keys:
        value = parse_value(attributes.get(key))
        if value is None and key in ("gen_ai.prompt", "gen_ai.completion"):
            value = _indexed_messages(attributes, key) or None
        if value is not None:
            return value
    return None


def _input_output(spans: list[dict[str, Any]]) -> tuple[Any, Any]:
    agent = next((s for s in spans if s["operation"] == "invoke_agent"), None)
    llm = [s for s in spans if s["operation"] in LLM_OPERATIONS]
    own_input = captured(agent["attributes"], _INPUT_KEYS) if agent else None
    own_output = captured(agent["attributes"], _OUTPUT_KEYS) if agent else None
    inputs = (captured(s["attributes"], _INPUT_KEYS) for s in llm)
    outputs = (captured(s["attributes"], _OUTPUT_KEYS) for s in reversed(llm))
    if own_input is None:
        own_input = next((value for value in inputs if value is not None), None)
    if own_output is None:
        own_output = next((value for value in outputs if value is not None), None)
    return own_input, own_output


def _tool_call(span: Mapping[str, Any]) -> dict[str, Any]:
    attributes = span["attributes"]
    return {
        "name": span["tool_name"],
        "arguments": captured(attributes, _TOOL_ARGUMENT_KEYS),
        "result": captured(attributes, _TOOL_RESULT_KEYS),
        "status": "error" if span["is_error"] else "ok",
        "error_type": span["error_type"] or None,
        "span_id": span["span_id"],
    }


def _score(attributes: Mapping[str, str], span_id: str, source: str) -> dict[str, Any]:
    try:
        score: float | None = float(attributes.get("gen_ai.evaluation.score.value", ""))
    except ValueError:
        score = None
    return {
        "name": attributes.get("gen_ai.evaluation.name") or None,
        "score": score if score is not None and math.isfinite(score) else None,
        "label": attributes.get("gen_ai.evaluation.score.label") or None,
        "explanation": attributes.get("gen_ai.evaluation.explanation") or None,
        "span_id": span_id or None,
        "source": source,
    }


def build_case(
    trace: Mapping[str, Any],
    findings: Iterable[Mapping[str, Any]],
    logs: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """One evaluation case from a trace (as `/api/v1/traces/{id}` answers), its findings
    and its evaluation log records (as `/api/v1/logs` answers, any order)."""
    spans: list[dict[str, Any]] = sorted(trace["spans"], key=lambda s: s["start_time"])
    agent = next((s for s in spans if s["operation"] == "invoke_agent"), spans[0])
    first_input, last_output = _input_output(spans)
    scores = [
        _score(event["attributes"], span["span_id"], "span_event")
        for span in spans
        for event in span["events"]
        if event["name"] == EVALUATION_EVENT
    ]
    scores += [
        _score(log["attributes"], log["span_id"], "log")
        for log in sorted(logs, key=lambda record: record["time"])
    ]
    return {
        "case_id": trace["trace_id"],
        "agent": agent["agent_name"],
        "service": agent["service_name"],
        "run_id": agent["run_id"],
        "trace_id": trace["trace_id"],
        "started_at": spans[0]["start_time"],
        "input": first_input,
        "output": last_output,
        "tool_calls": [
            _tool_call(s) for s in spans if s["tool_name"] and s["operation"] != "invoke_agent"
        ],
        "llm_calls": [
            {
                "model": s["model"],
                "input_tokens": s["input_tokens"],
                "output_tokens": s["output_tokens"],
            }
            for s in spans
            if s["operation"] in LLM_OPERATIONS
        ],
        "findings": [
            {key: finding[key] for key in ("id", "kind", "severity", "summary", "evidence")}
            for finding in findings
        ],
        "scores": scores,
    }


# -- the command -----------------------------------------------------------------------


def collect_cases(client: QueryClient, options: ExportOptions, err: TextIO) -> list[dict[str, Any]]:
    findings = select_findings(client, options, err)
    if not findings:
        err.write(f"{_PROG}: no findings of agent {options.agent} in the time range\n")
    runs, unnamed = runs_of(findings)
    for what in unnamed:
        err.write(f"{_PROG}: {what} names no runs\n")
    cases = []
    for trace_id, selected in runs.items():
        trace = client.trace(trace_id)
        if trace is None:
            err.write(f"{_PROG}: trace {trace_id} is not stored (expired?); skipped\n")
            continue
        on_trace = client.findings(trace_id=trace_id)
        ids = {f["id"] for f in selected}
        others = [f for f in on_trace if f["id"] not in ids]
        cases.append(build_case(trace, [*selected, *others], client.evaluation_logs(trace_id)))
    return cases


def write_cases(cases: list[dict[str, Any]], out: str, stdout: TextIO) -> None:
    lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    if out == "-":
        stdout.write(lines)
        stdout.flush()
        return
    path = Path(out)
    temporary = ""
    try:  # all or nothing: a half-written evaluation set is worse than none
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.resolve().parent, prefix=f".{path.name}.", delete=False
        ) as handle:
            temporary = handle.name
            handle.write(lines)
        os.replace(temporary, path)
    except OSError as exc:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None


def export(
    options: ExportOptions,
    transport: httpx.BaseTransport | None = None,
    stdout: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Write the cases; the exit status (ExportError propagates, for the caller's line)."""
    stdout, err = stdout or sys.stdout, err or sys.stderr
    client = QueryClient(options, transport)
    try:
        cases = collect_cases(client, options, err)
    finally:
        client.close()
    if not cases:
        err.write(f"{_PROG}: nothing to write\n")
        return 1
    write_cases(cases, options.out, stdout)
    where = "stdout" if options.out == "-" else options.out
    err.write(f"{_PROG}: wrote {len(cases)} case{'s' if len(cases) != 1 else ''} to {where}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """`agentwatch export-evalset`, from parsed arguments: the exit status."""
    try:
        return export(options_from_args(args, os.environ))
    except ExportError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
