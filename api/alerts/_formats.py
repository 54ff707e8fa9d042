"""What each receiver is sent about a finding: pure functions, no I/O.

- Slack: an incoming-webhook message, Block Kit blocks within Slack's limits (header
  text ≤ 150 chars, section text ≤ 3000, ≤ 10 fields of ≤ 2000, ≤ 10 context elements,
  ≤ 50 blocks), with `&`, `<` and `>` escaped in every mrkdwn text.
- PagerDuty: an Events API v2 event; the dedup key is the finding's id, so a resolve
  (which carries only routing_key, event_action and dedup_key) closes the alert its
  trigger opened, and a repeat lands on the same alert.
- Webhook: compact JSON with sorted keys, signed per Standard Webhooks (`webhook-id`,
  `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`).

Lengths are counted in UTF-16 code units, which is never fewer than characters, so
a limit holds whichever way the receiver counts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

import orjson

from detectors import Finding
from detectors._common import human_duration, iso

Event = Literal["trigger", "resolve", "repeat", "test"]

# Slack Block Kit limits (docs.slack.dev/reference/block-kit).
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELDS_MAX = 10
SLACK_FIELD_MAX = 2000
SLACK_CONTEXT_ELEMENTS_MAX = 10
SLACK_BLOCKS_MAX = 50
PAGERDUTY_SUMMARY_MAX = 1024
EVIDENCE_FIELDS_MAX = 8
_VALUE_MAX = 200

_NS = 1_000_000_000
_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
_EMOJI = {
    "critical": ":red_circle:",
    "error": ":large_orange_circle:",
    "warning": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
_WEBHOOK_TYPES = {
    "trigger": "finding.opened",
    "resolve": "finding.resolved",
    "repeat": "finding.repeated",
    "test": "finding.test",
}
# Evidence shown first for each kind; the rest follows in the detector's order.
# fmt: off
_HIGHLIGHTS = {
    "tool_failure_spike": ("short_rate", "baseline_rate", "short_failures", "short_calls",
                           "long_rate", "short_window_s", "burn_rate", "p_value"),
    "zombie_run": ("idle_s", "threshold_s", "last_activity_at", "stuck_span_id"),
    "runaway_loop": ("count", "steps", "tokens", "running_s", "reason"),
    "quality_drift": ("evaluation_name", "recent_mean", "reference_mean", "drop", "p_value",
                      "auc", "threshold_auc", "recent_runs"),
    "change_point": ("change", "from", "to", "runs_before", "share_of_runs", "runs_since"),
}
# Shown elsewhere in the message (fields, summary, links) or not for people.
_NOT_SHOWN = frozenset({"agent_name", "tool_name", "trace_id", "run_id", "example_trace_id",
                        "as_of", "description", "resolution", "signal"})
# fmt: on
_LABELS = {
    "short_rate": "Failure rate",
    "baseline_rate": "Baseline rate",
    "short_failures": "Failures",
    "short_calls": "Calls",
    "long_rate": "Failure rate (long window)",
    "burn_rate": "Burn rate",
    "p_value": "p-value",
    "idle_s": "Idle for",
    "threshold_s": "Idle threshold",
    "running_s": "Running for",
    "stuck_span_id": "Stuck span",
    "auc": "ROC AUC",
    "threshold_auc": "AUC threshold",
}


@dataclass(frozen=True)
class Links:
    """Where a finding can be looked at: the agentwatch API and Grafana dashboards."""

    api_url: str | None = None
    grafana_url: str | None = None

    def for_finding(self, finding: Finding) -> list[tuple[str, str]]:
        """(label, url) pairs: trace and finding in the API, agent and findings dashboards."""
        links: list[tuple[str, str]] = []
        if self.api_url:
            api = self.api_url.rstrip("/")
            if finding.trace_id:
                links.append(("Trace", f"{api}/api/v1/traces/{quote(finding.trace_id, safe='')}"))
            links.append(("Finding", f"{api}/api/v1/findings/{quote(finding.id, safe='')}"))
        if self.grafana_url:
            grafana = self.grafana_url.rstrip("/")
            # The incident's time range: from an hour before it opened to an hour after
            # it resolved (or now).
            start_ms = finding.opened_at_ns // 1_000_000 - 3_600_000
            end = (
                str(finding.resolved_at_ns // 1_000_000 + 3_600_000)
                if finding.resolved_at_ns
                else "now"
            )
            if finding.agent_name:
                query = urlencode({"var-agent": finding.agent_name, "from": start_ms, "to": end})
                links.append(("Agent dashboard", f"{grafana}/d/agentwatch-agent?{query}"))
            query = urlencode({"from": start_ms, "to": end})
            links.append(("Findings dashboard", f"{grafana}/d/agentwatch-findings?{query}"))
        return links


# -- Slack ----------------------------------------------------------------------------


def slack_message(finding: Finding, event: Event, links: Links) -> dict[str, Any]:
    """Slack incoming-webhook JSON: a `text` fallback and Block Kit `blocks`."""
    header = _header(finding, event)
    blocks: list[dict[str, Any]] = [
        _header_block(header),
        _section(_summary_text(finding, event)),
        {"type": "section", "fields": _base_fields(finding)},
    ]
    evidence = _evidence_fields(finding)
    if evidence:
        blocks.append({"type": "section", "fields": evidence})
    blocks.append({"type": "context", "elements": _context(finding, links)})
    return _message(f"{header}: {finding.summary}", blocks)


def group_slack_message(findings: Sequence[Finding], links: Links) -> dict[str, Any]:
    """Findings of one agent opened close together, as one Slack message."""
    if not findings:
        raise ValueError("group_slack_message needs at least one finding")
    if len(findings) == 1:
        return slack_message(findings[0], "trigger", links)
    ordered = sorted(
        findings, key=lambda f: (-_SEVERITY_RANK.get(f.severity, 0), f.opened_at_ns, f.id)
    )
    agents = {f.agent_name for f in findings}
    who = (next(iter(agents)) or "all agents") if len(agents) == 1 else "several agents"
    title = f"{len(findings)} findings for {who}"
    room = SLACK_BLOCKS_MAX - 1  # after the header
    shown = ordered if len(ordered) <= room else ordered[: room - 1]
    blocks = [_header_block(_cut(title, SLACK_HEADER_MAX))]
    blocks.extend(_section(_group_entry(f, links)) for f in shown)
    if len(shown) < len(ordered):
        more = f"…and {len(ordered) - len(shown)} more: see the findings in agentwatch."
        blocks.append({"type": "context", "elements": [_text(more)]})
    kinds = ", ".join(sorted({_kind_label(f.kind) for f in findings}))
    return _message(f"{title}: {kinds}", blocks)


def _message(fallback: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    # `text` is what notifications show; no link previews of the API's JSON.
    return {
        "text": _mrkdwn(fallback, SLACK_TEXT_MAX),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _header(finding: Finding, event: Event) -> str:
    what = f"{_kind_label(finding.kind)} · {finding.agent_name or 'all agents'}"
    emoji = _EMOJI.get(finding.severity, ":white_circle:")
    text = {
        "trigger": f"{emoji} {what}",
        "resolve": f":white_check_mark: Resolved: {what}",
        "repeat": f"{emoji} Still open: {what}",
        "test": f":test_tube: Test: {what}",
    }.get(event)
    if text is None:
        raise ValueError(f"unknown alert event {event!r}")
    return _cut(text, SLACK_HEADER_MAX)


def _summary_text(finding: Finding, event: Event) -> str:
    note = ""
    if event == "resolve" and finding.resolved_at_ns:
        took = human_duration((finding.resolved_at_ns - finding.opened_at_ns) / _NS)
        reason = str(finding.evidence.get("resolution") or "")
        note = _mrkdwn(f"Resolved after {took}" + (f": {reason}" if reason else ""), 500)
        note = f"\n_{note}_"
    elif event == "test":
        note = "\n_A test notification from agentwatch: nothing is wrong._"
    return _mrkdwn(finding.summary, SLACK_TEXT_MAX - _units(note)) + note


def _base_fields(finding: Finding) -> list[dict[str, str]]:
    texts = [
        ("Severity", finding.severity),
        ("Agent", finding.agent_name or "all agents"),
        ("Tool", finding.tool_name),
        ("Service", finding.service_name),
        ("Tenant", finding.tenant),
    ]
    fields = [(label, _mrkdwn(text, _VALUE_MAX)) for label, text in texts if text]
    fields.append(("Since", _slack_date(finding.opened_at_ns)))
    if finding.resolved_at_ns:
        fields.append(("Resolved", _slack_date(finding.resolved_at_ns)))
    return [_field(label, value) for label, value in fields]


def _evidence_fields(finding: Finding) -> list[dict[str, str]]:
    evidence = finding.evidence
    first = [k for k in _HIGHLIGHTS.get(finding.kind, ()) if k in evidence]
    keys = first + [k for k in evidence if k not in first]
    fields: list[dict[str, str]] = []
    for key in keys:
        if len(fields) == EVIDENCE_FIELDS_MAX:
            break
        if key in _NOT_SHOWN:
            continue
        value = _human(key, evidence[key])
        if value is not None:
            fields.append(_field(_label(key), value))
    return fields


def _context(finding: Finding, links: Links) -> list[dict[str, str]]:
    elements: list[dict[str, str]] = []
    parts: list[str] = []
    for label, url in links.for_finding(finding):
        part = f"<{_escape(url)}|{label}>"
        if _units(" · ".join([*parts, part])) > SLACK_TEXT_MAX:
            break
        parts.append(part)
    if parts:
        elements.append(_text(" · ".join(parts)))
    ident = f"`{_escape(finding.kind)}` · finding `{finding.id}` · v{finding.version}"
    elements.append(_text(_cut(ident, SLACK_TEXT_MAX)))
    return elements[:SLACK_CONTEXT_ELEMENTS_MAX]


def _group_entry(finding: Finding, links: Links) -> str:
    emoji = _EMOJI.get(finding.severity, ":white_circle:")
    first = (
        f"{emoji} *{_escape(_kind_label(finding.kind))}* · {_escape(finding.severity)}"
        f" · since {_slack_date(finding.opened_at_ns)}"
    )
    if finding.tool_name:
        first += f" · tool {_mrkdwn(finding.tool_name, _VALUE_MAX)}"
    last = " · ".join(f"<{_escape(url)}|{label}>" for label, url in links.for_finding(finding))
    budget = SLACK_TEXT_MAX - _units(first) - _units(last) - 2
    if budget < 200:  # absurdly long link URLs: drop the links, keep the summary
        last, budget = "", SLACK_TEXT_MAX - _units(first) - 1
    return "\n".join(part for part in (first, _mrkdwn(finding.summary, budget), last) if part)


def _header_block(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _text(text)}


def _text(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _field(label: str, value: str) -> dict[str, str]:
    return _text(_cut(f"*{label}*\n{value}", SLACK_FIELD_MAX))


def _kind_label(kind: str) -> str:
    return kind.replace("_", " ").capitalize()


def _label(key: str) -> str:
    if key in _LABELS:
        return _LABELS[key]
    name = key.removesuffix("_s").removesuffix("_at")
    return _escape(name.replace("_", " ").capitalize())


def _human(key: str, value: Any) -> str | None:
    """`value` of evidence `key` for people; None for what is not a shown scalar."""
    if value is None or isinstance(value, dict | list | tuple | set):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(key, value)
    text = str(value)
    if not text:
        return None
    if key.endswith("_at"):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return _slack_date(int(moment.timestamp() * _NS))
    return _mrkdwn(text, _VALUE_MAX)


def _number(key: str, value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return str(value)
    if key == "burn_rate":
        return f"{value:g}x"
    if key.endswith("_rate") or key.startswith("share_"):
        return _percent(value)
    if key.endswith("_s"):
        return human_duration(value) if value >= 10 else f"{value:.1f}".removesuffix(".0") + "s"
    if key == "p_value":
        return f"{value:.2g}"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def _percent(rate: float) -> str:
    pct = rate * 100
    if abs(pct) >= 10:
        text = f"{pct:.0f}"
    elif abs(pct) >= 1:
        text = f"{pct:.1f}".removesuffix(".0")
    else:
        text = f"{pct:.2g}"
    return f"{text}%"


def _slack_date(ns: int) -> str:
    """A date token Slack shows in the reader's time zone, with a UTC fallback."""
    seconds = ns // _NS
    fallback = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{seconds}^{{date_short_pretty}} {{time}}|{fallback}>"


