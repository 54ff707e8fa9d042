"""What Slack, PagerDuty and webhook receivers are sent about a finding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from api.alerts._formats import (
    Event,
    Links,
    group_slack_message,
    pagerduty_event,
    sign_webhook,
    slack_message,
    verify_webhook,
    webhook_body,
)
from detectors import Finding

NS = 1_000_000_000
OPENED_S = 1_700_000_000  # 2023-11-14T22:13:20Z
LINKS = Links(api_url="https://agentwatch.example.com/", grafana_url="https://grafana.example.com")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
EVENTS: tuple[Event, ...] = ("trigger", "resolve", "repeat", "test")
UNKNOWN_EVENT: Any = "open"


def finding_of(kind: str, **changes: Any) -> Finding:
    """A finding as the detector of `kind` reports it, with realistic evidence."""
    base: dict[str, Any] = {
        "id": hashlib.blake2b(kind.encode(), digest_size=16).hexdigest(),
        "kind": kind,
        "tenant": "acme",
        "severity": "error",
        "opened_at_ns": OPENED_S * NS,
        "updated_at_ns": (OPENED_S + 60) * NS,
        "agent_name": "billing-agent",
        "service_name": "billing-svc",
        "trace_id": TRACE_ID,
        "version": 2,
    }
    base.update(_KINDS[kind])
    base.update(changes)
    return Finding(**base)


_KINDS: dict[str, dict[str, Any]] = {
    "tool_failure_spike": {
        "severity": "critical",
        "tool_name": "crm.lookup",
        "summary": "crm.lookup (billing-agent) failing 40% of calls (baseline 5.0%): "
        "24/60 in the last 5m; top error TimeoutError",
        "evidence": {
            "tool_name": "crm.lookup",
            "agent_name": "billing-agent",
            "baseline_rate": 0.05,
            "baseline_source": "learnt",
            "long_window_s": 3600,
            "short_window_s": 300,
            "burn_rate": 14.4,
            "threshold_rate": 0.5,
            "long_rate": 0.2133,
            "short_rate": 0.4,
            "long_calls": 600,
            "long_failures": 128,
            "short_calls": 60,
            "short_failures": 24,
            "p_value": 3.1e-07,
            "windows_firing": [{"long_s": 3600, "short_s": 300, "burn_rate": 14.4}],
            "top_error_types": [{"error_type": "TimeoutError", "count": 20}],
            "example_trace_ids": [TRACE_ID],
            "as_of": "2023-11-14T22:13:20.000Z",
        },
    },
    "zombie_run": {
        "tool_name": "crm.lookup",
        "run_id": "conv-7",
        "summary": "billing-agent: run conv-7 stuck in execute_tool crm.lookup for 2m10s "
        "(span 00f067aa0ba902b7); process still exporting",
        "evidence": {
            "trace_id": TRACE_ID,
            "run_id": "conv-7",
            "idle_s": 130.2,
            "threshold_s": 45.0,
            "last_activity_at": "2023-11-14T22:11:10.000Z",
            "span_ids": ["00f067aa0ba902b7"],
            "open_spans": [{"span_id": "00f067aa0ba902b7", "name": "execute_tool crm.lookup"}],
            "heartbeats": {"seen": True, "last_at": "2023-11-14T22:11:10.000Z"},
            "process": {"service_instance_id": "pod-1", "still_exporting": True},
            "stuck_span_id": "00f067aa0ba902b7",
        },
    },
    "runaway_loop": {
        "tool_name": "search",
        "run_id": "conv-9",
        "summary": "billing-agent: run conv-9 called search 12x with the same arguments; "
        "14 steps, 48210 tokens, 1m30s so far",
        "evidence": {
            "reason": "repeated_call",
            "description": "called search 12x with the same arguments",
            "tool_name": "search",
            "arguments_hash": "9f86d081884c7d65",
            "count": 12,
            "span_ids": ["a1", "a2"],
            "trace_id": TRACE_ID,
            "run_id": "conv-9",
            "steps": 14,
            "tokens": 48210,
            "running_s": 90.0,
            "first_step_at": "2023-11-14T22:11:50.000Z",
        },
    },
    "quality_drift": {
        "severity": "warning",
        "summary": "billing-agent: helpfulness fell from 0.82 to 0.61 over the last 30 scores",
        "evidence": {
            "signal": "evaluation_score",
            "evaluation_name": "helpfulness",
            "reference_mean": 0.82,
            "reference_std": 0.07,
            "reference_samples": 50,
            "recent_mean": 0.61,
            "recent_samples": 30,
            "drop": 0.21,
            "p_value": 0.0004,
            "cusum": 6.2,
            "likely_causes": [{"summary": "model changed"}],
            "example_trace_id": TRACE_ID,
            "as_of": "2023-11-14T22:13:20.000Z",
        },
    },
    "change_point": {
        "severity": "info",
        "summary": "billing-agent: model changed from openai/gpt-4o to openai/gpt-4o-mini",
        "evidence": {
            "change": "model",
            "from": "openai/gpt-4o",
            "to": "openai/gpt-4o-mini",
            "calls_before": 1200,
            "first_seen_at": "2023-11-14T22:13:20.000Z",
            "example_trace_id": TRACE_ID,
            "settles_after_s": 600.0,
        },
    },
}
KINDS = tuple(_KINDS)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    """Block Kit's documented limits for a message (docs.slack.dev/reference/block-kit)."""
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= 50
    assert utf16(message["text"]) <= 3000
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 1 <= utf16(block["text"]["text"]) <= 150
        elif block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 1 <= utf16(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10
            assert all(1 <= utf16(f["text"]) <= 2000 for f in fields)
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(utf16(e["text"]) <= 3000 for e in block["elements"])
        else:
            raise AssertionError(f"unexpected block {block['type']}")


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    texts = [message["text"]]
    for block in message["blocks"]:
        if block["type"] == "section":
            texts += [block["text"]["text"]] if "text" in block else []
            texts += [f["text"] for f in block.get("fields", [])]
        elif block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def header_of(message: dict[str, Any]) -> str:
    header = message["blocks"][0]
    assert header["type"] == "header"
    text: str = header["text"]["text"]
    return text


def evidence_fields(message: dict[str, Any]) -> dict[str, str]:
    sections = [b for b in message["blocks"] if b["type"] == "section" and "fields" in b]
    assert len(sections) == 2, "base fields, then evidence fields"
    pairs = (f["text"].split("\n", 1) for f in sections[1]["fields"])
    return {label.strip("*"): value for label, value in pairs}


# -- Slack --------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_slack_message_is_within_block_kit_limits_for_every_kind_and_event(kind, event):
    finding = finding_of(kind)
    if event == "resolve":
        finding.resolved_at_ns = finding.opened_at_ns + 245 * NS
    message = slack_message(finding, event, LINKS)
    assert_within_slack_limits(message)
    assert finding.summary in message["blocks"][1]["text"]["text"]


def test_slack_message_stays_within_limits_with_huge_summary_and_evidence():
    evidence: dict[str, Any] = {f"metric_{i}": i * 1.5 for i in range(90)}
    evidence |= {f"note_{i}": "x&<" * 2000 for i in range(10)}
    finding = finding_of(
        "tool_failure_spike",
        summary="S" * 10_000,
        agent_name="agent-" + "&" * 500,
        tool_name="tool<" * 1000,
        service_name="svc" * 2000,
        evidence=evidence,
    )
    for event in EVENTS:
        message = slack_message(finding, event, LINKS)
        assert_within_slack_limits(message)
        assert len(evidence_fields(message)) == 8
    summary = slack_message(finding, "trigger", LINKS)["blocks"][1]["text"]["text"]
    assert summary.startswith("S" * 2000)
    assert summary.endswith("…")


def test_slack_cut_never_leaves_half_an_entity():
    message = slack_message(finding_of("zombie_run", summary="&" * 5000), "trigger", LINKS)
    assert re.fullmatch(r"(&amp;){500,600}…", message["blocks"][1]["text"]["text"])


def test_slack_message_escapes_control_characters():
    finding = finding_of(
        "runaway_loop", summary="<script>& <!channel>", agent_name="<@U123>", tool_name="a>b"
    )
    message = slack_message(finding, "trigger", Links())
    assert message["blocks"][1]["text"]["text"] == "&lt;script&gt;&amp; &lt;!channel&gt;"
    texts = mrkdwn_texts(message)
    assert any("&lt;@U123&gt;" in t for t in texts)
    assert any("a&gt;b" in t for t in texts)
    assert "&lt;script&gt;&amp;" in message["text"]
    for text in texts:  # only agentwatch's own tokens (dates) may start with '<'
        assert re.findall(r"<[^!]|<!(?!date\^)", text) == [], text


@pytest.mark.parametrize(
    ("severity", "emoji"),
    [
        ("critical", ":red_circle:"),
        ("error", ":large_orange_circle:"),
        ("warning", ":large_yellow_circle:"),
        ("info", ":large_blue_circle:"),
    ],
)
def test_slack_trigger_header_names_severity_kind_and_agent(severity, emoji):
    message = slack_message(finding_of("tool_failure_spike", severity=severity), "trigger", LINKS)
    assert header_of(message) == f"{emoji} Tool failure spike · billing-agent"


def test_slack_resolve_says_resolved_after_how_long_and_why():
    finding = finding_of("tool_failure_spike")
    finding.resolved_at_ns = finding.opened_at_ns + 245 * NS
    finding.evidence["resolution"] = "failure rate back under the threshold"
    message = slack_message(finding, "resolve", LINKS)
    assert header_of(message) == ":white_check_mark: Resolved: Tool failure spike · billing-agent"
    assert message["blocks"][1]["text"]["text"].endswith(
        "\n_Resolved after 4m05s: failure rate back under the threshold_"
    )
    assert message["text"].startswith(":white_check_mark: Resolved: ")


def test_slack_repeat_and_test_headers_say_so():
    finding = finding_of("zombie_run")
    assert header_of(slack_message(finding, "repeat", LINKS)).startswith(
        ":large_orange_circle: Still open: Zombie run"
    )
    test = slack_message(finding, "test", LINKS)
    assert header_of(test) == ":test_tube: Test: Zombie run · billing-agent"
    assert "nothing is wrong" in test["blocks"][1]["text"]["text"]


def test_slack_fields_carry_who_and_since_as_a_date_token():
    message = slack_message(finding_of("zombie_run"), "trigger", LINKS)
    fields = [f["text"] for f in message["blocks"][2]["fields"]]
    assert fields == [
        "*Severity*\nerror",
        "*Agent*\nbilling-agent",
        "*Tool*\ncrm.lookup",
        "*Service*\nbilling-svc",
        "*Tenant*\nacme",
        "*Since*\n<!date^1700000000^{date_short_pretty} {time}|2023-11-14 22:13 UTC>",
    ]


def test_slack_evidence_is_formatted_for_people():
    spike = evidence_fields(slack_message(finding_of("tool_failure_spike"), "trigger", LINKS))
    assert spike == {
        "Failure rate": "40%",
        "Baseline rate": "5%",
        "Failures": "24",
        "Calls": "60",
        "Failure rate (long window)": "21%",
        "Short window": "5m00s",
        "Burn rate": "14.4x",
        "p-value": "3.1e-07",
    }
    zombie = evidence_fields(slack_message(finding_of("zombie_run"), "trigger", LINKS))
    assert zombie == {
        "Idle for": "2m10s",
        "Idle threshold": "45s",
        "Last activity": "<!date^1699999870^{date_short_pretty} {time}|2023-11-14 22:11 UTC>",
        "Stuck span": "00f067aa0ba902b7",
    }
    loop = evidence_fields(slack_message(finding_of("runaway_loop"), "trigger", LINKS))
    assert list(loop)[:5] == ["Count", "Steps", "Tokens", "Running for", "Reason"]
    assert loop["Tokens"] == "48,210"
    assert loop["Running for"] == "1m30s"
    assert "Description" not in loop  # the summary says it already
    drift = evidence_fields(slack_message(finding_of("quality_drift"), "trigger", LINKS))
    assert drift["Recent mean"] == "0.61"
    assert drift["p-value"] == "0.0004"


def test_slack_shows_only_scalar_evidence_not_shown_elsewhere():
    message = slack_message(finding_of("zombie_run"), "trigger", LINKS)
    labels = set(evidence_fields(message))
    assert not labels & {"Span ids", "Open spans", "Heartbeats", "Process", "Trace id", "Run id"}


def test_slack_links_the_trace_when_the_api_url_is_set():
    message = slack_message(finding_of("zombie_run"), "trigger", LINKS)
    context = message["blocks"][-1]
    assert context["type"] == "context"
    links = context["elements"][0]["text"]
    assert f"<https://agentwatch.example.com/api/v1/traces/{TRACE_ID}|Trace>" in links
    assert "|Finding>" in links
    assert "|Agent dashboard>" in links
    assert "&amp;from=" in links  # '&' in a link is escaped too


def test_slack_has_no_links_without_urls():
    message = slack_message(finding_of("zombie_run"), "trigger", Links())
    dumped = json.dumps(message)
    assert "/api/v1/traces/" not in dumped
    assert "http" not in dumped
    (element,) = message["blocks"][-1]["elements"]
    assert element["text"].startswith("`zombie_run` · finding ")


def test_group_message_has_one_section_per_finding_most_severe_first():
    findings = [
        finding_of("change_point"),
        finding_of("tool_failure_spike"),
        finding_of("quality_drift"),
    ]
    message = group_slack_message(findings, LINKS)
    assert_within_slack_limits(message)
    assert header_of(message) == "3 findings for billing-agent"
    sections = [b["text"]["text"] for b in message["blocks"][1:]]
    assert len(sections) == 3
    assert sections[0].startswith(":red_circle: *Tool failure spike* · critical · since <!date^")
    assert sections[1].startswith(":large_yellow_circle: *Quality drift*")
    assert sections[2].startswith(":large_blue_circle: *Change point*")
    assert findings[1].summary in sections[0]
    assert findings[2].summary in sections[1]
    assert findings[0].summary in sections[2]
    assert f"/api/v1/traces/{TRACE_ID}|Trace>" in sections[0]


def test_group_message_stays_within_limits_with_many_long_findings():
    findings = [
        finding_of("zombie_run", id=f"{i:032x}", summary="<&>" * 4000, tool_name="t" * 5000)
        for i in range(120)
    ]
    message = group_slack_message(findings, LINKS)
    assert_within_slack_limits(message)
    assert len(message["blocks"]) == 50
    assert message["blocks"][-1]["elements"][0]["text"].startswith("…and 72 more")
    assert header_of(message) == "120 findings for billing-agent"


def test_group_message_of_49_findings_shows_them_all():
    findings = [finding_of("runaway_loop", id=f"{i:032x}") for i in range(49)]
    message = group_slack_message(findings, LINKS)
    assert_within_slack_limits(message)
    assert [b["type"] for b in message["blocks"]] == ["header"] + ["section"] * 49


def test_group_message_of_one_finding_is_the_single_message():
    finding = finding_of("runaway_loop")
    assert group_slack_message([finding], LINKS) == slack_message(finding, "trigger", LINKS)


def test_group_message_needs_a_finding():
    with pytest.raises(ValueError, match="at least one"):
        group_slack_message([], LINKS)


# -- links ---------------------------------------------------------------------------------


def test_links_point_at_the_api_and_dashboards_with_encoded_values():
    agent = "billing agent&co/é"
    finding = finding_of("zombie_run", agent_name=agent, trace_id="ab/cd")
    found = dict(LINKS.for_finding(finding))
    assert list(found) == ["Trace", "Finding", "Agent dashboard", "Findings dashboard"]
    assert found["Trace"] == "https://agentwatch.example.com/api/v1/traces/ab%2Fcd"
    assert found["Finding"] == f"https://agentwatch.example.com/api/v1/findings/{finding.id}"
    dashboard = urlsplit(found["Agent dashboard"])
    assert dashboard.path == "/d/agentwatch-agent"
    assert parse_qs(dashboard.query) == {
        "var-agent": [agent],
        "from": [str((OPENED_S - 3600) * 1000)],
        "to": ["now"],
    }
    assert "var-agent=billing+agent%26co%2F%C3%A9" in found["Agent dashboard"]
    assert urlsplit(found["Findings dashboard"]).path == "/d/agentwatch-findings"


def test_links_of_a_resolved_finding_end_an_hour_after_it():
    finding = finding_of("zombie_run", resolved_at_ns=(OPENED_S + 600) * NS)
    query = parse_qs(urlsplit(dict(LINKS.for_finding(finding))["Findings dashboard"]).query)
    assert query["to"] == [str((OPENED_S + 600 + 3600) * 1000)]


def test_links_skip_the_agent_dashboard_for_all_agents_and_the_trace_without_one():
    finding = finding_of("tool_failure_spike", agent_name="", trace_id="")
    assert [label for label, _ in LINKS.for_finding(finding)] == ["Finding", "Findings dashboard"]
    assert Links().for_finding(finding) == []


# -- PagerDuty -------------------------------------------------------------------------------


def test_pagerduty_dedup_key_matches_across_trigger_and_resolve_of_one_finding():
    spike, zombie = finding_of("tool_failure_spike"), finding_of("zombie_run")
    trigger = pagerduty_event(spike, "trigger", "R" * 32, LINKS)
    resolve = pagerduty_event(spike, "resolve", "R" * 32, LINKS)
    repeat = pagerduty_event(spike, "repeat", "R" * 32, LINKS)
    assert trigger["dedup_key"] == resolve["dedup_key"] == repeat["dedup_key"]
    assert trigger["dedup_key"] == f"agentwatch-{spike.id}"
    other = pagerduty_event(zombie, "trigger", "R" * 32, LINKS)
    assert other["dedup_key"] != trigger["dedup_key"]


def test_pagerduty_resolve_carries_only_what_the_api_needs():
    finding = finding_of("zombie_run", resolved_at_ns=(OPENED_S + 90) * NS)
    assert pagerduty_event(finding, "resolve", "R" * 32, LINKS) == {
        "routing_key": "R" * 32,
        "event_action": "resolve",
        "dedup_key": f"agentwatch-{finding.id}",
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", "critical"),
        ("error", "error"),
        ("warning", "warning"),
        ("info", "info"),
        ("bogus", "error"),
    ],
)
def test_pagerduty_severity_mapping(severity, expected):
    event = pagerduty_event(finding_of("zombie_run", severity=severity), "trigger", "k", LINKS)
    assert event["payload"]["severity"] == expected


