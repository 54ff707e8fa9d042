"""Grafana provisioning and dashboards for agentwatch (built by `build_dashboards.py`)."""