def _escape(text: str) -> str:
    """Slack's control characters as entities (& first, so entities are not doubled)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str, limit: int) -> str:
    """`text` escaped and cut to `limit`, never through an entity."""
    escaped = _escape(text)
    if _units(escaped) <= limit:
        return escaped
    cut = _cut(escaped, limit)[:-1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


# -- PagerDuty --------------------------------------------------------------------------


def pagerduty_event(
    finding: Finding, event: Event, routing_key: str, links: Links
) -> dict[str, Any]:
    """A PagerDuty Events API v2 body; a resolve carries only what the API needs."""
    if event not in _WEBHOOK_TYPES:
        raise ValueError(f"unknown alert event {event!r}")
    dedup_key = f"agentwatch-{finding.id}"
    if event == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    summary = f"[test] {finding.summary}" if event == "test" else finding.summary
    payload: dict[str, Any] = {
        "summary": _cut(summary or finding.kind, PAGERDUTY_SUMMARY_MAX),
        "source": finding.service_name or finding.agent_name or "agentwatch",
        "severity": finding.severity if finding.severity in _SEVERITY_RANK else "error",
        "timestamp": iso(finding.opened_at_ns),
        "class": finding.kind,
        "custom_details": _custom_details(finding),
    }
    if finding.agent_name:
        payload["component"] = finding.agent_name
    if finding.service_name:
        payload["group"] = finding.service_name
    found = links.for_finding(finding)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "agentwatch",
    }
    if found:
        body["links"] = [{"href": url, "text": label} for label, url in found]
        by_label = dict(found)
        body["client_url"] = by_label.get("Finding") or by_label.get("Findings dashboard")
    return body


def _custom_details(finding: Finding) -> dict[str, Any]:
    details = _json_safe(finding.evidence)
    details.update(
        (key, value)
        for key, value in (
            ("finding_id", finding.id),
            ("kind", finding.kind),
            ("tenant", finding.tenant),
            ("agent_name", finding.agent_name),
            ("service_name", finding.service_name),
            ("tool_name", finding.tool_name),
            ("trace_id", finding.trace_id),
            ("run_id", finding.run_id),
            ("opened_at", iso(finding.opened_at_ns)),
            ("version", finding.version),
        )
        if value != ""
    )
    return details


# -- Webhook ----------------------------------------------------------------------------


def webhook_body(finding: Finding, event: Event) -> bytes:
    """The generic webhook's JSON: compact, keys sorted, the same bytes every time."""
    kind = _WEBHOOK_TYPES.get(event)
    if kind is None:
        raise ValueError(f"unknown alert event {event!r}")
    data = {
        "id": finding.id,
        "kind": finding.kind,
        "tenant": finding.tenant,
        "severity": finding.severity,
        "summary": finding.summary,
        "state": finding.state,
        "opened_at": iso(finding.opened_at_ns),
        "updated_at": iso(finding.updated_at_ns),
        "resolved_at": iso(finding.resolved_at_ns) if finding.resolved_at_ns else None,
        "agent_name": finding.agent_name,
        "service_name": finding.service_name,
        "tool_name": finding.tool_name,
        "trace_id": finding.trace_id,
        "run_id": finding.run_id,
        "version": finding.version,
        "evidence": finding.evidence,
    }
    return _dumps({"type": kind, "timestamp": iso(finding.updated_at_ns), "data": data})