@pytest.mark.parametrize(
    ("event", "action"),
    [("trigger", "trigger"), ("repeat", "trigger"), ("test", "trigger"), ("resolve", "resolve")],
)
def test_pagerduty_event_action(event, action):
    assert pagerduty_event(finding_of("zombie_run"), event, "k", LINKS)["event_action"] == action


def test_pagerduty_summary_is_cut_to_1024_characters():
    finding = finding_of("runaway_loop", summary="loop " * 1000)
    summary = pagerduty_event(finding, "trigger", "k", LINKS)["payload"]["summary"]
    assert len(summary) == 1024
    assert summary.endswith("…")
    assert summary.startswith("loop loop ")


def test_pagerduty_trigger_describes_the_finding():
    finding = finding_of("tool_failure_spike")
    event = pagerduty_event(finding, "trigger", "R" * 32, LINKS)
    payload = event.pop("payload")
    details = payload.pop("custom_details")
    assert payload == {
        "summary": finding.summary,
        "source": "billing-svc",
        "severity": "critical",
        "timestamp": "2023-11-14T22:13:20.000Z",
        "component": "billing-agent",
        "group": "billing-svc",
        "class": "tool_failure_spike",
    }
    assert details["short_rate"] == 0.4
    assert details["top_error_types"] == [{"error_type": "TimeoutError", "count": 20}]
    assert details["finding_id"] == finding.id
    assert (details["tenant"], details["trace_id"]) == ("acme", TRACE_ID)
    assert (details["agent_name"], details["tool_name"]) == ("billing-agent", "crm.lookup")
    api = "https://agentwatch.example.com/api/v1"
    assert event["client"] == "agentwatch"
    assert event["client_url"] == f"{api}/findings/{finding.id}"
    assert event["links"][:2] == [
        {"href": f"{api}/traces/{TRACE_ID}", "text": "Trace"},
        {"href": f"{api}/findings/{finding.id}", "text": "Finding"},
    ]


