"""`/api/v1/alerts`: the alert delivery log (finding, receiver, attempts, status)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api._deps import ContextDep, TenantDep
from api._models import AlertDelivery, AlertDeliveryList

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts", response_model=AlertDeliveryList)
def list_alerts(
    context: ContextDep,
    tenant: TenantDep,
    finding_id: str | None = None,
    receiver: str | None = None,
    status: Literal["pending", "sent", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertDeliveryList:
    """Newest first; empty when no alert routes are configured."""
    if context.alerts is None:
        return AlertDeliveryList(alerts=[])
    rows = context.alerts.deliveries(
        tenant=tenant,
        finding_id=finding_id.lower() if finding_id else None,
        receiver=receiver,
        status=status,
        limit=limit,
    )
    return AlertDeliveryList(alerts=[_delivery(row) for row in rows])


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _delivery(row: dict[str, Any]) -> AlertDelivery:
    return AlertDelivery(
        id=row["id"],
        finding_id=row["finding_id"],
        kind=row["kind"],
        receiver=row["receiver"],
        route=row["route"],
        event=row["event"],
        status=row["status"],
        attempts=row["attempts"],
        created_at=_time(row["created_at"]) or "",
        next_attempt_at=_time(row["next_attempt_at"]) if row["status"] == "pending" else None,
        sent_at=_time(row["sent_at"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
    )
