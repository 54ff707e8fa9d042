"""Agent job descriptions: who owns an agent, what it is for, what it may do.

A YAML file — or a directory of them — of agents, loaded at start and whenever it
changes (`--agents` / AGENTWATCH_AGENTS):

    agents:
      - name: billing-agent
        owner: alice@example.com
        backup_owner: bob@example.com
        purpose: Answers billing questions; refunds up to 50 EUR.
        allowed_tools: [customer.get, "payments.*", ledger.get_invoice]
        allowed_models: ["gpt-4o*", "claude-sonnet-*"]
        budgets: {steps: 60, tokens: 200000, cost_usd: 2.0}
        escalation: pages                 # an alert route's name
        success_metrics:
          - {evaluation: helpfulness, target: 0.8}
        roi: {human_minutes_per_run: 12, value_per_hour_usd: 60}

A file in a directory may also hold one agent as its top-level mapping. Tool and
model names match exactly or as shell-style patterns (`payments.*`). An empty or
missing `allowed_tools` means "any tool" (likewise models): a job description
restricts only what it names. Problems are one line naming the file and the setting.

`roi` states what a successful run is worth: the human time it replaces and that
time's value per hour. The agent scorecard turns them into time saved, value and net
value over its time range (api/_roi.py); an input left out is shown as missing there,
and nothing is computed from it.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class JobsError(ValueError):
    """A bad job description file; the message is one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budgets(_Section):
    steps: int | None = Field(default=None, ge=1)  # LLM and tool calls per run
    tokens: int | None = Field(default=None, ge=1)  # input + output tokens per run
    cost_usd: float | None = Field(default=None, gt=0)  # per run (needs cost data)


class Roi(_Section):
    human_minutes_per_run: float | None = Field(default=None, gt=0)  # per successful run
    value_per_hour_usd: float | None = Field(default=None, ge=0)  # of that human time


class SuccessMetric(_Section):
    evaluation: str = Field(min_length=1)
    target: float


class JobDescription(_Section):
    name: str = Field(min_length=1)
    owner: str = ""
    backup_owner: str = ""
    purpose: str = ""
    allowed_tools: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()
    budgets: Budgets = Budgets()
    escalation: str = ""
    success_metrics: tuple[SuccessMetric, ...] = ()
    roi: Roi = Roi()
    # Everything else a team wants on record (runbook URL, data classes, …).
    labels: dict[str, str] = {}

    def allows_tool(self, tool: str) -> bool:
        return _allowed(tool, self.allowed_tools)

    def allows_model(self, model: str) -> bool:
        return _allowed(model, self.allowed_models)

    @property
    def missing_owners(self) -> list[str]:
        return [role for role in ("owner", "backup_owner") if not getattr(self, role).strip()]


def _allowed(name: str, patterns: tuple[str, ...]) -> bool:
    if not patterns:
        return True
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class JobRegistry:
    """Every job description, by agent name; `digest` changes when any does."""

    jobs: dict[str, JobDescription]
    digest: str
    source: str = ""

    def get(self, agent: str) -> JobDescription | None:
        return self.jobs.get(agent)

    def as_data(self) -> list[dict[str, Any]]:
        """Plain data, to hand to the detector process."""
        return [job.model_dump(mode="json") for job in self.jobs.values()]

    @classmethod
    def from_data(cls, data: list[dict[str, Any]], source: str = "") -> JobRegistry:
        jobs = {item["name"]: JobDescription.model_validate(item) for item in data}
        return cls(jobs, _digest(data), source)


def load_jobs(path: Path) -> JobRegistry:
    """Read a job description file, or every `*.yaml`/`*.yml` file of a directory."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    elif path.exists():
        files = [path]
    else:
        raise JobsError(f"agents {path}: no such file or directory")
    jobs: dict[str, JobDescription] = {}
    for file in files:
        for index, item in enumerate(_documents(file)):
            job = _validate(item, f"{file}: agents[{index}]")
            if job.name in jobs:
                raise JobsError(f"{file}: agent {job.name!r} is described twice")
            jobs[job.name] = job
    data = [job.model_dump(mode="json") for job in jobs.values()]
    return JobRegistry(jobs, _digest(data), str(path))


def _documents(file: Path) -> list[Any]:
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobsError(f"{file}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise JobsError(f"{file}{where}: not valid YAML") from None
    if document is None:
        return []
    if isinstance(document, dict) and "agents" in document:
        if set(document) != {"agents"}:
            unknown = sorted(set(document) - {"agents"})[0]
            raise JobsError(f"{file}: unknown key {unknown!r} (known: agents)")
        document = document["agents"]
        if not isinstance(document, list):
            raise JobsError(f"{file}: agents must be a list")
        return list(document)
    if isinstance(document, dict):
        return [document]  # one agent per file
    raise JobsError(f"{file}: expected `agents:` with a list, or one agent's mapping")


def _validate(item: Any, where: str) -> JobDescription:
    try:
        return JobDescription.model_validate(item)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise JobsError(f"{where}{'.' + location if location else ''}: {message}") from None


def _digest(data: list[dict[str, Any]]) -> str:
    text = yaml.safe_dump(sorted(data, key=lambda item: str(item.get("name"))), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