def test_pagerduty_source_falls_back_to_the_agent_then_agentwatch():
    def source(finding: Finding) -> str:
        payload = pagerduty_event(finding, "trigger", "k", Links())["payload"]
        return str(payload["source"])

    assert source(finding_of("zombie_run", service_name="")) == "billing-agent"
    assert source(finding_of("zombie_run", service_name="", agent_name="")) == "agentwatch"


def test_pagerduty_without_an_api_url_links_grafana_and_without_urls_nothing():
    finding = finding_of("zombie_run")
    grafana_only = pagerduty_event(finding, "trigger", "k", Links(grafana_url="https://g.example"))
    assert grafana_only["client_url"].startswith("https://g.example/d/agentwatch-findings?")
    bare = pagerduty_event(finding, "trigger", "k", Links())
    assert "links" not in bare
    assert "client_url" not in bare


def test_pagerduty_test_event_says_it_is_a_test_and_body_is_strict_json():
    finding = finding_of("quality_drift", evidence={"drop": float("nan"), "when": {1, 2}})
    event = pagerduty_event(finding, "test", "k", LINKS)
    assert event["payload"]["summary"].startswith("[test] billing-agent: helpfulness")
    json.dumps(event, allow_nan=False)  # NaN would make the JSON invalid
    assert event["payload"]["custom_details"]["drop"] is None


