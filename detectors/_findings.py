"""Findings: what a detector reports, with a lifecycle (opened → updated → resolved).

One finding per incident: a detector keeps the finding of an ongoing incident and
updates it rather than opening another. A finding's id is derived from what the
incident is (kind, tenant, and the detector's incident key), so replaying the same
spans after a crash yields the same id, and the store keeps one row per finding.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["info", "warning", "error", "critical"]


def finding_id(kind: str, tenant: str, incident: str) -> str:
    text = "\x00".join((kind, tenant, incident)).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).hexdigest()


@dataclass(slots=True)
class Finding:
    id: str
    kind: str
    tenant: str
    severity: str
    summary: str
    opened_at_ns: int
    updated_at_ns: int
    agent_name: str = ""
    service_name: str = ""
    tool_name: str = ""
    trace_id: str = ""
    run_id: str = ""
    resolved_at_ns: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    @property
    def state(self) -> str:
        return "resolved" if self.resolved_at_ns else "open"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)


class FindingSink(Protocol):
    """Where detectors report every new version of a finding."""

    def publish(self, finding: Finding) -> None: ...


class FindingLog:
    """Collects finding versions as detectors publish them, until taken."""

    def __init__(self) -> None:
        self._pending: dict[str, Finding] = {}

    def publish(self, finding: Finding) -> None:
        # Copy: the detector keeps mutating its own instance for later versions.
        self._pending[finding.id] = Finding.from_dict(finding.as_dict())

    def take(self) -> list[Finding]:
        taken, self._pending = list(self._pending.values()), {}
        return taken


def open_finding(
    sink: FindingSink,
    *,
    kind: str,
    tenant: str,
    incident: str,
    severity: Severity,
    summary: str,
    now_ns: int,
    evidence: dict[str, Any],
    agent_name: str = "",
    service_name: str = "",
    tool_name: str = "",
    trace_id: str = "",
    run_id: str = "",
) -> Finding:
    finding = Finding(
        id=finding_id(kind, tenant, incident),
        kind=kind,
        tenant=tenant,
        severity=severity,
        summary=summary,
        opened_at_ns=now_ns,
        updated_at_ns=now_ns,
        evidence=evidence,
        agent_name=agent_name,
        service_name=service_name,
        tool_name=tool_name,
        trace_id=trace_id,
        run_id=run_id,
    )
    sink.publish(finding)
    return finding


def update_finding(
    sink: FindingSink,
    finding: Finding,
    *,
    now_ns: int,
    summary: str | None = None,
    severity: Severity | None = None,
    evidence: dict[str, Any] | None = None,
) -> None:
    if summary is not None:
        finding.summary = summary
    if severity is not None:
        finding.severity = severity
    if evidence is not None:
        finding.evidence = evidence
    finding.updated_at_ns = now_ns
    finding.version += 1
    sink.publish(finding)


SEVERITY_RANK = {"warning": 1, "error": 2, "critical": 3}


def escalate_finding(
    sink: FindingSink,
    finding: Finding,
    *,
    now_ns: int,
    severity: Severity,
    summary: str,
    evidence: dict[str, Any],
) -> None:
    """Update an open finding when its condition got worse (a higher severity) — not on
    every evaluation, which would re-publish (and re-alert) an unchanged incident."""
    if SEVERITY_RANK[severity] > SEVERITY_RANK[finding.severity]:
        update_finding(
            sink, finding, now_ns=now_ns, severity=severity, summary=summary, evidence=evidence
        )


def resolve_finding(
    sink: FindingSink, finding: Finding, *, now_ns: int, reason: str, **evidence: Any
) -> None:
    if finding.resolved_at_ns:
        return
    finding.resolved_at_ns = now_ns
    finding.updated_at_ns = now_ns
    finding.evidence = {**finding.evidence, "resolution": reason, **evidence}
    finding.version += 1
    sink.publish(finding)
