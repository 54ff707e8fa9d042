"""Alerting: routes findings to Slack, PagerDuty and signed webhooks, durably."""

from api.alerts._config import AlertConfigError, AlertsConfig
from api.alerts._delivery import Alerter

__all__ = ["AlertConfigError", "Alerter", "AlertsConfig"]