# -- webhook ------------------------------------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def independent_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The spec's `{msg_id}.{timestamp}.{payload}`, HMAC-SHA256, base64, computed here."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    ("event", "type_"),
    [
        ("trigger", "finding.opened"),
        ("resolve", "finding.resolved"),
        ("repeat", "finding.repeated"),
        ("test", "finding.test"),
    ],
)
def test_webhook_body_type_per_event(event, type_):
    assert json.loads(webhook_body(finding_of("zombie_run"), event))["type"] == type_


def test_webhook_body_carries_the_finding_with_rfc3339_times():
    finding = finding_of("tool_failure_spike", resolved_at_ns=(OPENED_S + 245) * NS)
    finding.updated_at_ns = finding.resolved_at_ns
    body = json.loads(webhook_body(finding, "resolve"))
    assert body["timestamp"] == "2023-11-14T22:17:25.000Z"
    data = body["data"]
    assert data["state"] == "resolved"
    assert (data["opened_at"], data["resolved_at"]) == (
        "2023-11-14T22:13:20.000Z",
        "2023-11-14T22:17:25.000Z",
    )
    assert data["evidence"] == finding.evidence
    assert (data["id"], data["kind"], data["tenant"]) == (finding.id, finding.kind, "acme")
    assert (data["agent_name"], data["tool_name"], data["version"]) == (
        "billing-agent",
        "crm.lookup",
        2,
    )
    opened = json.loads(webhook_body(finding_of("zombie_run"), "trigger"))["data"]
    assert (opened["state"], opened["resolved_at"]) == ("open", None)


