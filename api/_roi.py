"""An agent's return on investment over a time range, with the formula shown.

From the job description's `roi` (what a successful run replaces) and the scorecard's
runs and cost:

    time_saved_hours            = successful_runs * human_minutes_per_run / 60
    value_usd                   = time_saved_hours * value_per_hour_usd
    cost_per_successful_run_usd = cost_usd / successful_runs
    net_value_usd               = value_usd - cost_usd

A successful run is one the scorecard counts as such (no agent span of it ended in
error). Nothing is claimed where an input is missing: a figure that needs an input
the job description does not state is null (never 0), and `missing` names the input.
`cost_usd` counts priced LLM calls only; `unpriced_llm_calls` says how many were not,
and so how far the cost is a lower bound (and the net value an upper one).
"""

from __future__ import annotations

from api._models import AgentRoi
from detectors._jobs import Roi

INPUTS = ("human_minutes_per_run", "value_per_hour_usd")


def _num(value: float | int | None) -> str:
    return "?" if value is None else format(value, ".10g")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def agent_roi(
    runs: int, successful_runs: int, cost_usd: float, unpriced_llm_calls: int, roi: Roi | None
) -> AgentRoi:
    """The ROI block of a scorecard (`roi`: the job description's, None when unregistered)."""
    minutes = roi.human_minutes_per_run if roi is not None else None
    per_hour = roi.value_per_hour_usd if roi is not None else None
    missing = [
        name for name, value in zip(INPUTS, (minutes, per_hour), strict=True) if value is None
    ]
    saved = _round(successful_runs * minutes / 60) if minutes is not None else None
    value = _round(saved * per_hour) if saved is not None and per_hour is not None else None
    net = _round(value - cost_usd) if value is not None else None
    per_success = _round(cost_usd / successful_runs) if successful_runs else None
    lines = [
        "time_saved_hours = successful_runs * human_minutes_per_run / 60 = "
        f"{successful_runs} * {_num(minutes)} / 60 = {_num(saved)}",
        "value_usd = time_saved_hours * value_per_hour_usd = "
        f"{_num(saved)} * {_num(per_hour)} = {_num(value)}",
        "cost_per_successful_run_usd = cost_usd / successful_runs = "
        f"{_num(cost_usd)} / {successful_runs} = {_num(per_success)}",
        f"net_value_usd = value_usd - cost_usd = {_num(value)} - {_num(cost_usd)} = {_num(net)}",
    ]
    if missing:
        lines.append(f"not stated in the job description's roi: {', '.join(missing)}")
    if unpriced_llm_calls:
        lines.append(
            f"cost_usd counts priced LLM calls only: {unpriced_llm_calls} unpriced "
            "(the cost is a lower bound)"
        )
    return AgentRoi(
        runs=runs,
        successful_runs=successful_runs,
        success_rate=round(successful_runs / runs, 6) if runs else None,
        human_minutes_per_run=minutes,
        value_per_hour_usd=per_hour,
        time_saved_hours=saved,
        value_usd=value,
        cost_usd=cost_usd,
        unpriced_llm_calls=unpriced_llm_calls,
        cost_per_successful_run_usd=per_success,
        net_value_usd=net,
        formula="; ".join(lines),
        missing=missing,
    )
