"""The demo's agents on paper: their tools, models, rhythm and job descriptions.

Four agents, as a small company might run them. Each run is a plan of steps — LLM
calls and tool calls — with a little randomness; each tool fails at its own
background rate (3-10%), the way real tools do.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Arguments = Callable[[random.Random], dict[str, Any]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    failure_rate: float  # background: the healthy share of failed calls
    latency_s: tuple[float, float]
    arguments: Arguments
    error_types: tuple[str, ...] = ("TimeoutError", "UpstreamError")


@dataclass(frozen=True)
class ModelSpec:
    provider: str
    request: str
    response: str


@dataclass(frozen=True)
class AgentSpec:
    name: str
    service: str
    workers: int  # conversations handled in parallel (threads of its process)
    model: ModelSpec
    tools: tuple[ToolSpec, ...]
    plan: Callable[[random.Random], list[str]]  # "llm" or a tool name, per step
    score_mean: float  # its evaluation score when healthy
    owner: str
    backup_owner: str
    purpose: str
    allowed_tools: tuple[str, ...]
    allowed_models: tuple[str, ...]


def _customer(rng: random.Random) -> dict[str, Any]:
    return {"customer_id": f"c-{rng.randrange(10_000):04d}"}


def _query(topics: tuple[str, ...]) -> Arguments:
    def arguments(rng: random.Random) -> dict[str, Any]:
        return {"query": f"{rng.choice(topics)} #{rng.randrange(100_000)}", "top_k": 5}

    return arguments


def _url(rng: random.Random) -> dict[str, Any]:
    return {"url": f"https://example.org/papers/{rng.randrange(100_000)}"}


def _note(rng: random.Random) -> dict[str, Any]:
    return {"title": f"finding {rng.randrange(100_000)}", "body": "summary of sources"}


def _ticket(rng: random.Random) -> dict[str, Any]:
    return {"ticket_id": f"T-{rng.randrange(100_000)}", "status": "answered"}


def _invoice(rng: random.Random) -> dict[str, Any]:
    return {"invoice_id": f"INV-{rng.randrange(100_000)}"}


def _refund(rng: random.Random) -> dict[str, Any]:
    return {"invoice_id": f"INV-{rng.randrange(100_000)}", "amount_eur": rng.randrange(5, 50)}


def _support_plan(rng: random.Random) -> list[str]:
    plan = ["llm", "kb.search", "llm", "crm.lookup"]
    if rng.random() < 0.5:
        plan.append("ticket.update")
    return [*plan, "llm"]


def _research_plan(rng: random.Random) -> list[str]:
    return ["llm", "web.search", "web.fetch", "web.search", "web.fetch", "llm", "notes.write"]


def _billing_plan(rng: random.Random) -> list[str]:
    plan = ["llm", "customer.get", "ledger.get_invoice"]
    if rng.random() < 0.3:
        plan.append("payments.refund")
    return [*plan, "llm"]


def _faq_plan(rng: random.Random) -> list[str]:
    return ["llm", "kb.search", "llm"]


SUPPORT = AgentSpec(
    name="support-agent",
    service="support-svc",
    workers=3,
    model=ModelSpec("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    tools=(
        ToolSpec("kb.search", 0.03, (0.05, 0.2), _query(("refund policy", "reset password"))),
        ToolSpec("crm.lookup", 0.03, (0.05, 0.15), _customer),
        ToolSpec("ticket.update", 0.06, (0.05, 0.15), _ticket),
    ),
    plan=_support_plan,
    score_mean=0.86,
    owner="carol@example.com",
    backup_owner="dan@example.com",
    purpose="Answers customer support tickets from the knowledge base.",
    allowed_tools=("kb.search", "crm.lookup", "ticket.update"),
    allowed_models=("gpt-4o*",),
)

RESEARCH = AgentSpec(
    name="research-agent",
    service="research-svc",
    workers=2,
    model=ModelSpec("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    tools=(
        ToolSpec("web.search", 0.03, (0.05, 0.2), _query(("llm evals", "otel genai"))),
        ToolSpec("web.fetch", 0.04, (0.05, 0.25), _url, ("HTTP 404", "TimeoutError")),
        ToolSpec("notes.write", 0.03, (0.02, 0.08), _note),
    ),
    plan=_research_plan,
    score_mean=0.82,
    owner="erin@example.com",
    backup_owner="frank@example.com",
    purpose="Researches a question on the web and writes notes.",
    allowed_tools=("web.*", "notes.write"),
    allowed_models=("claude-sonnet-*",),
)

BILLING = AgentSpec(
    name="billing-agent",
    service="billing-svc",
    workers=2,
    model=ModelSpec("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    tools=(
        ToolSpec("customer.get", 0.03, (0.05, 0.15), _customer),
        ToolSpec("ledger.get_invoice", 0.03, (0.05, 0.2), _invoice),
        ToolSpec("payments.refund", 0.10, (0.1, 0.3), _refund, ("CardDeclined", "TimeoutError")),
    ),
    plan=_billing_plan,
    score_mean=0.88,
    owner="alice@example.com",
    backup_owner="bob@example.com",
    purpose="Answers billing questions; refunds up to 50 EUR.",
    allowed_tools=("customer.get", "ledger.get_invoice", "payments.*"),
    allowed_models=("gpt-4o*",),
)

FAQ = AgentSpec(
    name="faq-agent",
    service="faq-svc",
    workers=1,
    model=ModelSpec("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash"),
    tools=(ToolSpec("kb.search", 0.03, (0.05, 0.2), _query(("opening hours", "pricing"))),),
    plan=_faq_plan,
    score_mean=0.9,
    owner="gina@example.com",
    backup_owner="hugo@example.com",
    purpose="Answers frequently asked questions; never changes anything.",
    allowed_tools=("kb.search",),
    allowed_models=("gemini-*",),
)

FLEET = (SUPPORT, RESEARCH, BILLING, FAQ)

# The model support-agent is silently moved to in the demo's model swap.
SWAP_MODEL = ModelSpec("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
# The tool billing-agent calls outside its job description.
FORBIDDEN_TOOL = "db.execute_sql"
FORBIDDEN_ARGUMENTS = {"sql": "UPDATE invoices SET status = 'paid' WHERE customer_id = 'c-0042'"}


def job_descriptions() -> list[dict[str, Any]]:
    """The fleet's job descriptions, as the `agents:` file holds them."""
    return [
        {
            "name": spec.name,
            "owner": spec.owner,
            "backup_owner": spec.backup_owner,
            "purpose": spec.purpose,
            "allowed_tools": list(spec.allowed_tools),
            "allowed_models": list(spec.allowed_models),
            "budgets": {"steps": 60, "tokens": 200_000},
        }
        for spec in FLEET
    ]