def test_webhook_body_is_compact_sorted_and_deterministic():
    finding = finding_of("zombie_run")
    body = webhook_body(finding, "trigger")
    reordered = finding_of("zombie_run", evidence=dict(reversed(finding.evidence.items())))
    assert webhook_body(reordered, "trigger") == body
    assert webhook_body(finding, "trigger") == body
    canonical = json.dumps(
        json.loads(body), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )
    assert body == canonical.encode()


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        (SECRET, b"0123456789abcdef0123456789abcdef"),
        ("a plain shared secret", b"a plain shared secret"),
    ],
)
def test_signature_verifies_here_and_by_the_spec(secret, key):
    body = webhook_body(finding_of("tool_failure_spike"), "trigger")
    headers = sign_webhook(secret, "msg_abc123", OPENED_S, body)
    assert headers == {
        "webhook-id": "msg_abc123",
        "webhook-timestamp": str(OPENED_S),
        "webhook-signature": independent_signature(key, "msg_abc123", OPENED_S, body),
    }
    assert verify_webhook(secret, headers, body, now_s=OPENED_S + 10)


def test_signature_matches_the_standard_webhooks_test_vector():
    # From the Standard Webhooks repository, libraries/python/tests/test_webhooks.py
    # (test_sign_function), the vector every Standard Webhooks library signs alike.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = sign_webhook(secret, msg_id, timestamp, body)
    assert headers["webhook-signature"] == expected
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert independent_signature(key, msg_id, timestamp, body) == expected
    vector = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": expected,
    }
    assert verify_webhook(secret, vector, body, now_s=timestamp)