def sign_webhook(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers for `body` sent as message `msg_id` at `timestamp_s`."""
    if "." in msg_id or not msg_id:
        raise ValueError(f"a webhook message id must be non-empty without '.': {msg_id!r}")
    signature = _signature(_key(secret), msg_id, str(timestamp_s), body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": f"v1,{signature}",
    }


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, now_s: int, tolerance_s: int = 300
) -> bool:
    """Whether `body` was signed with `secret` (any `v1` signature) within the tolerance."""
    lower = {name.lower(): value for name, value in headers.items()}
    msg_id = lower.get("webhook-id", "")
    timestamp = lower.get("webhook-timestamp", "")
    signatures = lower.get("webhook-signature", "")
    if not msg_id or not signatures or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now_s - int(timestamp)) > tolerance_s:
        return False
    expected = _signature(_key(secret), msg_id, timestamp, body).encode()
    matched = False
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        # Compare every v1 entry (no early exit), each in constant time.
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            matched = True
    return matched


def _key(secret: str) -> bytes:
    """A `whsec_` secret is base64 after the prefix (the spec's format); else its UTF-8."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ webhook secret must be base64 after the prefix") from exc
    if not secret:
        raise ValueError("a webhook secret must not be empty")
    return secret.encode("utf-8")


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


# -- helpers ----------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    # NaN/inf become null, keys are sorted, odd values (a set, a datetime) become text.
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(_dumps(value))
    return loaded


def _units(text: str) -> int:
    """Length in UTF-16 code units (what JavaScript's `length` counts)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
    """`text`, or as much of it as fits in `limit` units with '…' at the end."""
    if _units(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > limit - 1:
            break
        out.append(char)
        used += width
    return "".join(out) + "…"