def signed() -> tuple[dict[str, str], bytes]:
    body = webhook_body(finding_of("zombie_run"), "trigger")
    return sign_webhook(SECRET, "msg_1", OPENED_S, body), body


def test_verification_fails_for_a_tampered_body_or_another_secret():
    headers, body = signed()
    assert verify_webhook(SECRET, headers, body, OPENED_S)
    assert not verify_webhook(SECRET, headers, body.replace(b"zombie_run", b"zombie_ran"), OPENED_S)
    assert not verify_webhook(SECRET, headers, body + b" ", OPENED_S)
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    assert not verify_webhook(other, headers, body, OPENED_S)
    # Without the prefix the secret is its own UTF-8 bytes, not the base64-decoded key.
    assert not verify_webhook(SECRET.removeprefix("whsec_"), headers, body, OPENED_S)


def test_verification_fails_for_another_id_or_timestamp_than_signed():
    headers, body = signed()
    assert not verify_webhook(SECRET, {**headers, "webhook-id": "msg_2"}, body, OPENED_S)
    moved = {**headers, "webhook-timestamp": str(OPENED_S + 1)}
    assert not verify_webhook(SECRET, moved, body, OPENED_S)


def test_verification_accepts_only_timestamps_within_the_tolerance():
    headers, body = signed()
    assert verify_webhook(SECRET, headers, body, now_s=OPENED_S + 300)
    assert verify_webhook(SECRET, headers, body, now_s=OPENED_S - 300)
    assert not verify_webhook(SECRET, headers, body, now_s=OPENED_S + 301)  # stale
    assert not verify_webhook(SECRET, headers, body, now_s=OPENED_S - 301)  # from the future
    assert verify_webhook(SECRET, headers, body, now_s=OPENED_S + 3000, tolerance_s=3600)


def test_verification_accepts_any_of_several_signatures_and_any_header_case():
    headers, body = signed()
    rotated = {
        "Webhook-Id": headers["webhook-id"],
        "Webhook-Timestamp": headers["webhook-timestamp"],
        "Webhook-Signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        + headers["webhook-signature"],
    }
    assert verify_webhook(SECRET, rotated, body, OPENED_S)
    only_asymmetric = {
        **headers,
        "webhook-signature": headers["webhook-signature"].replace("v1,", "v1a,"),
    }
    assert not verify_webhook(SECRET, only_asymmetric, body, OPENED_S)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verification_fails_without_a_header(missing):
    headers, body = signed()
    del headers[missing]
    assert not verify_webhook(SECRET, headers, body, OPENED_S)


def test_verification_fails_for_a_timestamp_that_is_not_a_number():
    headers, body = signed()
    assert not verify_webhook(SECRET, {**headers, "webhook-timestamp": "1e9"}, body, OPENED_S)


def test_signing_refuses_a_message_id_with_a_dot_and_a_malformed_or_empty_secret():
    with pytest.raises(ValueError, match="message id"):
        sign_webhook(SECRET, "msg.1", OPENED_S, b"{}")
    with pytest.raises(ValueError, match="base64"):
        sign_webhook("whsec_not base64!", "msg_1", OPENED_S, b"{}")
    with pytest.raises(ValueError, match="empty"):
        sign_webhook("", "msg_1", OPENED_S, b"{}")


@pytest.mark.parametrize(
    "build",
    [
        lambda f: slack_message(f, UNKNOWN_EVENT, LINKS),
        lambda f: pagerduty_event(f, UNKNOWN_EVENT, "k", LINKS),
        lambda f: webhook_body(f, UNKNOWN_EVENT),
    ],
)
def test_an_unknown_event_is_refused(build):
    with pytest.raises(ValueError, match="unknown alert event"):
        build(finding_of("zombie_run"))
